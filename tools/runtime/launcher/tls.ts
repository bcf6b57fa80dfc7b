/**
 * TLS material for the twin, made by the shipped generator script (`tlsSecretGeneratorScript`, the
 * bytes the in-cluster Job runs) against a stand-in API server that keeps the Secret it POSTs: the
 * twin's certificates name its loopback addresses instead of the Services, as its passwords are
 * its own. The files land where a Secret volume would put them, the key readable by its owner only.
 */
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { TLS_SECRET_KEYS } from '../../../constructs/core/generated-secret';
import { type CaFiles, makeCa } from '../ca';
import { chownTree, makeDir, makeTempDir, runToEnd } from './processes';

/** The twin's CA (as a cert-manager CA Issuer would be): every twin server's certificate chains to it. */
export type TwinCa = CaFiles;

let sharedCa: TwinCa | undefined;

/** A CA for this process's twin servers (made once, removed with the process's temp dirs). */
export async function twinCa(): Promise<TwinCa> {
  if (sharedCa && existsSync(sharedCa.certFile)) return sharedCa;
  sharedCa = await makeCa(makeTempDir('fastnext-twin-ca-'), 'fastnext twin CA', 30);
  return sharedCa;
}

/** A Secret volume's worth of TLS files. */
export interface TwinTls {
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
  /** PEM of the CA: what clients verify against. */
  readonly ca: string;
  readonly cert: string;
}

/** Runs `script` (the shipped TLS generator) for these names and writes its Secret's keys into `dir`. */
export async function issueTwinTls(
  script: string,
  opts: {
    readonly dir: string;
    readonly dnsNames: readonly string[];
    readonly ipAddresses: readonly string[];
    readonly owner?: { uid: number; gid: number };
    /** Sign with this CA; omitted: the script makes its own, as in a cluster. */
    readonly ca?: TwinCa;
  },
): Promise<TwinTls> {
  let body = '';
  const server = createServer((req, res) => {
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => res.writeHead(201, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const sa = makeDir(join(opts.dir, '.serviceaccount'));
  writeFileSync(join(sa, 'token'), 'twin');
  try {
    const run = await runToEnd('sh', ['-c', script], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        SECRET_NAME: 'twin-tls',
        NAMESPACE: 'twin',
        TLS_DNS_NAMES: opts.dnsNames.join(' '),
        TLS_IP_ADDRESSES: opts.ipAddresses.join(' '),
        KUBE_API: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
        SA_DIR: sa,
        ...(opts.ca ? { TLS_CA_CERT_FILE: opts.ca.certFile, TLS_CA_KEY_FILE: opts.ca.keyFile } : {}),
      },
    });
    if (run.code !== 0) throw new Error(`TLS generator failed (${run.code}): ${run.output}`);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
  const secret = JSON.parse(body) as { type: string; data: Record<string, string> };
  const file = (key: string) => Buffer.from(secret.data[key], 'base64').toString();
  const out = {
    dir: opts.dir,
    certFile: join(opts.dir, TLS_SECRET_KEYS.cert),
    keyFile: join(opts.dir, TLS_SECRET_KEYS.key),
    caFile: join(opts.dir, TLS_SECRET_KEYS.ca),
    ca: file(TLS_SECRET_KEYS.ca),
    cert: file(TLS_SECRET_KEYS.cert),
  };
  writeFileSync(out.certFile, out.cert);
  writeFileSync(out.caFile, out.ca);
  writeFileSync(out.keyFile, file(TLS_SECRET_KEYS.key));
  // PostgreSQL refuses a key others may read; a Secret volume's defaultMode does the same in the pod.
  chmodSync(out.keyFile, 0o600);
  if (opts.owner) chownTree(opts.dir, opts.owner.uid, opts.owner.gid);
  return out;
}

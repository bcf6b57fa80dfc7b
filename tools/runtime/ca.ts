/**
 * A self-signed certificate authority made with openssl: the twin's CA (launcher/tls.ts) and the
 * organisation CA stand-in of test/credentials.test.ts. Runs one openssl command, starts no server.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';

/** A CA's certificate and key files. */
export interface CaFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

/** A self-signed P-256 CA in `dir` (`ca.crt`, `ca.key`), valid `days`, named `cn`. */
export function makeCa(dir: string, cn: string, days: number): Promise<CaFiles> {
  const ca = { certFile: join(dir, 'ca.crt'), keyFile: join(dir, 'ca.key') };
  const args = [
    'req',
    '-x509',
    '-new',
    '-noenc',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-keyout',
    ca.keyFile,
    '-out',
    ca.certFile,
    '-days',
    String(days),
    '-subj',
    `/CN=${cn}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ];
  return new Promise((resolve, reject) =>
    execFile('openssl', args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } }, (err, _out, stderr) =>
      err ? reject(new Error(`openssl: ${stderr || err.message}`)) : resolve(ca),
    ),
  );
}

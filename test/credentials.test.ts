/**
 * The in-cluster Secret generator: its script against a stand-in API server (plain
 * HTTP on loopback; only the status codes of POST /api/v1/namespaces/<ns>/secrets
 * matter), and the least-privilege RBAC of the construct.
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Chart, Testing } from 'cdk8s';
import {
  GeneratedSecret,
  secretGeneratorScript,
  TLS_SECRET_KEYS,
  tlsSecretGeneratorScript,
} from '../constructs/core/generated-secret';
import { makeCa } from '../tools/runtime/ca';

interface Seen {
  method: string;
  url: string;
  auth: string;
  body: {
    type?: string;
    metadata: { name: string; namespace: string; labels?: Record<string, string> };
    data: Record<string, string>;
  };
}

let server: Server;
let base = '';
let status = 201;
const seen: Seen[] = [];
const saDir = mkdtempSync(join(tmpdir(), 'fastnext-sa-'));

beforeAll(async () => {
  writeFileSync(join(saDir, 'token'), 'test-token');
  server = createServer((req: IncomingMessage, res) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d.toString()));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization ?? '', body: JSON.parse(text) });
      res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  base = `http://127.0.0.1:${addr.port}`;
});
afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(saDir, { recursive: true, force: true });
});

function runScript(): Promise<{ code: number; out: string }> {
  const env = {
    PATH: process.env.PATH!,
    SECRET_NAME: 'postgres-credentials',
    SECRET_KEYS: 'password replication-password',
    SECRET_LENGTH: '32',
    NAMESPACE: 'fastnext-dev',
    KUBE_API: base,
    SA_DIR: saDir,
  };
  return new Promise((resolve) => {
    execFile('sh', ['-c', secretGeneratorScript()], { env }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code) : 0, out: stdout + stderr }),
    );
  });
}

test('creates the Secret with one independent random value per key', async () => {
  status = 201;
  seen.length = 0;
  const r = await runScript();
  expect(r).toEqual({ code: 0, out: 'created Secret postgres-credentials with keys: password replication-password\n' });
  expect(seen).toHaveLength(1);
  const [req] = seen;
  expect([req.method, req.url, req.auth]).toEqual([
    'POST',
    '/api/v1/namespaces/fastnext-dev/secrets',
    'Bearer test-token',
  ]);
  expect(req.body.metadata).toMatchObject({ name: 'postgres-credentials', namespace: 'fastnext-dev' });
  const values = Object.values(req.body.data).map((v) => Buffer.from(v, 'base64').toString());
  expect(Object.keys(req.body.data)).toEqual(['password', 'replication-password']);
  for (const v of values) expect(v).toMatch(/^[A-Za-z0-9]{32}$/);
  expect(values[0]).not.toBe(values[1]);
});

test('leaves an existing Secret unchanged (409): never a PUT or PATCH, exit 0', async () => {
  status = 409;
  seen.length = 0;
  const r = await runScript();
  expect(r).toEqual({ code: 0, out: 'Secret postgres-credentials exists: left unchanged\n' });
  expect(seen.map((s) => s.method)).toEqual(['POST']);
});

test('fails when the API refuses the request (e.g. RBAC 403), so the Job retries', async () => {
  status = 403;
  const r = await runScript();
  expect(r).toEqual({ code: 1, out: 'creating Secret postgres-credentials failed: HTTP 403\n' });
});

describe('TLS generator script (tlsSecretGeneratorScript: the bytes the Job runs, openssl + python3)', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'fastnext-tls-gen-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  const DNS = [
    'postgres-primary.fastnext-prod.svc.cluster.local',
    'postgres-0.postgres-headless.fastnext-prod.svc.cluster.local',
    'pgbouncer.fastnext-prod.svc.cluster.local',
    'localhost',
  ];

  function runTls(extra: Record<string, string> = {}): Promise<{ code: number; out: string }> {
    const env = {
      PATH: process.env.PATH!,
      SECRET_NAME: 'postgres-tls',
      NAMESPACE: 'fastnext-prod',
      TLS_DNS_NAMES: DNS.join(' '),
      TLS_IP_ADDRESSES: '127.0.0.1',
      TLS_DAYS: '30',
      KUBE_API: base,
      SA_DIR: saDir,
      TMPDIR: scratch,
      ...extra,
    };
    return new Promise((resolve) => {
      execFile('sh', ['-c', tlsSecretGeneratorScript()], { env }, (err, stdout, stderr) =>
        resolve({ code: err ? Number(err.code) : 0, out: stdout + stderr }),
      );
    });
  }
  const pem = (req: Seen, key: string) => Buffer.from(req.body.data[key], 'base64').toString();

  test('POSTs a kubernetes.io/tls Secret with cert-manager keys: a P-256 server certificate for every name, signed by a CA', async () => {
    status = 201;
    seen.length = 0;
    const r = await runTls();
    expect(r).toEqual({ code: 0, out: 'created TLS Secret postgres-tls\n' });
    expect(seen).toHaveLength(1);
    const [req] = seen;
    expect([req.method, req.url, req.auth]).toEqual([
      'POST',
      '/api/v1/namespaces/fastnext-prod/secrets',
      'Bearer test-token',
    ]);
    expect(req.body.type).toBe('kubernetes.io/tls');
    expect(req.body.metadata).toEqual({
      name: 'postgres-tls',
      namespace: 'fastnext-prod',
      labels: { 'app.kubernetes.io/managed-by': 'fastnext-secret-generator' },
    });
    // Exactly the three keys: the CA's private key is never sent.
    expect(Object.keys(req.body.data).sort()).toEqual(Object.values(TLS_SECRET_KEYS).sort());
    const cert = new X509Certificate(pem(req, 'tls.crt'));
    const ca = new X509Certificate(pem(req, 'ca.crt'));
    expect(cert.subject).toBe(`CN=${DNS[0]}`);
    expect(cert.subjectAltName).toBe([...DNS.map((d) => `DNS:${d}`), 'IP Address:127.0.0.1'].join(', '));
    expect(cert.ca).toBe(false);
    // extendedKeyUsage serverAuth, clientAuth (Redis nodes present it to each other on the bus)
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(ca.ca).toBe(true);
    expect(ca.subject).toBe('CN=postgres-tls CA');
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.verify(ca.publicKey)).toBe(true);
    for (const name of DNS) expect(cert.checkHost(name)).toBe(name);
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkHost('postgres-primary.other-ns.svc.cluster.local')).toBeUndefined();
    const key = createPrivateKey(pem(req, 'tls.key'));
    expect(key.asymmetricKeyDetails).toEqual({ namedCurve: 'prime256v1' });
    expect(cert.checkPrivateKey(key)).toBe(true);
    const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29);
    expect(days).toBeLessThanOrEqual(30);
    // Its scratch directory (the CA key) is gone.
    expect(readdirSync(scratch)).toEqual([]);
  });

  test('every run makes a new CA: two generated Secrets never share one', async () => {
    status = 201;
    seen.length = 0;
    await runTls();
    await runTls();
    expect(pem(seen[0], 'ca.crt')).not.toBe(pem(seen[1], 'ca.crt'));
    expect(new X509Certificate(pem(seen[1], 'tls.crt')).checkIssued(new X509Certificate(pem(seen[0], 'ca.crt')))).toBe(
      false,
    );
  });

  test('TLS_CA_CERT_FILE + TLS_CA_KEY_FILE: signs with that CA (an organisation CA, the twin) and sends it as ca.crt', async () => {
    status = 201;
    seen.length = 0;
    await runTls({ TLS_CA_CERT_FILE: '', TLS_CA_KEY_FILE: '' });
    const own = seen[0];
    // An organisation's CA stand-in, made with openssl.
    const caDir = mkdtempSync(join(tmpdir(), 'fastnext-tls-ca-'));
    try {
      await makeCa(caDir, 'org CA', 2);
      seen.length = 0;
      const r = await runTls({ TLS_CA_CERT_FILE: join(caDir, 'ca.crt'), TLS_CA_KEY_FILE: join(caDir, 'ca.key') });
      expect(r.code).toBe(0);
      const ca = new X509Certificate(pem(seen[0], 'ca.crt'));
      expect(ca.subject).toBe('CN=org CA');
      expect(new X509Certificate(pem(seen[0], 'tls.crt')).verify(ca.publicKey)).toBe(true);
      expect(pem(seen[0], 'ca.crt')).not.toBe(pem(own, 'ca.crt'));
      // The given CA's key is left where it was, and not sent.
      expect(existsSync(join(caDir, 'ca.key'))).toBe(true);
      expect(Object.keys(seen[0].body.data).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
      const noKey = await runTls({ TLS_CA_CERT_FILE: join(caDir, 'ca.crt') });
      expect(noKey.code).not.toBe(0);
      expect(noKey.out).toContain('TLS_CA_KEY_FILE must name the key of TLS_CA_CERT_FILE');
    } finally {
      rmSync(caDir, { recursive: true, force: true });
    }
  });

  test('leaves an existing Secret unchanged (409): exit 0, so a renewed or cert-manager certificate is never replaced', async () => {
    status = 409;
    seen.length = 0;
    const r = await runTls();
    expect(r).toEqual({ code: 0, out: 'Secret postgres-tls exists: left unchanged\n' });
    expect(seen.map((s) => s.method)).toEqual(['POST']);
  });

  test('fails when the API refuses the request (e.g. RBAC 403), so the Job retries', async () => {
    status = 403;
    const r = await runTls();
    expect(r.code).toBe(1);
    expect(r.out).toBe('creating Secret postgres-tls failed: HTTP 403\n');
  });

  test('fails before any request without a name to certify', async () => {
    status = 201;
    seen.length = 0;
    const r = await runTls({ TLS_DNS_NAMES: '' });
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('TLS_DNS_NAMES');
    expect(seen).toEqual([]);
  });
});

describe('construct', () => {
  const chart = () => new Chart(Testing.app(), 'test', { disableResourceNameHashes: true });

  test('the Role grants create on secrets and nothing else; the token is mounted only in the Job pod', () => {
    const c = chart();
    new GeneratedSecret(c, 'gen', { secretName: 'grafana-admin', keys: ['admin-password'] });
    const objs = Testing.synth(c);
    const role = objs.find((o) => o.kind === 'Role');
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }]);
    const sa = objs.find((o) => o.kind === 'ServiceAccount');
    expect(sa.automountServiceAccountToken).toBe(false);
    const job = objs.find((o) => o.kind === 'Job');
    expect(job.spec.template.spec.automountServiceAccountToken).toBe(true);
    expect(job.metadata.annotations['fastnext.io/creates-secrets']).toBe('grafana-admin');
    expect(objs.filter((o) => o.kind === 'Secret')).toEqual([]);
  });

  test('fails when keys is empty', () => {
    expect(() => new GeneratedSecret(chart(), 'gen', { secretName: 's', keys: [] })).toThrow(
      "'keys' is empty: name at least one key of Secret 's'",
    );
  });

  test('fails when a key is not a valid Secret key', () => {
    expect(() => new GeneratedSecret(chart(), 'gen', { secretName: 's', keys: ['a b'] })).toThrow(
      `'keys[0]' (a b) of Secret 's' must match [-._a-zA-Z0-9]+`,
    );
  });

  const tls = { dnsNames: ['db.ns.svc'], image: 'ghcr.io/fastnext/postgres:x', uid: 999 };

  test('tls: the Job runs the TLS script in the given image as its uid, with a memory-backed /tmp', () => {
    const c = chart();
    new GeneratedSecret(c, 'gen', {
      secretName: 'db-tls',
      keys: ['tls.crt', 'tls.key', 'ca.crt'],
      tls: { ...tls, ipAddresses: ['127.0.0.1'] },
    });
    const job = Testing.synth(c).find((o) => o.kind === 'Job');
    const pod = job.spec.template.spec;
    const [container] = pod.containers;
    expect(container.image).toBe('ghcr.io/fastnext/postgres:x');
    expect(container.command).toEqual(['sh', '-c', tlsSecretGeneratorScript()]);
    expect(pod.securityContext).toMatchObject({ runAsUser: 999, runAsNonRoot: true });
    const env = Object.fromEntries(
      container.env
        .filter((e: { value?: string }) => e.value !== undefined)
        .map((e: { name: string; value: string }) => [e.name, e.value]),
    );
    expect(env).toEqual({
      SECRET_NAME: 'db-tls',
      TLS_DNS_NAMES: 'db.ns.svc',
      TLS_IP_ADDRESSES: '127.0.0.1',
      TLS_DAYS: '3650',
      TMPDIR: '/tmp',
    });
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(container.volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
    expect(pod.volumes).toEqual([{ name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } }]);
    expect(job.metadata.annotations['fastnext.io/creates-secrets']).toBe('db-tls');
  });

  test('fails when a TLS Secret names no DNS name', () => {
    expect(
      () =>
        new GeneratedSecret(chart(), 'gen', {
          secretName: 'db-tls',
          keys: ['tls.crt', 'tls.key', 'ca.crt'],
          tls: { ...tls, dnsNames: [] },
        }),
    ).toThrow("'tls.dnsNames' is empty: name at least one DNS name of Secret 'db-tls'");
  });

  test("fails when a TLS Secret's keys are not cert-manager's", () => {
    expect(() => new GeneratedSecret(chart(), 'gen', { secretName: 'db-tls', keys: ['cert', 'key'], tls })).toThrow(
      `'keys' (["cert","key"]) of a TLS Secret must be tls.crt, tls.key, ca.crt`,
    );
  });

  test('fails when length is out of range', () => {
    expect(() => new GeneratedSecret(chart(), 'gen', { secretName: 's', keys: ['k'], length: 8 })).toThrow(
      "'length' (8) must be an integer from 16 to 128",
    );
  });
});

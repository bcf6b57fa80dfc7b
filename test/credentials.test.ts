/**
 * The in-cluster Secret generator: its script against a stand-in API server (plain
 * HTTP on loopback; only the status codes of POST /api/v1/namespaces/<ns>/secrets
 * matter), and the least-privilege RBAC of the construct.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Chart, Testing } from 'cdk8s';
import { GeneratedSecret, secretGeneratorScript } from '../constructs/core/generated-secret';

interface Seen {
  method: string;
  url: string;
  auth: string;
  body: { metadata: { name: string; namespace: string }; data: Record<string, string> };
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

  test('fails when length is out of range', () => {
    expect(() => new GeneratedSecret(chart(), 'gen', { secretName: 's', keys: ['k'], length: 8 })).toThrow(
      "'length' (8) must be an integer from 16 to 128",
    );
  });
});

/**
 * The server process (server.ts) on a real primary: it listens, serves metrics
 * on its own port, and on SIGTERM fails readiness, keeps serving through the
 * drain, lets an in-flight request finish, then exits 0.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Client } from 'pg';
import { SERVICE_PATHS } from '../../src/contract';
import { type DataTier, eventually, startDataTier } from '../helpers/servers';

jest.setTimeout(120_000);

const ROOT = join(__dirname, '../../..');
let tier: DataTier;
let server: ChildProcess | undefined;
let output = '';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  tier = await startDataTier({ replicas: 1, redis: false });
  await tier.migrate();
});

afterAll(async () => {
  if (server && server.exitCode === null) server.kill('SIGKILL');
  await tier?.stop();
});

test('SIGTERM: readiness fails at once, in-flight requests finish, the process exits 0', async () => {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const base = `http://127.0.0.1:${port}`;
  server = spawn(process.execPath, ['tools/run.js', 'service/src/server.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      ...tier.env({
        PORT: String(port),
        METRICS_PORT: String(metricsPort),
        SHUTDOWN_DRAIN_SECONDS: '2',
        LOG_LEVEL: 'info',
      }),
    },
  });
  server.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  server.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => server!.once('exit', (code) => resolve(code)));
  await eventually('server ready', async () => (await fetch(base + SERVICE_PATHS.readiness)).status === 200);

  // Metrics on their own port, with the contract names.
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}${SERVICE_PATHS.metrics}`)).text();
  expect(metrics).toContain('# TYPE http_request_duration_seconds histogram');
  expect(metrics).toContain('fastnext_db_pool_connections{pool="primary"}');
  expect((await fetch(`${base}${SERVICE_PATHS.metrics}`)).status).toBe(404); // never on the API port

  // GIVEN a request that is in flight: its UPDATE waits on a row lock we hold
  const created = await fetch(`${base}/api/v1/users`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'drain@example.com', username: 'drain' }),
  });
  const { id } = (await created.json()) as { id: string };
  const locker: Client = await tier.pg.connect();
  await locker.query('BEGIN');
  await locker.query('SELECT 1 FROM users WHERE id = $1 FOR UPDATE', [id]);
  const inFlight = fetch(`${base}/api/v1/users/${id}`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ full_name: 'Finished During Shutdown' }),
  });
  await new Promise((r) => setTimeout(r, 200));

  // WHEN the pod is told to stop
  server.kill('SIGTERM');
  await eventually('readiness failing', async () => (await fetch(base + SERVICE_PATHS.readiness)).status === 503, 1500);
  // THEN it still serves during the drain (liveness stays up)
  expect((await fetch(base + SERVICE_PATHS.liveness)).status).toBe(200);
  // and the in-flight request completes once the lock is released, after the drain ended
  await new Promise((r) => setTimeout(r, 2500));
  await locker.query('COMMIT');
  await locker.end();
  const res = await inFlight;
  expect(res.status).toBe(200);
  expect(((await res.json()) as { full_name: string }).full_name).toBe('Finished During Shutdown');
  // Exit follows within a second (no keep-alive socket holds the close up).
  const t0 = Date.now();
  expect(await exited).toBe(0);
  expect(Date.now() - t0).toBeLessThan(1000);
  expect(output).toContain('"msg":"draining: readiness now fails"');
  expect(output).toContain('"msg":"stopped"');
});

test('fails when a variable is invalid, naming it, with exit code 1', async () => {
  const child = spawn(process.execPath, ['tools/run.js', 'service/src/server.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...tier.env({ DB_POOL_SIZE: '0' }) },
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  expect(code).toBe(1);
  expect(err).toBe('configuration error: DB_POOL_SIZE ("0") must be an integer from 1 to 1000\n');
});

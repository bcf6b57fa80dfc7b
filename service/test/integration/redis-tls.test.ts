/**
 * `redis.tls` on real servers (Debian's Redis 7): six nodes started from the shipped start script
 * with REDIS_TLS_DIR (TLS only on the client port, the cluster bus and replication), the cluster
 * formed by the shipped create script over TLS, the service connecting with REDIS_TLS_CA_FILE and
 * checking each node's certificate and name. Proves: plaintext is refused; replicas stream over
 * TLS; the service caches through the cluster; a master's failover keeps it serving; both Debian
 * exporters scrape over TLS with the shipped pod's variable; a renewed certificate is loaded
 * without a restart.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { Cluster } from 'ioredis';
import { killMasterAndTimeFailover, rejoinAfterFailover } from '../../../tools/runtime/launcher/drills';
import { runToEnd } from '../../../tools/runtime/launcher/processes';
import { startExporter, stopAll } from '../../../tools/runtime/metrics-check/servers';
import { SERVICE_PATHS } from '../../src/contract';
import { type DataTier, eventually, startDataTier } from '../helpers/servers';

jest.setTimeout(180_000);

let tier: DataTier;
let app: FastifyInstance;
/** The test's own view of the keys, as admin over TLS (the app user may not run EXISTS on any key). */
let admin: Cluster;
const redis = () => tier.redis!;

beforeAll(async () => {
  tier = await startDataTier({ replicas: 0, redisTls: true });
  await tier.migrate();
  app = await tier.app();
  admin = new Cluster(
    redis().nodes.map((n) => ({ host: n.host, port: n.port })),
    { natMap: redis().natMap(), redisOptions: { ...redis().auth('admin'), tls: { ca: redis().tls!.ca } } },
  );
});

afterAll(async () => {
  stopAll();
  admin?.disconnect();
  await tier?.stop();
});

const cached = async (key: string) => (await admin.exists(`fastnext:${key}`)) === 1;

/** Serial number of the certificate node i presents to a new TLS connection. */
function servedSerial(i: number): Promise<string> {
  const n = redis().nodes[i];
  return new Promise((resolve, reject) => {
    const socket = connect({ host: n.host, port: n.port, ca: redis().tls!.ca }, () => {
      resolve(socket.getPeerX509Certificate()!.serialNumber);
      socket.destroy();
    });
    socket.on('error', reject);
  });
}

test('the cluster formed over TLS: every slot served, plaintext refused on every node', async () => {
  expect(await redis().healthy()).toBe(true);
  expect((await redis().clusterInfo(0)).cluster_slots_ok).toBe('16384');
  for (const n of redis().nodes) {
    // No --tls: the TLS port reads the plaintext command as a bad handshake and hangs up.
    const plain = await runToEnd('redis-cli', ['-h', n.host, '-p', String(n.port), '--no-auth-warning', 'ping'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', REDISCLI_AUTH: redis().passwords.admin },
    });
    expect(plain.output).not.toContain('PONG');
  }
  // The nodes run with TLS on the port, the bus and replication, and plaintext off.
  const config = await redis().cli(0, 'config', 'get', 'tls-*');
  expect(config).toMatch(/tls-cluster\nyes/);
  expect(config).toMatch(/tls-replication\nyes/);
  expect(await redis().cli(0, 'config', 'get', 'port')).toMatch(/^port\n0\n?$/);
});

test('replicas stream from their masters over TLS', async () => {
  const replicas = (await redis().clusterNodes(0)).filter((n) => n.flags === 'slave').length;
  expect(replicas).toBe(3);
  await eventually(
    'every replica linked',
    async () => {
      const infos = await Promise.all(redis().nodes.map((_, i) => redis().cli(i, 'info', 'replication')));
      return infos.filter((s) => s.includes('master_link_status:up')).length === replicas;
    },
    30_000,
  );
});

test('the service caches through the TLS cluster, keeps serving through a failover, and caches again after it', async () => {
  const created = await app.inject({
    method: 'POST',
    url: '/api/v1/users',
    payload: { email: 'tls@example.com', username: 'tls_user', full_name: 'Ada' },
  });
  expect(created.statusCode).toBe(201);
  const id = created.json().id as string;
  const get = () => app.inject({ method: 'GET', url: `/api/v1/users/${id}` });
  expect((await get()).statusCode).toBe(200);
  // The entry is in Redis, written by the service over TLS.
  await eventually('the user cached in Redis', () => cached(`user:${id}`));
  const deep = await app.inject({ method: 'GET', url: SERVICE_PATHS.deep });
  expect(deep.json().components.redis.status).toBe('up');

  // WHEN a master is killed while the service reads
  let sent = 0;
  let failed = 0;
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      sent++;
      if ((await get()).statusCode !== 200) failed++;
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  const f = await killMasterAndTimeFailover(redis());
  await new Promise((r) => setTimeout(r, 1000));
  stop = true;
  await loop;
  console.log(`redis TLS failover: ${f.ms} ms; reads sent ${sent}, failed ${failed}`);
  // THEN no read failed (a cache miss falls back to the database) and the cache works again
  expect(failed).toBe(0);
  expect(sent).toBeGreaterThan(50);
  await admin.del(`fastnext:user:${id}`);
  await new Promise((r) => setTimeout(r, 2100)); // past the in-process tier's 2 s
  // A read right after the promotion may miss Redis while the client learns the new slot owner (the
  // read is still served, from the database): read until one fills the cache again.
  await eventually('the user cached again after the failover', async () => {
    expect((await get()).statusCode).toBe(200);
    return cached(`user:${id}`);
  });
  // AND the old master rejoins over TLS as a replica
  await rejoinAfterFailover(redis(), f);
  expect(await redis().healthy()).toBe(true);
});

test.each(['debian12', 'debian13'] as const)(
  'the %s redis_exporter scrapes over TLS, verifying the CA',
  async (set) => {
    const n = redis().nodes[0];
    const port = await startExporter(
      { kind: 'redis', host: n.host, port: n.port, ...redis().auth('exporter'), caFile: redis().tls!.caFile },
      set,
    );
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    expect([metric('redis_up'), metric('redis_cluster_state')]).toEqual([1, 1]);
  },
);

test('a renewed certificate is served to new connections without a restart', async () => {
  // GIVEN what the nodes serve now, and their pids
  const before = await Promise.all(redis().nodes.map((_, i) => servedSerial(i)));
  const pids = await Promise.all(redis().nodes.map((_, i) => redis().cli(i, 'info', 'server')));
  const pidOf = (info: string) => /process_id:(\d+)/.exec(info)?.[1];
  // WHEN the Secret's files are replaced (same CA, new key and certificate)
  await redis().renewTls();
  const renewed = new X509Certificate(readFileSync(`${redis().tls!.dir}/tls.crt`)).serialNumber;
  expect(before).not.toContain(renewed);
  // THEN within the sync period (10 s) every node serves the new one, same processes
  const t0 = Date.now();
  await eventually(
    'every node serving the renewed certificate',
    async () => (await Promise.all(redis().nodes.map((_, i) => servedSerial(i)))).every((s) => s === renewed),
    30_000,
  );
  console.log(`redis TLS renewal: served by all six nodes ${Date.now() - t0} ms after the swap`);
  const after = await Promise.all(redis().nodes.map((_, i) => redis().cli(i, 'info', 'server')));
  expect(after.map(pidOf)).toEqual(pids.map(pidOf));
  // AND the service still reads and writes through the cluster
  // (within seconds: the client may still be settling after the previous test's rejoin)
  await eventually(
    'the service writing through the cluster',
    () => app.cache.set('tls:renewed', 1, { tags: ['tls'] }),
    5000,
  );
  expect(await app.cache.get('tls:renewed')).toBe(1);
  expect(await redis().healthy()).toBe(true);
});

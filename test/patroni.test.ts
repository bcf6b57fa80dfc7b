/**
 * Real Patroni 3.0.2 (Debian) managing three PostgreSQL 15 members on loopback from the
 * shipped `postgres-files` (patroni.yml + post-bootstrap.sh), etcd as the DCS, and two
 * PgBouncer 1.18 pods from the shipped `pgbouncer-config` in front of the leader router.
 * Drills: SIGKILL of the leader under writes (no acknowledged write lost with
 * synchronous_mode), the old leader rejoining through pg_rewind, a planned switchover,
 * and a PgBouncer pod lost under load.
 */
import { Client } from 'pg';
import {
  killPrimaryUnderWrites,
  type PatroniLaunch,
  type PgBouncerLaunch,
  rejoinMember,
  startPatroni,
  startPgBouncer,
  StatementLoop,
  switchoverUnderWrites,
  waitReplicasFollow,
} from '../tools/runtime/launcher';
import { sleep, waitFor, type Endpoint } from '../tools/runtime/launcher/processes';
import { loadEnvironment } from '../stacks/environments';
import { filesFrom } from '../tools/runtime/launcher/sources';
import { dataTierObjects } from './helpers/data-tier-files';
import { patroniPods } from '../tools/runtime/twin/data-probes';

jest.setTimeout(240000);

// prod's synchronous_mode on dev's sizes: what the failover drill must prove.
const objects = dataTierObjects('prod');
let pg: PatroniLaunch;
let bouncers: PgBouncerLaunch;
/** The PgBouncer Service stand-in (round robin over pods whose port is open). */
const bouncerService = (): Endpoint => bouncers.service;
const log: string[] = [];
const patroniYml = () => filesFrom(objects, 'postgres-files', ['patroni.yml'])['patroni.yml'];

beforeAll(async () => {
  pg = await startPatroni(objects, { members: 3 });
  bouncers = await startPgBouncer(objects, { server: pg.primary, password: pg.password, pods: 2 });
});
afterAll(async () => {
  await bouncers?.stop();
  await pg?.stop();
  if (log.length) console.log(log.join('\n'));
});

test('one leader, two streaming replicas, one of them synchronous, each through its member slot', async () => {
  // Patroni names the synchronous standby on the loop after the replicas stream.
  await waitFor('a sync standby', async () => (await pg.cluster()).some((m) => m.role === 'sync_standby'), 30000);
  const members = await pg.cluster();
  expect(members.filter((m) => m.role === 'leader')).toHaveLength(1);
  expect(members.filter((m) => m.role === 'sync_standby')).toHaveLength(1);
  const slots = await pg.query<{ slot_name: string; active: boolean }>(
    pg.primary,
    'SELECT slot_name, active FROM pg_replication_slots ORDER BY 1',
  );
  const leader = members.find((m) => m.role === 'leader')!.name;
  expect(slots.map((s) => s.slot_name)).toEqual(
    pg.members.filter((m) => m.name !== leader).map((m) => m.name.replace(/-/g, '_')),
  );
  expect(slots.every((s) => s.active)).toBe(true);
  const [s] = await pg.query<{ setting: string }>(
    pg.primary,
    "SELECT setting FROM pg_settings WHERE name = 'synchronous_standby_names'",
  );
  expect(s.setting).not.toBe('');
});

test("the shipped parameters are in force on every member: tuning from the config, Patroni's WAL settings", async () => {
  const sharedBuffers = /shared_buffers: (\S+)/.exec(patroniYml())![1];
  for (const m of pg.members) {
    const rows = await pg.query<{ name: string; setting: string; unit: string | null }>(
      m,
      `SELECT name, setting, unit FROM pg_settings WHERE name IN
        ('shared_buffers', 'max_connections', 'wal_log_hints', 'hot_standby', 'shared_preload_libraries', 'password_encryption')`,
    );
    const by = Object.fromEntries(rows.map((r) => [r.name, r.setting]));
    expect(Number(by.shared_buffers) * 8).toBe(Number.parseInt(sharedBuffers, 10) * 1024);
    expect(by).toMatchObject({
      max_connections: String(loadEnvironment('prod').postgres.maxConnections),
      wal_log_hints: 'on',
      hot_standby: 'on',
      shared_preload_libraries: 'pg_stat_statements',
      password_encryption: 'scram-sha-256',
    });
  }
});

test('post_bootstrap made the application role and database; pg_stat_statements is loaded', async () => {
  const c = await pg.connect(pg.primary, 'app');
  try {
    const { rows } = await c.query('SELECT current_user AS u, current_database() AS d');
    expect(rows[0]).toEqual({ u: pg.user, d: pg.database });
    const { rows: st } = await c.query('SELECT count(*)::int AS n FROM pg_stat_statements');
    expect(st[0].n).toBeGreaterThan(0);
  } finally {
    await c.end();
  }
});

test('through PgBouncer (transaction pooling): unnamed parameterized statements work, named prepared ones fail', async () => {
  const clients = [new Client(pg.clientConfig(bouncers.pods[0])), new Client(pg.clientConfig(bouncers.pods[0]))];
  for (const c of clients) c.on('error', () => undefined);
  try {
    await Promise.all(clients.map((c) => c.connect()));
    // What the API sends: unnamed Parse/Bind/Execute in one round trip.
    const { rows } = await clients[0].query('SELECT $1::int + 1 AS n, pg_is_in_recovery() AS ro', [41]);
    expect(rows[0]).toEqual({ n: 42, ro: false });
    // The statement_timeout node-postgres sends at connect is dropped by PgBouncer; the role's default holds.
    expect((await clients[0].query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('15s');
    // A named statement is prepared on one server connection and looked up on another.
    const named = { name: 'drill_named', text: 'SELECT $1::int AS n', values: [1] };
    await clients[0].query(named);
    await expect(clients[1].query(named)).rejects.toThrow(
      /prepared statement "drill_named" (already exists|does not exist)/,
    );
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
});

test('kill the leader (SIGKILL Patroni and PostgreSQL) under writes through PgBouncer: no acknowledged write lost, reads keep working, the old leader rejoins through pg_rewind, a replica that diverged is reinitialised through its liveness check', async () => {
  const r = await killPrimaryUnderWrites(pg, bouncerService, { settleMs: 1500 });
  log.push(`kill leader: ${JSON.stringify(r)}`);
  expect(r.newLeader).not.toBe(r.oldLeader);
  // 30 acknowledged before the kill and 10 more after the recovery at least (the drill waits for them).
  expect(r.acknowledged).toBeGreaterThanOrEqual(40);
  expect(r.lost).toBe(0);
  expect(r.secondsToFirstWrite).toBeLessThan(30);
  expect(r.reads.ok).toBeGreaterThan(0);
  const back = await rejoinMember(pg, r.oldLeader);
  log.push(`rejoin: ${JSON.stringify(back)}`);
  expect(back.rewound).toBe(true);
  // From here the members run under a kubelet with the StatefulSet's probes. The third member may
  // have replayed the old timeline past the fork from the archive: the shipped liveness check sees
  // it on an older timeline than the leader's with its replay stopped, and has Patroni reinitialise
  // it (constructs/postgres/patroni-liveness.ts); no container restarts.
  const kubelets = patroniPods(objects, pg);
  try {
    await Promise.all(kubelets.map((k) => k.run()));
    const follow = await waitReplicasFollow(pg);
    const restarts = Object.fromEntries(kubelets.map((k) => [k.name, k.restarts]));
    log.push(`replicas following: ${JSON.stringify(follow)}; container restarts ${JSON.stringify(restarts)}`);
    for (const f of follow.filter((x) => x.diverged)) {
      // The liveness limit (30 s), one probe period and the new copy of the data directory.
      expect({ member: f.member, within: f.seconds < 150 }).toEqual({ member: f.member, within: true });
      expect(pg.log(pg.members.findIndex((m) => m.name === f.member))).toMatch(
        /reinitialize|replica has been created/i,
      );
    }
    expect(Object.values(restarts).every((n) => n === 0)).toBe(true);
  } finally {
    for (const k of kubelets) k.detach();
  }
  await pg.waitHealthy(2, 60000);
}, 420_000);

test('patronictl switchover under writes: the gap between acknowledged writes stays under 10 s', async () => {
  const r = await switchoverUnderWrites(pg, bouncerService);
  log.push(`switchover: ${JSON.stringify({ ...r, output: undefined })}`);
  expect(r.output).toContain('Successfully switched over');
  expect(r.maxGapSeconds).toBeLessThan(10);
  await pg.waitHealthy(2, 60000);
});

test('kill a PgBouncer pod under writes: failures are bounded, the other pod serves', async () => {
  await pg.query(pg.primary, 'CREATE TABLE IF NOT EXISTS drill_bouncer (id bigint PRIMARY KEY)');
  await pg.query(pg.primary, `GRANT ALL ON drill_bouncer TO ${pg.user}`);
  // Two clients: the Service alternates new connections, so one lands on each pod.
  const loops = [0, 1].map(
    (k) =>
      new StatementLoop(
        (ep) => pg.clientConfig(ep, 'app'),
        bouncerService,
        `INSERT INTO drill_bouncer VALUES ($1 * 2 + ${k})`,
        true,
        5,
      ),
  );
  await sleep(1000);
  const t0 = Date.now();
  await bouncers.killPod(0);
  await sleep(3000);
  const stats = await Promise.all(loops.map((l) => l.stop()));
  const failed = stats.reduce((n, s) => n + s.failed, 0);
  const after = stats.reduce((n, s) => n + s.successes.filter((t) => t > t0).length, 0);
  log.push(
    `kill pgbouncer: failed ${failed}, ok after kill ${after}, errors ${JSON.stringify(stats.map((s) => s.errors))}`,
  );
  // The victim's client loses its statement in flight, plus reconnects routed there before the Service drops the pod.
  expect(failed).toBeGreaterThanOrEqual(1);
  expect(failed).toBeLessThanOrEqual(5);
  expect(after).toBeGreaterThan(20);
  await bouncers.startPod(0);
});

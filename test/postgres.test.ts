/**
 * The shipped PostgreSQL files (ConfigMap `postgres-config` of the dev environment,
 * byte for byte) on a real PostgreSQL 15 primary and two streaming replicas.
 */
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { startPostgres, type PostgresLaunch } from '../tools/runtime/launcher';
import { waitFor } from '../tools/runtime/launcher/processes';

jest.setTimeout(180000);

describe('asynchronous primary + 2 replicas (dev)', () => {
  let pg: PostgresLaunch;
  beforeAll(async () => {
    pg = await startPostgres(synthObjects(loadEnvironment('dev')), { replicas: 2 });
  });
  afterAll(async () => {
    await pg?.stop();
  });

  // Polls (the table itself may not have reached the replica yet, hence errors are retried).
  const waitForRow = (i: number, id: number) =>
    waitFor(
      `row ${id} on replica ${i}`,
      async () =>
        (await pg.query<{ n: string }>(pg.replicas[i], 'SELECT count(*) AS n FROM t_repl WHERE id = $1', [id]))[0].n ===
        '1',
      10000,
    );

  test('pg_stat_replication shows every replica streaming through the slot named after its pod', async () => {
    const rows = await pg.query<{ slot_name: string; state: string; application_name: string }>(
      pg.primary,
      `SELECT s.slot_name, r.state, r.application_name FROM pg_replication_slots s
         JOIN pg_stat_replication r ON r.pid = s.active_pid ORDER BY s.slot_name`,
    );
    expect(rows).toEqual([
      { slot_name: 'postgres_replica_0', state: 'streaming', application_name: 'postgres_replica_0' },
      { slot_name: 'postgres_replica_1', state: 'streaming', application_name: 'postgres_replica_1' },
    ]);
  });

  test('the application role and database exist, and it may log in with its password', async () => {
    const c = await pg.connect();
    try {
      const r = await c.query('SELECT current_user, current_database()');
      expect(r.rows[0]).toEqual({ current_user: pg.user, current_database: pg.database });
    } finally {
      await c.end();
    }
  });

  test('a row written on the primary is read on each replica', async () => {
    const c = await pg.connect();
    try {
      await c.query('CREATE TABLE IF NOT EXISTS t_repl (id int PRIMARY KEY, note text)');
      await c.query("INSERT INTO t_repl VALUES (1, 'hello')");
    } finally {
      await c.end();
    }
    for (const i of [0, 1]) {
      await waitForRow(i, 1);
      const r = await pg.connect(pg.replicas[i]);
      try {
        expect((await r.query('SELECT note FROM t_repl WHERE id = 1')).rows).toEqual([{ note: 'hello' }]);
      } finally {
        await r.end();
      }
    }
  });

  test('running the init script again changes nothing and fails nothing', async () => {
    const roles = `SELECT rolname, rolreplication, rolsuper FROM pg_roles WHERE rolname IN ('fastnext', 'replicator', 'postgres') ORDER BY 1`;
    const before = await pg.query(pg.primary, roles);
    const again = await pg.rerunPrimaryInit();
    expect(again).toEqual({ code: 0, output: '' });
    expect(await pg.query(pg.primary, roles)).toEqual(before);
    // The application can still log in with the same password.
    const c = await pg.connect();
    await c.end();
  });

  test('a write on a replica is refused', async () => {
    const r = await pg.connect(pg.replicas[0]);
    try {
      await expect(r.query("INSERT INTO t_repl VALUES (2, 'nope')")).rejects.toThrow(
        'cannot execute INSERT in a read-only transaction',
      );
    } finally {
      await r.end();
    }
  });

  test('pg_stat_statements is loaded and returns rows', async () => {
    const c = await pg.connect();
    try {
      await c.query('SELECT count(*) FROM t_repl');
      const r = await c.query("SELECT calls FROM pg_stat_statements WHERE query LIKE 'SELECT count(*) FROM t_repl%'");
      expect(r.rows.length).toBeGreaterThan(0);
      expect(Number(r.rows[0].calls)).toBeGreaterThan(0);
    } finally {
      await c.end();
    }
  });

  test('the shipped postgresql.conf is in force (memory from the request, WAL, hot_standby)', async () => {
    const rows = await pg.query<{ name: string; setting: string; unit: string | null }>(
      pg.replicas[0],
      `SELECT name, setting, unit FROM pg_settings WHERE name IN
        ('shared_buffers', 'max_connections', 'wal_level', 'hot_standby', 'track_io_timing', 'shared_preload_libraries')`,
    );
    const s = Object.fromEntries(rows.map((r) => [r.name, r.setting]));
    // dev requests 256Mi: shared_buffers = 64MB = 8192 pages of 8kB.
    expect(s).toEqual({
      shared_buffers: '8192',
      max_connections: '200',
      wal_level: 'replica',
      hot_standby: 'on',
      track_io_timing: 'on',
      shared_preload_libraries: 'pg_stat_statements',
    });
  });

  test('restarting a replica resumes streaming without a new base backup', async () => {
    // GIVEN the walsender serving replica 1 before the restart
    const before = await pg.query<{ pid: string }>(
      pg.primary,
      "SELECT pid FROM pg_stat_replication WHERE application_name = 'postgres_replica_1'",
    );
    await pg.stopReplica(1);
    const c = await pg.connect();
    try {
      await c.query("INSERT INTO t_repl VALUES (3, 'while down')");
    } finally {
      await c.end();
    }
    // WHEN it starts again on the same data directory
    await pg.startReplica(1);
    // THEN it streams again, catches up, and its log shows no base backup
    await waitForRow(1, 3);
    const after = await pg.query<{ pid: string }>(
      pg.primary,
      "SELECT pid FROM pg_stat_replication WHERE application_name = 'postgres_replica_1'",
    );
    expect(after[0].pid).not.toEqual(before[0].pid);
    expect(pg.log(1)).not.toContain('pg_basebackup');
    expect(pg.log(1)).not.toContain('empty data directory');
  });

  test('a replica started against an empty data directory bootstraps itself through its slot', async () => {
    await pg.stopReplica(0);
    await pg.startReplica(0, { wipe: true });
    expect(pg.log(0)).toContain('pg_basebackup through slot postgres_replica_0');
    await waitForRow(0, 3);
    const slots = await pg.query<{ n: string }>(pg.primary, 'SELECT count(*) AS n FROM pg_replication_slots');
    expect(slots[0].n).toBe('2'); // the slot was reused, not duplicated
  });

  test('after a primary restart the replicas reconnect through their slots and keep applying', async () => {
    await pg.restartPrimary();
    await waitFor(
      'both replicas streaming again',
      async () =>
        (
          await pg.query<{ n: string }>(
            pg.primary,
            "SELECT count(*) AS n FROM pg_stat_replication WHERE state = 'streaming' AND application_name LIKE 'postgres_replica_%'",
          )
        )[0].n === '2',
      60000,
    );
    const c = await pg.connect();
    try {
      await c.query("INSERT INTO t_repl VALUES (4, 'after primary restart')");
    } finally {
      await c.end();
    }
    await waitForRow(0, 4);
    await waitForRow(1, 4);
  });
});

describe('synchronous commit to one replica (prod setting on dev sizes)', () => {
  let pg: PostgresLaunch;
  beforeAll(async () => {
    const config = loadEnvironment('dev', { postgres: { synchronousReplicas: 1, synchronousCommit: 'on' } });
    pg = await startPostgres(synthObjects(config), { replicas: 1 });
  });
  afterAll(async () => {
    await pg?.stop();
  });

  test('a commit waits for the standby while it is down and completes once it is back', async () => {
    const setup = await pg.connect();
    await setup.query('CREATE TABLE t_sync (id int)');
    const sync = await pg.query<{ sync_state: string }>(pg.primary, 'SELECT sync_state FROM pg_stat_replication');
    expect(sync).toEqual([{ sync_state: 'quorum' }]);
    await pg.stopReplica(0);
    // WHEN a transaction commits with no standby connected
    let done = false;
    const insert = setup.query('INSERT INTO t_sync VALUES (1)').then(() => (done = true));
    await new Promise((r) => setTimeout(r, 1500));
    // THEN it is still waiting, on SyncRep
    expect(done).toBe(false);
    const waits = await pg.query<{ wait_event: string }>(
      pg.primary,
      "SELECT wait_event FROM pg_stat_activity WHERE query LIKE 'INSERT INTO t_sync%'",
    );
    expect(waits).toEqual([{ wait_event: 'SyncRep' }]);
    // AND it completes as soon as the standby streams again
    await pg.startReplica(0);
    await insert;
    expect(done).toBe(true);
    await setup.end();
  });
});

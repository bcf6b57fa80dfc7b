/**
 * Backups and point-in-time recovery, proven by restoring: real Patroni 3.0.2 members running
 * prod's shipped patroni.yml, pgbackrest.conf, backup.sh and restore.sh with Debian's
 * pgBackRest 2.45, archiving into a posix directory that stands in for prod's GCS bucket
 * (tools/runtime/launcher/pgbackrest.ts: only the repository and the member's paths differ).
 *
 * GIVEN rows written in batches around a full and a differential backup, the times between
 * batches noted from the server's clock, and a mistaken DROP TABLE,
 * WHEN new clusters are bootstrapped from the repository by the construct's own
 * `postgres.restore` (Patroni's bootstrap method running restore.sh),
 * THEN each holds exactly the rows written before its target time, and the latest restore
 * holds every acknowledged row. Also: a replica created from the repository, two backups at
 * once (pgBackRest's lock refuses the second), a backup refused on a replica, restore.sh
 * refusing a data directory that holds data, and the exporter's backup metrics.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { existsSync, writeFileSync } from 'node:fs';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { type PatroniLaunch, startPatroni } from '../tools/runtime/launcher';
import {
  chownTree,
  makeTempDir,
  osUser,
  removeDir,
  runToEnd,
  sleep,
  waitFor,
} from '../tools/runtime/launcher/processes';
import { filesFrom } from '../tools/runtime/launcher/sources';
import { namesInExposition, startExporter, stopAll, tempDir } from '../tools/runtime/metrics-check/servers';
import { BACKUP_METRICS, PGBACKREST_FILES } from '../constructs/postgres/pgbackrest-files';

jest.setTimeout(300000);

const prod = loadEnvironment('prod');
const objects = synthObjects(prod);
const pgUser = osUser('postgres');
let repoRoot: string;
let pg: PatroniLaunch;
const log: string[] = [];
const timings: Record<string, number> = {};

/** Server-side time, as PostgreSQL compares recovery_target_time with commit times. */
const serverNow = async () =>
  (
    await pg.query<{ t: string }>(
      pg.primary,
      'SELECT to_char(clock_timestamp() AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\') AS t',
    )
  )[0].t;

const insertBatch = async (batch: number) =>
  pg.query(pg.primary, 'INSERT INTO items SELECT g, $1 FROM generate_series($2::int, $3::int) g', [
    batch,
    (batch - 1) * 100 + 1,
    batch * 100,
  ]);

async function leader(): Promise<number> {
  let i = -1;
  await waitFor('a leader', async () => (i = await pg.leaderIndex()) >= 0, 30000);
  return i;
}

const repoCopies: string[] = [];
/** A copy of the repository (restored clusters archive into their own copy, not the source's). */
function copyRepository(): string {
  const dir = makeTempDir('fastnext-repo-copy-', repoRoot);
  execFileSync('cp', ['-a', `${pg.backup!.repositoryDir}/.`, dir]);
  chownTree(dir, pgUser.uid, pgUser.gid);
  repoCopies.push(dir);
  return dir;
}

/** A one-member cluster bootstrapped by `postgres.restore` from a copy of the repository. */
async function restoreCluster(targetTime?: string): Promise<{ launch: PatroniLaunch; ms: number }> {
  const restoreObjects = synthObjects(
    loadEnvironment('prod', { postgres: { restore: { fromBackup: targetTime ? { targetTime } : {} } } }),
  );
  const t0 = Date.now();
  const launch = await startPatroni(restoreObjects, {
    members: 1,
    parentDir: repoRoot,
    backup: { repositoryDir: copyRepository(), cipherPass: pg.backup!.cipherPass },
  });
  return { launch, ms: Date.now() - t0 };
}

let targetBeforeBatch3 = '';
let targetBeforeDrop = '';
type Restore = Promise<{ launch: PatroniLaunch; ms: number }>;
/** The three restores run side by side (most of a restore is Patroni's and PostgreSQL's start-up). */
const restores: Partial<Record<'t1' | 't2' | 'latest', Restore>> = {};
async function restored(which: 't1' | 't2' | 'latest'): Promise<PatroniLaunch> {
  const r = restores[which];
  if (!r) throw new Error(`restore ${which} was not started (the backup test failed)`);
  const { launch, ms } = await r;
  timings[`restore_${which}_ms`] = ms;
  return launch;
}

beforeAll(async () => {
  repoRoot = makeTempDir('fastnext-backup-test-');
  chownTree(repoRoot, pgUser.uid, pgUser.gid);
  const repositoryDir = join(repoRoot, 'repository');
  const t0 = Date.now();
  // A leader and one replica: enough for "only the leader archives", a replica from the repository and a refused backup.
  pg = await startPatroni(objects, {
    members: 2,
    parentDir: repoRoot,
    backup: { repositoryDir, cipherPass: 'twin-cipher-pass-0123456789' },
  });
  timings.bringUpMs = Date.now() - t0;
});
afterAll(async () => {
  stopAll();
  await Promise.all(Object.values(restores).map((r) => r.then(({ launch }) => launch.stop()).catch(() => undefined)));
  await pg?.stop();
  if (repoRoot) removeDir(repoRoot);
  console.log([...log, `timings ${JSON.stringify(timings)}`].join('\n'));
});

test('the shipped config archives WAL from the leader into the (encrypted) repository; the stanza exists after bootstrap', async () => {
  const i = await leader();
  expect(pg.backup).toMatchObject({ stanza: 'postgres', encrypted: true });
  // pgbackrest check: switches WAL and waits until the segment is in the repository.
  const check = await pg.pgbackrest(i, 'check');
  expect(check.output).toContain('check command end: completed successfully');
  expect(check.code).toBe(0);
  const [archiver] = await pg.query<{ archived_count: string; failed_count: string }>(
    pg.members[i],
    'SELECT archived_count, failed_count FROM pg_stat_archiver',
  );
  expect(Number(archiver.archived_count)).toBeGreaterThan(0);
  // Replicas do not archive (archive_mode 'on'): only the leader pushes.
  for (const [k, m] of pg.members.entries()) {
    if (k === i) continue;
    const [r] = await pg.query<{ archived_count: string }>(m, 'SELECT archived_count FROM pg_stat_archiver');
    expect(r.archived_count).toBe('0');
  }
  const info = JSON.parse((await pg.pgbackrest(i, '--output=json', 'info')).output) as {
    cipher: string;
    status: { code: number };
  }[];
  expect(info[0].cipher).toBe('aes-256-cbc');
});

test('full backup, writes, differential backup, more writes, a mistaken DROP TABLE: all archived', async () => {
  await pg.query(pg.primary, 'CREATE TABLE items (id int PRIMARY KEY, batch int NOT NULL)');
  await pg.query(pg.primary, 'CREATE TABLE acks (id int PRIMARY KEY)');
  await insertBatch(1);
  let t = Date.now();
  const full = await pg.runBackup(await leader(), 'full');
  timings.fullBackupMs = Date.now() - t;
  expect(full.output).toContain('backup command end: completed successfully');
  expect(full.code).toBe(0);
  await insertBatch(2);
  // T1 lies after batch 2's commit and before batch 3's (the server's clock, with a margin either side),
  // and in a later second than the full backup's end: pgBackRest compares backup end and target in
  // whole seconds (same second: "[075] unable to find backup set with stop time less than" the target).
  await sleep(1100);
  targetBeforeBatch3 = await serverNow();
  await sleep(300);
  await insertBatch(3);
  t = Date.now();
  const diff = await pg.runBackup(await leader(), 'diff');
  timings.diffBackupMs = Date.now() - t;
  expect(diff.code).toBe(0);
  await insertBatch(4);
  await sleep(1100); // A later second than the differential backup's end, as for T1.
  targetBeforeDrop = await serverNow();
  await sleep(300);
  await pg.query(pg.primary, 'DROP TABLE items');
  // Every acknowledged write after the mistake too.
  for (let k = 1; k <= 50; k++) await pg.query(pg.primary, 'INSERT INTO acks VALUES ($1)', [k]);
  expect((await pg.pgbackrest(await leader(), 'check')).code).toBe(0);
  const info = JSON.parse((await pg.pgbackrest(await leader(), '--output=json', 'info')).output) as {
    backup: { type: string; label: string }[];
  }[];
  expect(info[0].backup.map((b) => b.type)).toEqual(['full', 'diff']);
  log.push(
    `backups: ${info[0].backup.map((b) => b.label).join(', ')}; T1 ${targetBeforeBatch3}, T2 ${targetBeforeDrop}`,
  );
  restores.t1 = restoreCluster(targetBeforeBatch3);
  restores.t2 = restoreCluster(targetBeforeDrop);
  restores.latest = restoreCluster();
  // Awaited by the tests below; a failure there is reported there.
  for (const r of Object.values(restores)) r.catch(() => undefined);
});

test('restore to T1 (between batches 2 and 3) into a new cluster: exactly batches 1 and 2, from the full backup', async () => {
  const launch = await restored('t1');
  try {
    const rows = await launch.query<{ batch: number; n: string }>(
      launch.primary,
      'SELECT batch, count(*) AS n FROM items GROUP BY batch ORDER BY batch',
    );
    expect(rows.map((r) => [r.batch, Number(r.n)])).toEqual([
      [1, 100],
      [2, 100],
    ]);
    // The restored cluster is a writable leader on a new timeline, archiving into its own repository.
    const [st] = await launch.query<{ ro: boolean; tli: number }>(
      launch.primary,
      'SELECT pg_is_in_recovery() AS ro, timeline_id AS tli FROM pg_control_checkpoint()',
    );
    expect(st.ro).toBe(false);
    expect(launch.log(0)).toMatch(/restore backup set \d{8}-\d{6}F[^_]/);
  } finally {
    await launch.stop();
  }
});

test('restore to T2 (before the DROP) from the differential backup: all four batches, the table is back', async () => {
  const launch = await restored('t2');
  try {
    const [row] = await launch.query<{ n: string; batches: string }>(
      launch.primary,
      'SELECT count(*) AS n, count(DISTINCT batch) AS batches FROM items',
    );
    expect([Number(row.n), Number(row.batches)]).toEqual([400, 4]);
    expect(launch.log(0)).toMatch(/restore backup set \d{8}-\d{6}F_\d{8}-\d{6}D/);
  } finally {
    await launch.stop();
  }
});

test('restore to the latest point: every acknowledged row, and the DROP replayed too', async () => {
  const launch = await restored('latest');
  try {
    const [acks] = await launch.query<{ n: string }>(launch.primary, 'SELECT count(*) AS n FROM acks');
    expect(Number(acks.n)).toBe(50);
    const [items] = await launch.query<{ t: string | null }>(launch.primary, "SELECT to_regclass('items')::text AS t");
    expect(items.t).toBeNull();
  } finally {
    await launch.stop();
  }
});

test('a replica reinitialised from the repository (create_replica_methods: pgbackrest), then streaming', async () => {
  const i = await leader();
  const r = i === 0 ? 1 : 0;
  const out = await pg.patronictl('reinit', 'postgres', pg.members[r].name, '--force');
  expect(out.code).toBe(0);
  await waitFor(
    `${pg.members[r].name} recreated from pgBackRest`,
    () => /replica has been created using pgbackrest/.test(pg.log(r)),
    120000,
    () => pg.log(r).slice(-3000),
  );
  await pg.waitHealthy(1, 120000);
});

test('two backups at once: the second is refused by the stanza lock and exits 0 with a message; a replica refuses to back up', async () => {
  const i = await leader();
  const lockFile = join(pg.members[i].dataDir, '..', '..', 'tmp', 'pgbackrest', `${pg.backup!.stanza}-backup.lock`);
  const first = pg.runBackup(i, 'full');
  await waitFor('the first backup holding its lock', () => existsSync(lockFile), 30000);
  const second = await pg.runBackup(i, 'diff');
  const done = await first;
  expect(done.output).toContain('backup command end: completed successfully');
  expect(second.code).toBe(0);
  expect(second.output).toContain("another backup holds the stanza's lock on this member; this diff backup is skipped");
  const replica = i === 0 ? 1 : 0;
  const refused = await pg.runBackup(replica, 'full');
  log.push(
    `backup on a replica: ${refused.output
      .split('\n')
      .filter((l) => /ERROR/.test(l))
      .join(' | ')}`,
  );
  expect(refused.code).not.toBe(0);
});

test('restore.sh refuses a data directory that holds data', async () => {
  const i = await leader();
  const replica = i === 0 ? 1 : 0;
  const script = join(pg.dir, 'config', PGBACKREST_FILES.restore);
  // The shipped script is only in a restore's ConfigMap: render the one prod would ship.
  const restoreFiles = filesFrom(
    synthObjects(loadEnvironment('prod', { postgres: { restore: { fromBackup: {} } } })),
    'postgres-files',
    [PGBACKREST_FILES.restore],
  );
  writeFileSync(script, restoreFiles[PGBACKREST_FILES.restore]);
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    PGBACKREST_CONFIG: join(pg.members[replica].dataDir, '..', '..', PGBACKREST_FILES.conf),
    PGBACKREST_STANZA: 'postgres',
  };
  const r = await runToEnd('sh', [script], { env, uid: pgUser.uid, gid: pgUser.gid });
  expect(r.code).toBe(1);
  expect(r.output).toContain(`refusing to restore into ${pg.members[replica].dataDir}: it is not empty`);
});

test("the exporter reports the repository's backups and the archiver through the shipped queries", async () => {
  const i = await leader();
  const dir = tempDir('backup-exporter-');
  const queries = join(dir, PGBACKREST_FILES.exporterQueries);
  writeFileSync(
    queries,
    filesFrom(objects, 'postgres-files', [PGBACKREST_FILES.exporterQueries])[PGBACKREST_FILES.exporterQueries],
  );
  const su = pg.superuser;
  for (const set of ['debian12', 'debian13'] as const) {
    const port = await startExporter(
      // prod's PostgreSQL admits TLS only: the exporter verifies it as the sidecar does.
      { kind: 'postgres', ...pg.members[i], ...su, queriesFile: queries, caFile: pg.tls?.caFile },
      set,
    );
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const names = namesInExposition(text);
    for (const m of Object.values(BACKUP_METRICS)) expect([set, m, names.has(m)]).toEqual([set, m, true]);
    const full = new RegExp(`^${BACKUP_METRICS.lastCompletion}\\{[^}]*type="full"[^}]*\\} (\\S+)`, 'm').exec(text);
    expect(Number(full?.[1])).toBeGreaterThan(Date.now() / 1000 - 600);
    expect(new RegExp(`^${BACKUP_METRICS.repoStatus}\\{[^}]*\\} 0$`, 'm').test(text)).toBe(true);
    log.push(`${set} archiver metrics: ${[...names].filter((n) => n.startsWith('pg_stat_archiver')).join(', ')}`);
  }
});

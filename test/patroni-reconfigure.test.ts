/**
 * The reconfigure Job's script (the bytes of the `postgres-files` ConfigMap) against three real
 * Patroni 3.0.2 members of prod's shipped config (synchronous_mode, etcd as the DCS), with two
 * PgBouncer pods in front of the leader:
 * - a reload-only change reaches every member without restarting PostgreSQL;
 * - a postmaster change restarts the replicas first, switches over, then the old leader, under
 *   a write loop through PgBouncer: failures only around the switchover, none acknowledged lost;
 * - a second run changes nothing;
 * - constructs/postgres/pg15-settings.json is what a live member's pg_settings says.
 */
import { PG_SETTINGS_FILE, liveSettingContexts } from '../tools/runtime/pg-settings';
import {
  type PatroniLaunch,
  type PgBouncerLaunch,
  postmasterStarts,
  reconfigureUnderWrites,
  startPatroni,
  startPgBouncer,
} from '../tools/runtime/launcher';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { readFileSync } from 'node:fs';

jest.setTimeout(240000);

const prod = (overrides: object = {}) => synthObjects(loadEnvironment('prod', overrides));
// The same reload-only parameters in both changes, so the second differs from the first by max_connections only.
const reloadOnly = { log_min_duration_statement: 250, work_mem: '8MB', checkpoint_completion_target: 0.8 };
const maxConnections = loadEnvironment('prod').postgres.maxConnections + 50;

let pg: PatroniLaunch;
let bouncers: PgBouncerLaunch;
const log: string[] = [];

beforeAll(async () => {
  const objects = prod();
  pg = await startPatroni(objects, { members: 3 });
  bouncers = await startPgBouncer(objects, { server: pg.primary, password: pg.password, pods: 2 });
});
afterAll(async () => {
  await bouncers?.stop();
  await pg?.stop();
  if (log.length) console.log(log.join('\n'));
});

/** `name -> setting` on every member, for the given parameters. */
async function settingsOnMembers(names: string[]): Promise<Record<string, string>[]> {
  return Promise.all(
    pg.members.map(async (m) => {
      const rows = await pg.query<{ name: string; setting: string; unit: string | null; pending: boolean }>(
        m,
        'SELECT name, setting, unit, pending_restart AS pending FROM pg_settings WHERE name = ANY($1) ORDER BY name',
        [names],
      );
      return Object.fromEntries(
        rows.map((r) => [r.name, `${r.setting}${r.unit ?? ''}${r.pending ? ' (pending)' : ''}`]),
      );
    }),
  );
}

test('pg15-settings.json is the live pg_settings of a member running the shipped config', async () => {
  const file = JSON.parse(readFileSync(PG_SETTINGS_FILE, 'utf8')) as { majorVersion: number; contexts: object };
  const [{ v }] = await pg.query<{ v: string }>(pg.members[0], "SELECT current_setting('server_version_num') AS v");
  expect(Math.floor(Number(v) / 10000)).toBe(file.majorVersion);
  // A differing context or a parameter added or gone: run `npm run pg-settings` and review the diff.
  expect(await liveSettingContexts(pg, pg.members[0])).toEqual(file.contexts);
});

test('a reload-only change reaches every member by reload: new values everywhere, no PostgreSQL restarted, same leader', async () => {
  const names = Object.keys(reloadOnly);
  const leader = await pg.leaderIndex();
  const before = await postmasterStarts(pg);
  const run = await pg.reconfigure(prod({ postgres: { parameters: reloadOnly } }));
  log.push(`reload-only: ${run.seconds.toFixed(1)} s\n${run.output}`);
  expect(run.code).toBe(0);
  expect(run.summary).toMatchObject({ restarted: [], switchover: null, leaderRestarted: false });
  expect([...(run.summary?.patched ?? [])].sort()).toEqual([
    'checkpoint_completion_target: 0.9 -> 0.8',
    'log_min_duration_statement: 1000 -> 250',
    'work_mem: 1310kB -> 8MB',
  ]);
  // THEN every member runs the new values, none pending, and no PostgreSQL started again
  expect(await settingsOnMembers(names)).toEqual(
    pg.members.map(() => ({
      checkpoint_completion_target: '0.8',
      log_min_duration_statement: '250ms',
      work_mem: '8192kB',
    })),
  );
  expect(await postmasterStarts(pg)).toEqual(before);
  expect(await pg.leaderIndex()).toBe(leader);
});

test('a postmaster change (max_connections) under writes: replicas restart first, then a switchover, then the old leader; no acknowledged write lost', async () => {
  const leader = pg.members[await pg.leaderIndex()].name;
  const before = await postmasterStarts(pg);
  const r = await reconfigureUnderWrites(
    pg,
    () => bouncers.service,
    prod({ postgres: { maxConnections, parameters: reloadOnly } }),
  );
  log.push(
    `postmaster: ${JSON.stringify({ ...r, run: { seconds: r.run.seconds, summary: r.run.summary } })}\n${r.run.output}`,
  );
  expect(r.run.code).toBe(0);
  const s = r.run.summary!;
  expect(s.patched).toEqual([`max_connections: ${maxConnections - 50} -> ${maxConnections}`]);
  const replicas = pg.members.map((m) => m.name).filter((n) => n !== leader);
  // The replicas, each once, before the switchover; the old leader restarts as a replica when it is demoted.
  expect([...s.restarted].sort()).toEqual(expect.arrayContaining(replicas));
  expect(s.switchover).toMatchObject({ from: leader, to: expect.stringMatching(/^postgres-\d$/) });
  expect(s.leaderRestarted).toBe(false);
  const after = await postmasterStarts(pg);
  const switchoverAt = s.switchover!.startedAt * 1000;
  for (const name of replicas) {
    expect(after[name]).toBeGreaterThan(before[name]);
    expect(after[name]).toBeLessThan(switchoverAt);
  }
  expect(after[leader]).toBeGreaterThan(switchoverAt);
  expect(pg.members[await pg.leaderIndex()].name).toBe(s.switchover!.to);
  expect(await settingsOnMembers(['max_connections'])).toEqual(
    pg.members.map(() => ({ max_connections: String(maxConnections) })),
  );
  // Writes: none acknowledged lost; failures only from the switchover to the first write after it
  // (the replicas' restarts fail none: the synchronous standby restarts last, once the other streams).
  expect(r.acknowledged).toBeGreaterThan(100);
  expect(r.lost).toBe(0);
  expect(r.failedOutsideSwitchover).toBe(0);
  // Measured 2-4 s on loopback (bench/results.md); 10 s leaves room for a loaded CI machine.
  expect(r.switchoverGapSeconds).toBeLessThan(10);
  expect(r.maxGapSeconds).toBeLessThan(10);
});

test('a second run of the same configuration changes nothing', async () => {
  const before = await postmasterStarts(pg);
  const leader = await pg.leaderIndex();
  const run = await pg.reconfigure(prod({ postgres: { maxConnections, parameters: reloadOnly } }));
  log.push(`again: ${run.seconds.toFixed(1)} s\n${run.output}`);
  expect(run.code).toBe(0);
  expect(run.summary).toEqual({ patched: [], restarted: [], switchover: null, leaderRestarted: false });
  expect(await postmasterStarts(pg)).toEqual(before);
  expect(await pg.leaderIndex()).toBe(leader);
});

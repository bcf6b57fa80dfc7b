/**
 * Rotation of the application's PostgreSQL password (docs/postgres-security.md#rotation) on real
 * servers: Patroni 3.0.2 + PostgreSQL 15 and two PgBouncer 1.18 pods started from dev's shipped
 * files with `postgres.credentials.alternateLogin`, the Secret updated as the kubelet updates a
 * mounted Secret, under a traffic loop through PgBouncer with the API's own connection logic
 * (service/src/db: the pool makes its connections with the login read from the files).
 *   1. new password on the login not in use (the roles Job, or ALTER ROLE as the superuser), and
 *      in the Secret; wait until every PgBouncer pod accepts it;
 *   2. flip `active-login`: new connections use that login; the other one is rotated next time.
 * A control shows the test can fail: an in-place ALTER ROLE of the login in use fails requests.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, escapeLiteral } from 'pg';
import { parse } from 'yaml';
import type { FastifyBaseLogger } from 'fastify';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { type PatroniLaunch, type PgBouncerLaunch, startPatroni, startPgBouncer } from '../tools/runtime/launcher';
import {
  freePort,
  makeTempDir,
  osUser,
  removeDir,
  sleep,
  spawnServer,
  stopGroup,
  waitFor,
} from '../tools/runtime/launcher/processes';
import { EXPORTERS, type ExporterSet } from '../tools/runtime/metrics-check/servers';
import { writeSecretVolume } from '../tools/runtime/secret-volume';
import { loadConfig } from '../service/src/config';
import { Database } from '../service/src/db/database';
import { alternateLoginOf } from '../constructs/postgres/credentials-settings';

jest.setTimeout(300000);

const objects = synthObjects(loadEnvironment('dev', { postgres: { credentials: { alternateLogin: true } } }));
let pg: PatroniLaunch;
let bouncers: PgBouncerLaunch;
let apiDir = '';
/** The Secret as it is now: password, alternate-password, active-login (absent at first). */
const secret: Record<string, string> = {};

const silent = { warn: () => undefined, info: () => undefined, error: () => undefined } as unknown as FastifyBaseLogger;

function writeSecret(): void {
  const s = { ...secret };
  writeSecretVolume(apiDir, s);
  bouncers.writeCredentials({ password: s.password, alternatePassword: s['alternate-password'] });
}

/** Whether `user` logs in with `password` at `ep` (a PgBouncer pod or a member). */
async function accepts(ep: { host: string; port: number }, user: string, password: string): Promise<boolean> {
  const c = new Client({ host: ep.host, port: ep.port, database: pg.database, user, password });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * API pods: each a Database of the service (its pools make connections with the login read from the
 * files, recycled every second so new logins happen all the time), running queries in a loop.
 */
class Traffic {
  ok = 0;
  failed: { at: number; message: string }[] = [];
  /** Requests served per login (current_user). */
  byUser: Record<string, number> = {};
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly dbs: Database[] = [];

  constructor(pods: number) {
    const cfg = loadConfig({
      POSTGRES_SERVER: `${bouncers.service.host}:${bouncers.service.port}`,
      POSTGRES_DB: pg.database,
      POSTGRES_USER: pg.user,
      POSTGRES_PASSWORD_FILE: join(apiDir, 'password'),
      POSTGRES_ALTERNATE_USER: alternateLoginOf(pg.user),
      POSTGRES_ALTERNATE_PASSWORD_FILE: join(apiDir, 'alternate-password'),
      POSTGRES_ACTIVE_LOGIN_FILE: join(apiDir, 'active-login'),
      MANAGEMENT_TOKEN: '0123456789abcdef',
      CACHE_ENABLED: 'false',
      DB_POOL_SIZE: '2',
      DB_MAX_OVERFLOW: '2',
      DB_POOL_RECYCLE: '1',
    });
    for (let p = 0; p < pods; p++) {
      this.dbs.push(new Database(cfg.postgres, silent));
      this.loops.push(this.loop(p));
    }
  }

  private async loop(p: number): Promise<void> {
    while (this.running) {
      try {
        const rows = await this.dbs[p].onPool<{ u: string }>(this.dbs[p].primary, 'SELECT current_user AS u', 5000);
        this.byUser[rows[0].u] = (this.byUser[rows[0].u] ?? 0) + 1;
        this.ok++;
      } catch (e) {
        this.failed.push({ at: Date.now(), message: `pod ${p}: ${(e as Error).message}` });
      }
      await sleep(5);
    }
  }

  reset(): void {
    this.ok = 0;
    this.failed = [];
    this.byUser = {};
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    await Promise.all(this.dbs.map((d) => d.close()));
  }
}

let traffic: Traffic | undefined;

beforeAll(async () => {
  pg = await startPatroni(objects, { members: 2 });
  // The roles Job of the option: it makes <user>_b with the Secret's alternate-password.
  const roles = await pg.rolesJob();
  expect(roles.output).toBe('');
  expect(roles.code).toBe(0);
  bouncers = await startPgBouncer(objects, {
    server: pg.primary,
    password: pg.password,
    alternatePassword: pg.alternatePassword,
  });
  apiDir = makeTempDir('fastnext-api-secret-');
  Object.assign(secret, { password: pg.password, 'alternate-password': pg.alternatePassword });
  writeSecret();
});
afterAll(async () => {
  await traffic?.stop();
  await bouncers?.stop();
  await pg?.stop();
  if (apiDir) removeDir(apiDir);
});

/** The roles Job as Kubernetes runs it: with the Secrets' values as they are now (`changed` among them). */
const rolesJobNow = (changed: Record<string, string> = {}) =>
  pg.rolesJob(undefined, {
    POSTGRES_PASSWORD: secret.password,
    POSTGRES_ALTERNATE_PASSWORD: secret['alternate-password'],
    ...changed,
  });

const login = (active: 'a' | 'b') => (active === 'a' ? pg.user : alternateLoginOf(pg.user));
const key = (active: 'a' | 'b') => (active === 'a' ? 'password' : 'alternate-password');

/**
 * One rotation: a new password for the login not in use (`inactive`), set on the server by `setOnServer`
 * and in the Secret; once every PgBouncer pod accepts it, `active-login` names it.
 */
async function rotate(inactive: 'a' | 'b', setOnServer: (user: string, password: string) => Promise<void>) {
  const user = login(inactive);
  const old = secret[key(inactive)];
  const next = randomBytes(18).toString('base64url');
  const t0 = Date.now();
  secret[key(inactive)] = next;
  writeSecret();
  await setOnServer(user, next);
  await waitFor(
    `every PgBouncer pod accepts ${user}'s new password`,
    async () => {
      for (const pod of bouncers.pods) if (!(await accepts(pod, user, next))) return false;
      return true;
    },
    30000,
  );
  const applied = Date.now() - t0;
  secret['active-login'] = user;
  writeSecret();
  const t1 = Date.now();
  // Every connection made from now on is the new login's; old ones are recycled within a second.
  await sleep(2500);
  traffic!.byUser = {};
  await sleep(1500);
  expect(Object.keys(traffic!.byUser)).toEqual([user]);
  return { user, old, next, appliedMs: applied, flippedMs: Date.now() - t1 };
}

const report: string[] = [];
afterAll(() => console.log(`PostgreSQL app credential rotation:\n${report.join('\n')}`));

test('the roles Job made the second login a member of the runtime role, with its statement_timeout', async () => {
  const [r] = await pg.query<{ member: boolean; config: string[]; super: boolean }>(
    pg.primary,
    `SELECT pg_has_role($1, $2, 'MEMBER') AS member, rolconfig AS config, rolsuper AS super
       FROM pg_roles WHERE rolname = $1`,
    [alternateLoginOf(pg.user), pg.user],
  );
  expect(r).toEqual({ member: true, config: [expect.stringMatching(/^statement_timeout=/)], super: false });
  expect(await accepts(bouncers.service, alternateLoginOf(pg.user), pg.alternatePassword)).toBe(true);
});

test('two rotations of the app credential under traffic: 0 failed requests, the old passwords refused', async () => {
  traffic = new Traffic(3);
  await sleep(1500);
  expect(Object.keys(traffic.byUser)).toEqual([pg.user]);
  // 1: <user>_b gets a new password through the roles Job (its Secret's value), then goes live.
  const first = await rotate('b', async (_user, password) => {
    const run = await rolesJobNow({ POSTGRES_ALTERNATE_PASSWORD: password });
    expect(run.code).toBe(0);
  });
  // 2: <user> gets a new password with ALTER ROLE as the superuser, then goes live again.
  const second = await rotate('a', async (user, password) => {
    await pg.query(pg.primary, `ALTER ROLE "${user}" PASSWORD ${escapeLiteral(password)}`);
  });
  const ok = traffic.ok;
  const failed = traffic.failed;
  report.push(
    `  ${ok} requests through PgBouncer, ${failed.length} failed; ` +
      `${first.user}: new password on both PgBouncer pods ${first.appliedMs} ms after the Secret, live ${first.flippedMs} ms; ` +
      `${second.user}: ${second.appliedMs} ms, live ${second.flippedMs} ms`,
  );
  expect(failed).toEqual([]);
  expect(ok).toBeGreaterThan(100);
  for (const r of [first, second]) {
    for (const ep of [pg.primary, ...bouncers.pods]) expect(await accepts(ep, r.user, r.old)).toBe(false);
    expect(await accepts(pg.primary, r.user, r.next)).toBe(true);
  }
});

test('control: an in-place ALTER ROLE of the login in use fails requests until the Secret catches up', async () => {
  // GIVEN traffic on <user> (active-login names it after the second rotation)
  traffic!.reset();
  await sleep(1000);
  expect(traffic!.failed).toEqual([]);
  // WHEN its password changes on the server while PgBouncer and the API still hold the Secret's
  const user = pg.user;
  const next = randomBytes(18).toString('base64url');
  await pg.query(pg.primary, `ALTER ROLE "${user}" PASSWORD ${escapeLiteral(next)}`);
  // PgBouncer's server connections end in time (server_lifetime, a restart, a failover): at once here.
  await pg.query(pg.primary, 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [user]);
  // Until a request fails for the login (not for the terminated connections themselves).
  const forLogin = () => traffic!.failed.filter((f) => !/administrator command/.test(f.message));
  await waitFor('a request failing for the changed password', async () => forLogin().length > 0, 20000);
  const failedBefore = forLogin().length;
  // THEN requests fail (PgBouncer cannot log in to the server for new connections) ...
  report.push(
    `  control: in-place ALTER ROLE of the live login: requests fail (${failedBefore} so far: ${forLogin()[0].message})`,
  );
  expect(failedBefore).toBeGreaterThan(0);
  // ... until the Secret holds the new password too.
  secret.password = next;
  writeSecret();
  await sleep(3000);
  const settled = traffic!.failed.length;
  await sleep(2000);
  expect(traffic!.failed.length).toBe(settled);
});

describe('the other credentials', () => {
  const auth = () =>
    (parse(pg.memberConfig[0]) as { postgresql: { authentication: Record<string, { username: string }> } }).postgresql
      .authentication;

  test.each(Object.keys(EXPORTERS) as ExporterSet[])(
    "exporter (%s's binary): the Secret and the roles Job; the sidecar's passfile follows, it logs in again with the new password, no restart",
    async (set) => {
      const leader = await pg.leaderIndex();
      // GIVEN the sidecar as the pod runs it: the shipped env, the pod's uid, the passfile its member's entry point writes
      const port = await freePort('127.0.0.1');
      const log = join(apiDir, `exporter-${set}.log`);
      const exporter = spawnServer(
        join(EXPORTERS[set], 'prometheus-postgres-exporter'),
        [`--web.listen-address=127.0.0.1:${port}`],
        { env: { PATH: '/usr/bin:/bin', ...pg.exporterEnv(leader) }, logFile: log, ...osUser('postgres') },
      );
      const pgUp = async () => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text().catch(() => '');
        return /^pg_up 1$/m.test(text);
      };
      /** Two scrapes in a row (the exporter notices a dead connection on the first). */
      const upAfterReconnect = async () => (await pgUp()) || (await pgUp());
      const dropSessions = async () =>
        pg.query(pg.members[leader], 'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [
          pg.exporter.user,
        ]);
      try {
        await waitFor('the exporter is up', pgUp, 20000, () => readFileSync(log, 'utf8'));
        const old = pg.exporter.password;
        const next = randomBytes(18).toString('base64url') + ':\\x';
        // WHEN the server has the new password (the roles Job with the Secret's new value) ...
        const run = await rolesJobNow({ POSTGRES_EXPORTER_PASSWORD: next });
        expect(run.code).toBe(0);
        // ... its open session still answers; a new one (control) fails while the passfile holds the old password
        expect(await pgUp()).toBe(true);
        await dropSessions();
        expect(await upAfterReconnect()).toBe(false);
        // ... and the Secret follows (kubelet swaps the file): the entry point rewrites the passfile
        const t0 = Date.now();
        pg.setMemberSecrets({ exporterPassword: next });
        await waitFor('the exporter logs in again', pgUp, 20000, () => readFileSync(log, 'utf8').slice(-2000));
        const back = Date.now() - t0;
        // THEN it follows again after another drop, and it was never restarted
        await dropSessions();
        await waitFor('the exporter logs in after another drop', upAfterReconnect, 10000);
        expect(exporter.child.exitCode).toBeNull();
        report.push(
          `  exporter (${set}): the control scrape failed with the old passfile; pg_up 1 again ${back} ms after the Secret changed, no restart`,
        );
        expect(await accepts(pg.members[leader], pg.exporter.user, next)).toBe(true);
        expect(await accepts(pg.members[leader], pg.exporter.user, old)).toBe(false);
      } finally {
        await stopGroup(exporter, 'SIGTERM', 5000);
      }
    },
  );

  test('superuser and replication: ALTER ROLE, then the Secret: every member reloads, 0 failed requests, no restart', async () => {
    const a = auth();
    const oldSuper = pg.superuser.password;
    const oldReplication = pg.replicationPassword;
    const superNext = randomBytes(18).toString('base64url');
    const replicationNext = randomBytes(18).toString('base64url');
    const leader = await pg.leaderIndex();
    const replica = 1 - leader;
    const reloads = (i: number) =>
      (pg.log(i).match(/patroni-start: credentials changed: Patroni reloaded/g) ?? []).length;
    const reloadsBefore = pg.members.map((_, i) => reloads(i));
    /** Ends the replica's replication connection on the leader: its WAL receiver must log in again. */
    const dropStream = async () => {
      // As the superuser with the new password (the server has it from step 1 on).
      const c = new Client({ ...pg.clientConfig(pg.members[leader], 'superuser'), password: superNext });
      await c.connect();
      try {
        const { rows } = await c.query<{ n: number }>(
          'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_replication WHERE application_name = $1',
          [pg.members[replica].name],
        );
        expect(rows[0].n).toBe(1);
      } finally {
        await c.end();
      }
    };
    traffic ??= new Traffic(3);
    traffic.reset();
    const t0 = Date.now();
    // 1. The new passwords on the server (the leader; the replica follows by WAL). Sessions and the stream stay.
    await pg.query(
      pg.members[leader],
      `ALTER ROLE "${a.replication.username}" PASSWORD ${escapeLiteral(replicationNext)};
       ALTER ROLE "${a.rewind.username}" PASSWORD ${escapeLiteral(replicationNext)};
       ALTER ROLE "${a.superuser.username}" PASSWORD ${escapeLiteral(superNext)}`,
    );
    // Control: until the Secret catches up, the replica cannot log in again with the password it holds.
    await dropStream();
    await sleep(4000);
    expect(await pg.streaming(replica)).toBe(false);
    expect(reloads(replica)).toBe(reloadsBefore[replica]);
    // 2. The Secret, as the kubelet updates the members' credentials volumes: each entry point reloads Patroni.
    const t1 = Date.now();
    pg.setMemberSecrets({ superuserPassword: superNext, replicationPassword: replicationNext });
    await waitFor(
      'every member reloaded with the new passwords',
      async () => pg.members.every((_, i) => reloads(i) > reloadsBefore[i]),
      30000,
      () => pg.members.map((_, i) => pg.log(i).slice(-2000)).join('\n'),
    );
    const reloaded = Date.now() - t1;
    // The replica streams again, logged in with the new replication password (the old one is refused below).
    await waitFor(
      'the replica streams again',
      () => pg.streaming(replica),
      60000,
      () => pg.log(replica).slice(-3000),
    );
    const streamingAgain = Date.now() - t1;
    // And again from now on: a later reconnect uses the new password at once.
    await dropStream();
    const t2 = Date.now();
    await waitFor('the replica streams after another reconnect', () => pg.streaming(replica), 30000);
    const reconnect = Date.now() - t2;
    await sleep(1000);
    const rotationOk = traffic!.ok;
    const rotationFailed = [...traffic!.failed];
    // 3. A later switchover (not part of the rotation): the old leader, never restarted, is demoted and
    // streams from the new leader with the replication password it reloaded.
    // synchronous_mode: the switchover's candidate must be the sync standby again after its reconnects.
    await waitFor(
      'the replica is the sync standby again',
      async () => (await pg.cluster()).some((m) => m.name === pg.members[replica].name && m.role === 'sync_standby'),
      60000,
    );
    traffic!.reset();
    const sw0 = Date.now();
    const sw = await pg.patronictl(
      'switchover',
      '--leader',
      pg.members[leader].name,
      '--candidate',
      pg.members[replica].name,
      '--force',
    );
    expect(sw.code).toBe(0);
    expect(sw.output).not.toMatch(/failed/i);
    await waitFor(
      'the replica leads',
      async () => (await pg.leaderIndex()) === replica,
      60000,
      () => sw.output,
    );
    await waitFor(
      'the old leader streams from the new one',
      () => pg.streaming(leader),
      60000,
      () => pg.log(leader).slice(-3000),
    );
    const demoted = Date.now() - sw0;
    report.push(
      `  superuser + replication: ${rotationOk} requests through PgBouncer during the rotation, ${rotationFailed.length} failed; ` +
        `no member restarted; control: the replica could not log in again for 4 s with the old password; ` +
        `every member reloaded ${reloaded} ms after the Secret, the replica streamed again after ${streamingAgain} ms ` +
        `(the WAL receiver retries every 5 s), a later reconnect in ${reconnect} ms; rotation total ${((Date.now() - t0) / 1000).toFixed(1)} s. ` +
        `A later switchover (${traffic!.failed.length} failed of ${traffic!.ok + traffic!.failed.length}, its write gap): ` +
        `the old leader streams with the reloaded password ${demoted} ms after it began`,
    );
    expect(rotationFailed).toEqual([]);
    expect(rotationOk).toBeGreaterThan(100);
    // Both members: the new superuser password logs in over the network, the old passwords are refused.
    for (const m of pg.members) {
      const c = new Client({ ...pg.clientConfig(m, 'superuser'), database: 'postgres' });
      await c.connect();
      await c.end();
      for (const [user, password] of [
        [a.superuser.username, oldSuper],
        [a.replication.username, oldReplication],
      ]) {
        const old = new Client({ ...pg.clientConfig(m), user, password, database: 'postgres' });
        old.on('error', () => undefined);
        await expect(old.connect()).rejects.toThrow(/password authentication failed/);
        await old.end().catch(() => undefined);
      }
    }
    // No member was restarted for it: one Patroni process each since the start.
    for (let i = 0; i < pg.members.length; i++) expect(pg.running(i)).toBe(true);
  });
});

/**
 * PostgreSQL security on real servers: Patroni 3.0.2 + PostgreSQL 15 (Debian) from prod's shipped
 * `postgres-files`, with pod networks from `postgres.allowedCidrs` (IPv4 CGNAT and IPv6), and the
 * exporter logging in as its own role (pg_monitor, no superuser) through the Debian postgres_exporter.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { type PatroniLaunch, type PgBouncerLaunch, startPatroni, startPgBouncer } from '../tools/runtime/launcher';
import { loadConfig } from '../service/src/config';
import { connectionOptions } from '../service/src/db/database';
import { startExporter, stopAll } from '../tools/runtime/metrics-check/servers';
import { find, type Obj } from './helpers/objects';
import { parse } from 'yaml';
import { runToEnd, waitFor } from '../tools/runtime/launcher/processes';
import { filesFrom } from '../tools/runtime/launcher/sources';
import { issueTwinTls } from '../tools/runtime/launcher/tls';
import { tlsSecretGeneratorScript } from '../constructs/core/generated-secret';
import { makeTempDir } from '../tools/runtime/launcher/processes';

jest.setTimeout(240000);

const ALLOWED = ['100.64.0.0/10', 'fd00:10::/56', '10.0.0.0/8'];
const objects = synthObjects(loadEnvironment('prod', { postgres: { allowedCidrs: ALLOWED } })) as Obj[];
let pg: PatroniLaunch;
let bouncers: PgBouncerLaunch;
let FOREIGN_CA = '';

beforeAll(async () => {
  pg = await startPatroni(objects, { members: 2 });
  // Another CA (the generator's own, as another cluster's Secret would have).
  FOREIGN_CA = (
    await issueTwinTls(tlsSecretGeneratorScript(), {
      dir: makeTempDir('fastnext-foreign-tls-'),
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
    })
  ).ca;
});
afterAll(async () => {
  stopAll();
  await bouncers?.stop();
  await pg?.stop();
});

test('allowedCidrs: PostgreSQL loads every IPv4 and IPv6 rule of the shipped pg_hba without error', async () => {
  for (const m of pg.members) {
    const rules = await pg.query<{
      type: string;
      address: string | null;
      netmask: string | null;
      error: string | null;
    }>(m, 'SELECT type, address, netmask, error FROM pg_hba_file_rules');
    expect(rules.filter((r) => r.error)).toEqual([]);
    // Per network: replication, rewind, the runtime role, the migration role, the superuser (the roles Job).
    expect(rules.filter((r) => r.address === 'fd00:10::').map((r) => r.netmask)).toEqual(
      Array(5).fill('ffff:ffff:ffff:ff00::'),
    );
    expect(rules.filter((r) => r.address === '100.64.0.0')).toHaveLength(5);
  }
});

describe('the exporter logs in as its own role', () => {
  test('the StatefulSet points the exporter at that role and its own Secret, not the superuser', () => {
    const sts = find(objects, 'StatefulSet', 'postgres');
    const exporter = sts.spec.template.spec.containers.find((c: Obj) => c.name === 'exporter');
    const env = Object.fromEntries(exporter.env.map((e: Obj) => [e.name, e.value ?? e.valueFrom]));
    // Its role in the DSN, no password there: the driver reads the passfile the entry point writes from
    // the exporter's own Secret (test/postgres-rotation.test.ts runs it).
    expect(env.DATA_SOURCE_NAME).toMatch(
      new RegExp(`^postgresql://${pg.exporter.user}@127\\.0\\.0\\.1:5432/postgres\\?sslmode=verify-full&`),
    );
    expect(env.PGPASSFILE).toBe('/var/run/postgresql/exporter.pgpass');
    expect(Object.keys(env).filter((k) => /PASS/.test(k) && k !== 'PGPASSFILE')).toEqual([]);
    const volume = sts.spec.template.spec.volumes.find((v: Obj) => v.name === 'exporter-credentials');
    expect(volume.secret).toMatchObject({
      secretName: 'postgres-exporter-credentials',
      items: [{ key: 'password', path: 'exporter-password' }],
    });
  });

  test('post-bootstrap made it: LOGIN, pg_monitor, no superuser, no other right', async () => {
    const [role] = await pg.query<Record<string, unknown>>(
      pg.primary,
      `SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin,
              ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid
                     WHERE m.member = r.oid ORDER BY 1)::text[] AS member_of
         FROM pg_roles r WHERE rolname = $1`,
      [pg.exporter.user],
    );
    expect(role).toEqual({
      rolsuper: false,
      rolcreaterole: false,
      rolcreatedb: false,
      rolreplication: false,
      rolbypassrls: false,
      rolcanlogin: true,
      member_of: ['pg_monitor'],
    });
  });

  test('it reads what monitoring needs and is refused what a superuser could do', async () => {
    const e = new Client({ ...pg.clientConfig(pg.primary), database: 'postgres', ...pg.exporter });
    e.on('error', () => undefined);
    await e.connect();
    try {
      const { rows } = await e.query(
        "SELECT current_setting('is_superuser') AS su, (SELECT count(*)::int FROM pg_stat_replication WHERE sent_lsn IS NOT NULL) AS streaming",
      );
      // pg_monitor sees the replication columns a plain role gets as NULL.
      expect(rows[0]).toEqual({ su: 'off', streaming: 1 });
      // The backup status (a SECURITY DEFINER function running pgBackRest's info) is granted to it.
      const backups = await e.query('SELECT type, repo_status_code FROM public.pgbackrest_backup_status()');
      expect(backups.rows.map((r) => r.type)).toEqual(['full', 'diff', 'incr']);
      for (const sql of [
        "COPY (SELECT 1) TO PROGRAM 'true'",
        "SELECT pg_read_file('postgresql.conf')",
        'CREATE TABLE exporter_must_not (id int)',
        `ALTER ROLE ${pg.user} PASSWORD 'x'`,
        `SELECT * FROM pg_authid`,
      ]) {
        await expect(e.query(sql)).rejects.toThrow(/permission denied|must be superuser|must have CREATEROLE/);
      }
    } finally {
      await e.end();
    }
  });

  test('a cluster bootstrapped before the role existed gets it by running post-bootstrap.sh again on the leader', async () => {
    // GIVEN a cluster without the exporter role (as one made before this change)
    const leader = await pg.leaderIndex();
    const su = new Client({ ...pg.clientConfig(pg.primary, 'superuser'), database: 'postgres' });
    await su.connect();
    await su.query(`DROP OWNED BY ${pg.exporter.user}`);
    await su.query(`DROP ROLE ${pg.exporter.user}`);
    await su.end();
    const login = async () => {
      const e = new Client({ ...pg.clientConfig(pg.primary), database: 'postgres', ...pg.exporter });
      e.on('error', () => undefined);
      await e.connect();
      const { rows } = await e.query('SELECT count(*)::int AS n FROM public.pgbackrest_backup_status()');
      await e.end();
      return rows[0].n;
    };
    await expect(login()).rejects.toThrow(/password authentication failed/);
    // WHEN the documented upgrade step runs: kubectl exec <leader> -c patroni -- sh /etc/patroni/post-bootstrap.sh <socket>
    const run = await pg.execShipped(leader, 'post-bootstrap.sh', pg.socketDsn(leader));
    expect([run.code, run.output]).toEqual([0, expect.any(String)]);
    // THEN the exporter logs in and reads the backup status again
    expect(await login()).toBe(3);
  });

  test('the Debian postgres_exporter as that role: pg_up 1 and the replication and settings series', async () => {
    const port = await startExporter({ kind: 'postgres', ...pg.members[0], ...pg.exporter, caFile: pg.tls!.caFile });
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/^pg_up 1$/m);
    expect(text).toMatch(/^pg_settings_max_connections[{ ]/m);
    expect(text).toMatch(/^pg_stat_database_xact_commit\{/m);
    // pg_monitor: a plain role reads the LSN columns of pg_stat_replication as NULL.
    expect(text).toMatch(/^pg_stat_replication_pg_wal_lsn_diff\{/m);
  });
});

/** The certificate a new connection to `ep` is shown (openssl's PostgreSQL STARTTLS). */
const presented = async (ep: { host: string; port: number }) => {
  const r = await runToEnd(
    'sh',
    [
      '-c',
      `openssl s_client -starttls postgres -connect ${ep.host}:${ep.port} </dev/null 2>/dev/null | openssl x509 -noout -fingerprint -sha256`,
    ],
    { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
  );
  return r.output.trim();
};

describe('TLS on every TCP connection (prod: generated in-cluster, here by the same script)', () => {
  test('pg_hba: every TCP rule that admits is hostssl; only the reject lines are host', () => {
    const hba: string[] = parse(filesFrom(objects, 'postgres-files', ['patroni.yml'])['patroni.yml']).postgresql.pg_hba;
    expect(hba.filter((l) => /^host\s/.test(l))).toEqual(['host all all 0.0.0.0/0 reject', 'host all all ::/0 reject']);
    expect(hba.filter((l) => l.startsWith('hostssl')).length).toBeGreaterThan(5);
  });

  test('verify-full against the CA succeeds and the session is encrypted; plaintext and a foreign CA are refused', async () => {
    const c = await pg.connect(pg.primary, 'app');
    try {
      const { rows } = await c.query('SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      expect(rows[0]).toEqual({ ssl: true, version: expect.stringMatching(/^TLSv1\.[23]$/) });
    } finally {
      await c.end();
    }
    const plain = new Client({ ...pg.clientConfig(pg.primary, 'app'), ssl: false });
    plain.on('error', () => undefined);
    await expect(plain.connect()).rejects.toThrow(/pg_hba.conf rejects connection .* no encryption/);
    const foreign = new Client({
      ...pg.clientConfig(pg.primary, 'app'),
      ssl: { ca: FOREIGN_CA, rejectUnauthorized: true },
    });
    foreign.on('error', () => undefined);
    await expect(foreign.connect()).rejects.toThrow(/self[- ]signed|unable to verify|unable to get/i);
  });

  test('the replica streams from the leader over TLS', async () => {
    const rows = await pg.query<{ application_name: string; ssl: boolean }>(
      pg.primary,
      'SELECT r.application_name, s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)',
    );
    expect(rows).toEqual([{ application_name: pg.members[1].name, ssl: true }]);
  });

  test('a renewed certificate is picked up by tls-reload.sh (pg_reload_conf): new connections get it, no restart', async () => {
    const leader = pg.members[await pg.leaderIndex()];
    const before = await presented(leader);
    const [{ started: startedBefore }] = await pg.query<{ started: string }>(
      leader,
      'SELECT pg_postmaster_start_time()::text AS started',
    );
    // WHEN kubelet swaps in a renewed Secret (a new certificate from the same CA)
    const t0 = Date.now();
    await pg.reissueTls();
    // THEN within the sidecar's interval (1 s here, 30 s in the pod) new connections see the new one
    await waitFor('the new certificate', async () => (await presented(leader)) !== before, 20000);
    const seconds = (Date.now() - t0) / 1000;
    console.log(`certificate swap picked up after ${seconds.toFixed(1)} s (reload interval 1 s)`);
    const c = await pg.connect(leader, 'app');
    await c.end();
    const [{ started }] = await pg.query<{ started: string }>(
      leader,
      'SELECT pg_postmaster_start_time()::text AS started',
    );
    expect(started).toBe(startedBefore);
    expect(seconds).toBeLessThan(10);
  });
});

test("tls-reload.sh as its container's PID 1: the probes read its heartbeat, and kubelet's SIGTERM ends it at once", async () => {
  const sts = find(objects, 'StatefulSet', 'postgres');
  const c = sts.spec.template.spec.containers.find((x: Obj) => x.name === 'tls-reload');
  const podEnv = Object.fromEntries((c.env as { name: string; value: string }[]).map((e) => [e.name, e.value]));
  const dir = makeTempDir('fastnext-tls-reload-');
  const heartbeat = join(dir, 'tls-reload.alive');
  const script = join(dir, 'tls-reload.sh');
  writeFileSync(script, filesFrom(objects, 'postgres-files', ['tls-reload.sh'])['tls-reload.sh']);
  const PATH = process.env.PATH ?? '/usr/bin:/bin';
  // The pod's probe commands, with the heartbeat's path in the pod mapped to this directory.
  const probe = async (command: string[]) =>
    (
      await runToEnd(
        command[0],
        command.slice(1).map((a) => a.split(podEnv.TLS_RELOAD_HEARTBEAT).join(heartbeat)),
        { env: { PATH } },
      )
    ).code;
  const readiness = c.readinessProbe.exec.command as string[];
  const liveness = c.livenessProbe.exec.command as string[];
  expect(await probe(readiness)).not.toBe(0);
  // The script as PID 1 of its own PID namespace (a container's), with the pod's interval (30 s).
  const children = (pid: number) =>
    readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  const asPid1 = (args: string[], env: Record<string, string>) => {
    const p = spawn('unshare', ['--pid', '--fork', '--kill-child', ...args], {
      env: { PATH, ...env },
      stdio: 'ignore',
    });
    const exited = new Promise<number>((r) => p.once('exit', () => r(Date.now())));
    return { p, exited };
  };
  const loop = asPid1(['sh', script], {
    TLS_DIR: pg.tls!.dir,
    PGHOST: dir,
    TLS_RELOAD_INTERVAL_SECONDS: podEnv.TLS_RELOAD_INTERVAL_SECONDS,
    TLS_RELOAD_HEARTBEAT: heartbeat,
  });
  await waitFor('the heartbeat', async () => existsSync(heartbeat), 10000);
  expect([await probe(readiness), await probe(liveness)]).toEqual([0, 0]);
  // A loop that stopped turning (heartbeat older than three turns) fails liveness; readiness stays.
  const old = Date.now() / 1000 - 3 * Number(podEnv.TLS_RELOAD_INTERVAL_SECONDS) - 60;
  utimesSync(heartbeat, old, old);
  expect([await probe(readiness), await probe(liveness)]).toEqual([0, 1]);
  // Control: a shell as PID 1 that traps nothing ignores SIGTERM (what the loop did before its trap).
  const control = asPid1(['sh', '-c', 'sleep 30'], {});
  await waitFor('the control shell', async () => children(control.p.pid!).length === 1, 5000);
  process.kill(children(control.p.pid!)[0], 'SIGTERM');
  const ignored = await Promise.race([
    control.exited.then(() => false),
    new Promise<boolean>((r) => setTimeout(() => r(true), 1500)),
  ]);
  control.p.kill('SIGKILL');
  expect(ignored).toBe(true);
  // WHEN kubelet stops the container (SIGTERM to its PID 1) THEN the loop ends at once.
  const [pid1] = children(loop.p.pid!);
  const t0 = Date.now();
  process.kill(pid1, 'SIGTERM');
  const seconds = ((await loop.exited) - t0) / 1000;
  console.log(
    `tls-reload (PID 1) ended ${seconds.toFixed(2)} s after SIGTERM (interval ${podEnv.TLS_RELOAD_INTERVAL_SECONDS} s)`,
  );
  expect(seconds).toBeLessThan(2);
});

describe('PgBouncer and the API over TLS', () => {
  beforeAll(async () => {
    bouncers = await startPgBouncer(objects, { server: pg.primary, password: pg.password, pods: 1, exporter: true });
  });

  test('pgbouncer.ini: clients must use TLS, the server is verified (verify-full)', () => {
    const ini = filesFrom(objects, 'pgbouncer-config', ['pgbouncer.ini'])['pgbouncer.ini'];
    expect(ini).toMatch(/^client_tls_sslmode = require$/m);
    expect(ini).toMatch(/^server_tls_sslmode = verify-full$/m);
  });

  test("the API's own connection code (verify-full from its env) reaches PostgreSQL through PgBouncer, TLS on both hops", async () => {
    // GIVEN the API's env as the Deployment sets it (the CA file a mounted Secret's ca.crt)
    const api = find(objects, 'Deployment', 'api').spec.template.spec.containers[0];
    const env = Object.fromEntries(api.env.map((e: Obj) => [e.name, e.value]));
    expect([env.POSTGRES_SSL_MODE, env.POSTGRES_SSL_ROOT_CERT]).toEqual([
      'verify-full',
      '/var/run/secrets/fastnext/postgres-tls/ca.crt',
    ]);
    const cfg = loadConfig({
      ...env,
      POSTGRES_SERVER: `${bouncers.service.host}:${bouncers.service.port}`,
      POSTGRES_PASSWORD_FILE: '',
      POSTGRES_PASSWORD: pg.password,
      POSTGRES_SSL_ROOT_CERT: bouncers.tls!.caFile,
      MANAGEMENT_TOKEN_FILE: '',
      MANAGEMENT_TOKEN: 'x'.repeat(32),
      REDIS_PASSWORD_FILE: '',
    }).postgres;
    const c = new Client(connectionOptions(cfg, cfg.primary, 'tls-test'));
    c.on('error', () => undefined);
    await c.connect();
    try {
      // PgBouncer's server connection to PostgreSQL is the backend answering: TLS there too.
      const { rows } = await c.query('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
      expect(rows[0].ssl).toBe(true);
    } finally {
      await c.end();
    }
    // A plaintext client is refused by PgBouncer itself.
    const plain = new Client({ ...pg.clientConfig(bouncers.service, 'app'), ssl: false });
    plain.on('error', () => undefined);
    await expect(plain.connect()).rejects.toThrow(/SSL required/);
  });

  test('the pgbouncer exporter (verify-full to its own pod) reports pgbouncer_up 1', async () => {
    const m = bouncers.pods[0].metrics!;
    await waitFor(
      'pgbouncer_up 1',
      async () => /^pgbouncer_up 1$/m.test(await (await fetch(`http://${m.host}:${m.port}/metrics`)).text()),
      20000,
    );
  });

  test('a renewed certificate is picked up by PgBouncer (SIGHUP from its entry point), no restart', async () => {
    const pod = bouncers.pods[0];
    const before = await presented(pod);
    const t0 = Date.now();
    await bouncers.reissueTls();
    await waitFor('PgBouncer presenting the new certificate', async () => (await presented(pod)) !== before, 20000);
    console.log(`PgBouncer certificate swap picked up after ${((Date.now() - t0) / 1000).toFixed(1)} s (interval 1 s)`);
    const c = await pg.connect(bouncers.service, 'app');
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await c.end();
  });
});

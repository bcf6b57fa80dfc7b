/**
 * The data-tier images we ship, run with the pod specs of the synthesized dev manifests
 * (not copies): `ghcr.io/fastnext/postgres` (PostgreSQL 15 + Patroni) as two members of the
 * `postgres` StatefulSet, and `ghcr.io/fastnext/pgbouncer` as a `pgbouncer` pod in front of
 * them. Each runs as the pod's uid/gid with a read-only root, no capabilities,
 * no-new-privileges, the ConfigMap files mounted read-only, emptyDirs as tmpfs and the data
 * volume as a host directory (the claim).
 *
 * What differs from the cluster, and only that (as in the process twin,
 * tools/runtime/launcher/patroni.ts `twinPatroniConfig`): Patroni's DCS is one etcd on
 * loopback instead of the Kubernetes API (so the PATRONI_KUBERNETES_* env is not passed),
 * each member has its own loopback address (the pod IP) since containers share the host
 * network here, and PgBouncer's `[databases]` host is that leader's address. The exporter
 * sidecars (upstream images) are not run: no registry is reachable here; their versions are
 * run as Debian binaries by test/metrics-existence.test.ts.
 */
import { chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { parse } from 'yaml';
import { PATRONI_FILES } from '../constructs/postgres/patroni-files';
import { PGBOUNCER_FILES } from '../constructs/pgbouncer/pgbouncer-files';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { buildAll } from '../tools/runtime/images/build';
import { imageExists, podman, podmanArgv } from '../tools/runtime/images/podman';
import { startEtcd, twinPatroniConfig } from '../tools/runtime/launcher/patroni';
import { twinPgbouncerIni } from '../tools/runtime/launcher/pgbouncer';
import {
  type Endpoint,
  type Proc,
  freePort,
  loopbackAddresses,
  makeTempDir,
  portOpen,
  removeDir,
  runToEnd,
  spawnServer,
  stopGroup,
  waitFor,
  writeFiles,
} from '../tools/runtime/launcher/processes';
import { httpGet } from '../tools/runtime/launcher/service-proxy';
import type { Container, PodSpecLike } from '../tools/runtime/twin/api-pods';
import { podmanRunArgs, resolveEnv } from '../tools/runtime/twin/container-pods';

jest.setTimeout(900000);

type Obj = { kind: string; metadata: { name: string }; spec?: unknown; data?: Record<string, string> };
const objects = synthObjects(loadEnvironment('dev')) as unknown as Obj[];
const find = (kind: string, name: string) => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`dev has no ${kind}/${name}`);
  return o;
};
const podSpec = (o: Obj) => (o.spec as { template: { spec: PodSpecLike } }).template.spec;
const claimNames = (o: Obj) =>
  ((o.spec as { volumeClaimTemplates?: { metadata: { name: string } }[] }).volumeClaimTemplates ?? []).map(
    (t) => t.metadata.name,
  );

const sts = find('StatefulSet', 'postgres');
const pgSpec = podSpec(sts);
const patroni = pgSpec.containers.find((c) => c.name === 'patroni')!;
const pgConfig = find('ConfigMap', 'postgres-files').data!;
const bouncerSpec = podSpec(find('Deployment', 'pgbouncer'));
const bouncer = bouncerSpec.containers.find((c) => c.name === 'pgbouncer')!;
const bouncerConfig = find('ConfigMap', 'pgbouncer-config').data!;
const UID = pgSpec.securityContext!.runAsUser!;
const GID = pgSpec.securityContext!.runAsGroup!;

const SECRETS = {
  'postgres-credentials': {
    password: 'app-password-0123456789',
    'superuser-password': 'super-password-0123456789',
    'replication-password': 'repl-password-0123456789',
  },
  'postgres-exporter-credentials': { password: 'exporter-password-0123456789' },
  'postgres-migration-credentials': { 'migration-password': 'migration-password-0123456789' },
};
const env = Object.fromEntries((patroni.env ?? []).map((v) => [v.name, v.value]));
const APP_USER = env.POSTGRES_USER!;
const APP_DB = env.POSTGRES_DB!;

interface Member {
  readonly name: string;
  readonly container: string;
  readonly pg: Endpoint;
  readonly rest: Endpoint;
  readonly proc: Proc;
}

let root: string;
let etcd: { ep: Endpoint; proc: Proc };
const members: Member[] = [];
let addresses: string[];
let pgPort: number;
let restPort: number;

/** Containers share the host network: one loopback address per pod, ports as in the pod spec if free. */
const containerPort = (c: Container, name: string) => c.ports!.find((p) => p.name === name)!.containerPort;

/** Each secret volume the patroni container mounts, as the kubelet projects its items (key -> path). */
function secretDirs(memberDir: string): Record<string, string> {
  const mounted = new Set((patroni.volumeMounts ?? []).map((m) => m.name));
  const dirs: Record<string, string> = {};
  for (const v of pgSpec.volumes ?? []) {
    if (!v.secret || !mounted.has(v.name)) continue;
    const secret = v.secret as { secretName: keyof typeof SECRETS; items: { key: string; path: string }[] };
    const keys = SECRETS[secret.secretName] as Record<string, string>;
    dirs[v.name] = join(memberDir, 'secrets', v.name);
    writeFiles(dirs[v.name], Object.fromEntries(secret.items.map((it) => [it.path, keys[it.key]])));
  }
  return dirs;
}

async function startMember(i: number): Promise<Member> {
  const name = `${sts.metadata.name}-${i}`;
  const host = addresses[1 + i];
  const dir = join(root, name);
  const config = join(dir, 'config');
  const data = join(dir, 'data');
  mkdirSync(data, { recursive: true });
  chownSync(data, UID, GID);
  const shipped = pgConfig[PATRONI_FILES.patroni];
  const doc = parse(shipped) as { postgresql: Record<string, unknown> & { parameters: Record<string, unknown> } };
  writeFiles(config, {
    ...pgConfig,
    // Only the DCS and the addresses change: paths stay the shipped ones (inside the container).
    [PATRONI_FILES.patroni]: twinPatroniConfig(shipped, {
      name,
      host,
      port: pgPort,
      restPort,
      dataDir: String(doc.postgresql.data_dir),
      socketDir: String(doc.postgresql.parameters.unix_socket_directories),
      pgpassFile: String(doc.postgresql.pgpass),
      configDir: /^sh (\S+)\//.exec(
        String((parse(shipped) as { bootstrap: { post_bootstrap: string } }).bootstrap.post_bootstrap),
      )![1],
      etcdHosts: `${etcd.ep.host}:${etcd.ep.port}`,
    }),
  });
  const container = `fastnext-${process.pid}-${name}`;
  const resolved = resolveEnv(patroni, { 'metadata.name': name, 'status.podIP': host }, SECRETS);
  const passed = Object.fromEntries(Object.entries(resolved).filter(([k]) => !k.startsWith('PATRONI_KUBERNETES_')));
  const args = podmanRunArgs(pgSpec, patroni, {
    name: container,
    image: patroni.image!,
    env: passed,
    // The credentials volumes as the kubelet projects the Secrets' keys (patroni-start.sh reads them).
    secretDirs: secretDirs(dir),
    dirs: { config, [claimNames(sts)[0]]: data },
    hosts: [],
    remove: true,
  });
  const proc = spawnServer('podman', podmanArgv(args), {
    env: { ...process.env } as Record<string, string>,
    logFile: join(dir, 'patroni.log'),
  });
  return { name, container, pg: { host, port: pgPort }, rest: { host, port: restPort }, proc };
}

const cluster = async (m: Member) =>
  (
    JSON.parse((await httpGet(m.rest, '/cluster')).body) as {
      members: { name: string; role: string; state: string; lag?: unknown }[];
    }
  ).members;

const client = (ep: Endpoint, user = APP_USER, password = SECRETS['postgres-credentials'].password) =>
  new Client({ host: ep.host, port: ep.port, user, password, database: APP_DB, connectionTimeoutMillis: 5000 });

async function query<T>(ep: Endpoint, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = client(ep);
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query(sql, params)).rows as T[];
  } finally {
    await c.end();
  }
}

/** The kubelet's way: every periodSeconds, until success, at most failureThreshold failures. */
async function probe(m: Member, which: 'startupProbe' | 'readinessProbe' | 'livenessProbe'): Promise<number> {
  const p = patroni[which]!;
  if (p.httpGet) expect(containerPort(patroni, String(p.httpGet.port))).toBe(restPort);
  // An exec probe runs in the container (the image's python3 and the shipped script); only the
  // loopback REST URL becomes this member's address (Patroni listens on it, not on 0.0.0.0).
  const command = p.exec?.command?.map((a) =>
    a.replace(/^http:\/\/127\.0\.0\.1:\d+$/, `http://${m.rest.host}:${m.rest.port}`),
  );
  const t0 = Date.now();
  for (let failures = 0; ; failures++) {
    try {
      if (command) {
        await podman(['exec', m.container, ...command]);
        return Date.now() - t0;
      }
      const r = await httpGet(m.rest, p.httpGet!.path ?? '/');
      if (r.status >= 200 && r.status < 400) return Date.now() - t0;
    } catch {
      // Counted as a failure.
    }
    if (failures + 1 >= (p.failureThreshold ?? 3)) throw new Error(`${m.name}: ${which} failed`);
    await new Promise((r) => setTimeout(r, (p.periodSeconds ?? 10) * 1000));
  }
}

beforeAll(async () => {
  if (!(await imageExists(patroni.image!)) || !(await imageExists(bouncer.image!))) {
    const built = await buildAll({ only: ['postgres', 'pgbouncer'], log: () => undefined });
    expect(built.images.flatMap((i) => i.problems)).toEqual([]);
  }
  root = makeTempDir('fastnext-data-images-');
  pgPort = containerPort(patroni, 'postgres');
  restPort = containerPort(patroni, 'patroni');
  // Addresses whose shipped ports are free (another run may hold the same /24).
  for (;;) {
    addresses = loopbackAddresses(4);
    const free = await Promise.all(
      addresses
        .slice(1)
        .map(
          async (h) => !(await portOpen({ host: h, port: pgPort })) && !(await portOpen({ host: h, port: restPort })),
        ),
    );
    if (free.every(Boolean)) break;
  }
  etcd = await startEtcd(root, addresses[0]);
  members.push(await startMember(0));
  await waitFor(
    'postgres-0 leads',
    async () => (await cluster(members[0])).some((m) => m.role === 'leader' && m.state === 'running'),
    180000,
    () => members[0].proc.log(),
  );
  members.push(await startMember(1));
});

afterAll(async () => {
  for (const m of members) {
    await podman(['rm', '-f', '-t', '0', m.container]).catch(() => undefined);
    await stopGroup(m.proc, 'SIGKILL', 1000).catch(() => undefined);
  }
  if (etcd) await stopGroup(etcd.proc);
  if (root) removeDir(root);
});

describe('the postgres image under the StatefulSet pod spec', () => {
  test('both members pass the startup, readiness and liveness probes; one leads, one streams from it', async () => {
    for (const m of members) {
      await waitFor(
        `${m.name} started`,
        async () => (await probe(m, 'startupProbe')) >= 0,
        180000,
        () => m.proc.log(),
      );
      await waitFor(
        `${m.name} ready`,
        async () => (await probe(m, 'readinessProbe')) >= 0,
        180000,
        () => m.proc.log(),
      );
      await probe(m, 'livenessProbe');
    }
    await waitFor(
      'a leader and a replica streaming from it',
      async () => {
        const c = await cluster(members[0]);
        const streaming = await query<{ application_name: string; state: string }>(
          members[0].pg,
          'SELECT application_name, state FROM pg_stat_replication',
        );
        return (
          c.some((m) => m.name === 'postgres-0' && m.role === 'leader') &&
          c.some((m) => m.name === 'postgres-1' && m.role !== 'leader' && ['running', 'streaming'].includes(m.state)) &&
          streaming.some((r) => r.application_name === 'postgres-1' && r.state === 'streaming')
        );
      },
      120000,
      () => members[1].proc.log(),
    );
  });

  test('the processes run as the pod uid/gid with no capabilities and no new privileges', async () => {
    const status = await podman(['exec', members[0].container, 'cat', '/proc/1/status']);
    const field = (k: string) => new RegExp(`^${k}:\\s*(.*)$`, 'm').exec(status)?.[1].trim();
    expect(field('Uid')?.split(/\s+/)[0]).toBe(String(UID));
    expect(field('Gid')?.split(/\s+/)[0]).toBe(String(GID));
    expect(field('CapEff')).toBe('0000000000000000');
    expect(field('NoNewPrivs')).toBe('1');
    await expect(podman(['exec', members[0].container, 'touch', '/usr/lib/x'])).rejects.toThrow(
      /Read-only file system/,
    );
    // PID 1 is Patroni (the entry point exec'd it), and the entry point wrote the exporter's passfile where
    // the sidecar's PGPASSFILE names it: private (libpq ignores a group-readable one), the exporter's password.
    expect(field('Name')).toMatch(/^patroni|python3/);
    const exporter = pgSpec.containers.find((c) => c.name === 'exporter')!;
    const passfile = exporter.env!.find((e) => e.name === 'PGPASSFILE')!.value!;
    expect(await podman(['exec', members[0].container, 'stat', '-c', '%a %u', passfile])).toBe(`600 ${UID}\n`);
    expect(await podman(['exec', members[0].container, 'cat', passfile])).toBe(
      `*:*:*:postgres_exporter:${SECRETS['postgres-exporter-credentials'].password}\n`,
    );
  });

  test('the post-bootstrap script made the application role: a write on the leader is read on the replica', async () => {
    // The migration role makes the table (it owns the schema); the application role writes rows to it.
    const migrator = client(
      members[0].pg,
      env.POSTGRES_MIGRATION_USER!,
      SECRETS['postgres-migration-credentials']['migration-password'],
    );
    await migrator.connect();
    try {
      await migrator.query('CREATE TABLE image_check (id int primary key, note text)');
    } finally {
      await migrator.end();
    }
    await query(members[0].pg, "INSERT INTO image_check VALUES (1, 'from the leader')");
    await waitFor(
      'the row on the replica',
      async () =>
        (await query<{ note: string }>(members[1].pg, 'SELECT note FROM image_check WHERE id = 1')).length === 1,
      30000,
    );
    const [ro] = await query<{ transaction_read_only: string }>(members[1].pg, 'SHOW transaction_read_only');
    expect(ro.transaction_read_only).toBe('on');
    // ... and the exporter's own role (password from its Secret): LOGIN, pg_monitor, no superuser.
    const [exporter] = await query<{ login: boolean; monitor: boolean; superuser: boolean }>(
      members[0].pg,
      "SELECT rolcanlogin AS login, rolsuper AS superuser, pg_has_role(oid, 'pg_monitor', 'MEMBER') AS monitor FROM pg_roles WHERE rolname = 'postgres_exporter'",
    );
    expect(exporter).toEqual({ login: true, superuser: false, monitor: true });
  });

  test('the reconfigure Job under its own pod spec: its script runs in the image, reaches the members and changes nothing', async () => {
    const job = objects.find((o) => o.kind === 'Job' && o.metadata.name.startsWith('postgres-reconfigure-'))!;
    const jobSpec = podSpec(job);
    const [c] = jobSpec.containers;
    const dir = join(root, 'reconfigure');
    writeFiles(dir, pgConfig);
    const env = {
      ...resolveEnv(c, {}, SECRETS),
      // Only the member list changes (the two members' loopback REST addresses, not the headless
      // DNS names), and the wait budget, so a failure does not wait 15 minutes.
      PATRONI_MEMBERS: members.map((m) => `http://${m.rest.host}:${m.rest.port}`).join(' '),
      RECONFIGURE_WAIT_SECONDS: '120',
    };
    const args = podmanRunArgs(jobSpec, c, {
      name: `fastnext-${process.pid}-reconfigure`,
      image: c.image!,
      env,
      secretDirs: {},
      dirs: { config: dir },
      hosts: [],
      remove: true,
    });
    const run = await runToEnd('podman', podmanArgv(args), { env: { ...process.env } as Record<string, string> });
    expect({ code: run.code, output: run.output }).toMatchObject({ code: 0 });
    expect(run.output).toContain('the DCS configuration is already the desired one');
    expect(run.output).toContain(
      'reconfigure: summary {"patched": [], "restarted": [], "switchover": null, "leaderRestarted": false}',
    );
  });

  test('the pgbouncer image under the Deployment pod spec pools to the leader in transaction mode', async () => {
    const host = addresses[3];
    const port = await freePort(host);
    const dir = join(root, 'pgbouncer');
    const config = join(dir, 'config');
    writeFiles(config, {
      ...bouncerConfig,
      [PGBOUNCER_FILES.ini]: twinPgbouncerIni(bouncerConfig[PGBOUNCER_FILES.ini], {
        listen: { host, port },
        runDir: String(/^unix_socket_dir = (.*)$/m.exec(bouncerConfig[PGBOUNCER_FILES.ini])![1]),
        server: members[0].pg,
      }),
    });
    const container = `fastnext-${process.pid}-pgbouncer`;
    const args = podmanRunArgs(bouncerSpec, bouncer, {
      name: container,
      image: bouncer.image!,
      env: resolveEnv(bouncer, {}, SECRETS),
      secretDirs: {},
      dirs: { config },
      hosts: [],
      remove: true,
    });
    const proc = spawnServer('podman', podmanArgv(args), {
      env: { ...process.env } as Record<string, string>,
      logFile: join(dir, 'pgbouncer.log'),
    });
    try {
      // readiness: tcpSocket on the pgbouncer port (substituted); liveness: `kill -0 1` in the container.
      await waitFor(
        'pgbouncer accepts',
        () => portOpen({ host, port }),
        60000,
        () => proc.log(),
        proc,
      );
      await podman(['exec', container, ...(bouncer.livenessProbe as { exec: { command: string[] } }).exec.command]);
      const rows = await query<{ note: string; addr: string }>(
        { host, port },
        'SELECT note, host(inet_server_addr()) AS addr FROM image_check',
      );
      expect(rows).toEqual([{ note: 'from the leader', addr: members[0].pg.host }]);
      // The entry point wrote the stats user's passfile for the exporter sidecar; its admin console shows the pool mode.
      const pgpass = (await podman(['exec', container, 'cat', '/var/run/pgbouncer/stats.pgpass'])).trim().split(':');
      const admin = new Client({ host, port, user: pgpass[3], password: pgpass[4], database: 'pgbouncer' });
      await admin.connect();
      try {
        const pools = (await admin.query('SHOW POOLS')).rows as { database: string; pool_mode: string }[];
        expect(pools.find((p) => p.database === APP_DB)?.pool_mode).toBe('transaction');
      } finally {
        await admin.end();
      }
      const status = await podman(['exec', container, 'cat', '/proc/1/status']);
      expect(/^Uid:\s*(\d+)/m.exec(status)?.[1]).toBe(String(bouncerSpec.securityContext!.runAsUser));
      // preStop (sleep, then SIGINT: PgBouncer's safe shutdown) ends the container within the grace period.
      const t0 = Date.now();
      await podman(['exec', container, ...bouncer.lifecycle!.preStop!.exec!.command!]).catch(() => undefined);
      await proc.exited;
      expect(Date.now() - t0).toBeLessThan((bouncerSpec.terminationGracePeriodSeconds ?? 30) * 1000);
    } finally {
      await podman(['rm', '-f', '-t', '0', container]).catch(() => undefined);
    }
  });

  test('SIGTERM to the leader hands over leadership: the replica leads, the member exits within the grace period', async () => {
    const t0 = Date.now();
    await podman(['stop', '-t', String(pgSpec.terminationGracePeriodSeconds ?? 30), members[0].container]);
    await members[0].proc.exited;
    const stopMs = Date.now() - t0;
    expect(stopMs).toBeLessThan((pgSpec.terminationGracePeriodSeconds ?? 30) * 1000);
    await waitFor(
      'postgres-1 leads',
      async () =>
        (await cluster(members[1])).some(
          (m) => m.name === 'postgres-1' && m.role === 'leader' && m.state === 'running',
        ),
      60000,
      () => members[1].proc.log(),
    );
    await query(members[1].pg, "INSERT INTO image_check VALUES (2, 'after the switch')");
    const rows = await query<{ n: string }>(members[1].pg, 'SELECT count(*) AS n FROM image_check');
    expect(rows[0].n).toBe('2');
  });
});

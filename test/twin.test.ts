/**
 * The local twin: what it runs (the Deployment's env with only addresses and
 * secret paths substituted), `npm run local:up` / `local:down` end to end, and
 * teardown after a failed start (no process, listener or directory left).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SERVICE_ENV, SERVICE_PATHS } from '../service/src/contract';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { type DeploymentLike, localCommand, podEnv, type PodWiring } from '../tools/runtime/twin/api-pods';
import { startTwin } from '../tools/runtime/twin/twin';

jest.setTimeout(120000);

const ROOT = join(__dirname, '..');
const objects = synthObjects(loadEnvironment('dev')) as unknown as { kind: string; metadata: { name: string } }[];
const deployment = objects.find(
  (o) => o.kind === 'Deployment' && o.metadata.name === 'api',
) as unknown as DeploymentLike;
const container = deployment.spec.template.spec.containers[0];
const ns = loadEnvironment('dev').namespace;
const wiring: PodWiring = {
  services: {
    [`pgbouncer.${ns}.svc.cluster.local:6432`]: { host: '127.1.0.1', port: 2001 },
    [`pgbouncer-readonly.${ns}.svc.cluster.local:6432`]: { host: '127.1.0.2', port: 2002 },
    [`postgres-primary.${ns}.svc.cluster.local:5432`]: { host: '127.1.0.3', port: 2003 },
  },
  redisNodes: [0, 1, 2, 3, 4, 5].map((i) => ({ host: `127.2.0.${i}`, port: 3000 + i })),
  secretFiles: {
    [SERVICE_ENV.postgresPasswordFile]: '/tmp/x/pg',
    [SERVICE_ENV.postgresMigrationPasswordFile]: '/tmp/x/pg-migration',
    [SERVICE_ENV.redisPasswordFile]: '/tmp/x/redis',
    [SERVICE_ENV.managementTokenFile]: '/tmp/x/token',
  },
  hostsFile: '/tmp/x/hosts',
  logDir: '/tmp/x',
};

describe('API pod env', () => {
  test("substitutes only addresses, listen ports and secret file paths; every other value is the Deployment's", () => {
    const env = podEnv(container, wiring, { http: 1111, metrics: 2222 });
    const shipped = Object.fromEntries((container.env ?? []).map((v) => [v.name, v.value]));
    expect(Object.keys(env).sort()).toEqual(Object.keys(shipped).sort());
    const changed = Object.keys(env)
      .filter((k) => env[k] !== shipped[k])
      .sort();
    expect(changed).toEqual(
      [
        SERVICE_ENV.port,
        SERVICE_ENV.metricsPort,
        SERVICE_ENV.postgresServer,
        SERVICE_ENV.postgresReadReplicas,
        SERVICE_ENV.redisClusterNodes,
        SERVICE_ENV.postgresPasswordFile,
        SERVICE_ENV.redisPasswordFile,
        SERVICE_ENV.managementTokenFile,
      ].sort(),
    );
    // The serving container reaches PostgreSQL through the PgBouncer Services' stand-ins.
    expect(env[SERVICE_ENV.postgresServer]).toBe('127.1.0.1:2001');
    expect(env[SERVICE_ENV.postgresReadReplicas]).toBe('127.1.0.2:2002');
    expect(env[SERVICE_ENV.port]).toBe('1111');
  });

  test('the migrate init container bypasses the pooler: straight to the primary Service stand-in', () => {
    const init = deployment.spec.template.spec.initContainers![0];
    const env = podEnv(init, wiring, { http: 1111, metrics: 2222 });
    expect(env[SERVICE_ENV.postgresServer]).toBe('127.1.0.3:2003');
    // It logs in as the migration role, with that role's password file.
    expect(env[SERVICE_ENV.postgresMigrationUser]).toBe('fastnext_migrator');
    expect(env[SERVICE_ENV.postgresMigrationPasswordFile]).toBe('/tmp/x/pg-migration');
  });

  test('runs the image entry point from this checkout', () => {
    expect(localCommand({ name: 'migrate', command: ['node', 'dist/server.js', 'migrate'] }).slice(-2)).toEqual([
      join(ROOT, 'service/src/server.ts'),
      'migrate',
    ]);
  });

  test('fails when an env var uses valueFrom', () => {
    const c = {
      name: 'api',
      env: [{ name: 'POSTGRES_PASSWORD', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }],
    };
    expect(() => podEnv(c, wiring, { http: 1, metrics: 2 })).toThrow(
      "container 'api' env POSTGRES_PASSWORD uses valueFrom; the twin runs only literal values " +
        '(mount secrets as files and point a *_FILE variable at them)',
    );
  });

  test('fails when the Deployment names a database address the twin does not run', () => {
    const services = { ...wiring.services };
    delete services[`pgbouncer-readonly.${ns}.svc.cluster.local:6432`];
    expect(() => podEnv(container, { ...wiring, services }, { http: 1, metrics: 2 })).toThrow(
      `container 'api' env POSTGRES_READ_REPLICAS names pgbouncer-readonly.${ns}.svc.cluster.local:6432, which the twin does not run ` +
        `(it runs pgbouncer.${ns}.svc.cluster.local:6432, postgres-primary.${ns}.svc.cluster.local:5432)`,
    );
  });

  test('fails when the command is not the image entry point', () => {
    expect(() => localCommand({ name: 'x', command: ['sh', '-c', 'true'] })).toThrow(
      `container 'x' command ["sh","-c","true"] does not start with ["node","dist/server.js"]`,
    );
  });
});

/** True when something accepts TCP connections on host:port. */
function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, host, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Every descendant of `root` (by parent pid) with its command line. */
function descendants(root: number): { pid: number; cmdline: string }[] {
  const parent = new Map<number, number>();
  const cmd = new Map<number, string>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      parent.set(Number(e), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      cmd.set(Number(e), readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' '));
    } catch {
      // Gone meanwhile.
    }
  }
  const out: { pid: number; cmdline: string }[] = [];
  const walk = (p: number) => {
    for (const [child, pp] of parent) {
      if (pp !== p) continue;
      out.push({ pid: child, cmdline: cmd.get(child) ?? '' });
      walk(child);
    }
  };
  walk(root);
  return out;
}

const addressesIn = (text: string) =>
  [...text.matchAll(/(127\.\d+\.\d+\.\d+):(\d+)/g)].map((m) => ({ host: m[1], port: Number(m[2]) }));

describe('local:up / local:down', () => {
  let up: ChildProcess | undefined;
  const stateDir = mkdtempSync(join(tmpdir(), 'fastnext-twin-test-'));
  const env = { ...process.env, FASTNEXT_TWIN_STATE: join(stateDir, 'twin.json') };
  afterAll(() => {
    if (up?.pid && alive(up.pid)) process.kill(up.pid, 'SIGKILL');
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('up prints the table, serves through nginx and Prometheus scrapes every pod; down stops every process, listener and directory', async () => {
    // GIVEN local:up running in the background, with monitoring
    up = spawn(process.execPath, ['tools/run.js', 'tools/runtime/twin/cli.ts', 'up', '--env', 'dev', '--monitoring'], {
      cwd: ROOT,
      env,
    });
    let out = '';
    up.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    up.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => up!.once('exit', (code) => r(code)));
    for (let i = 0; !existsSync(env.FASTNEXT_TWIN_STATE) || !out.includes('Stop with Ctrl-C'); i++) {
      if (up.exitCode !== null || i > 1000) throw new Error(`local:up did not come up:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const state = JSON.parse(readFileSync(env.FASTNEXT_TWIN_STATE, 'utf8')) as { pid: number; url: string };
    const table = out.split('\n').filter((l) => l.startsWith('|'));
    const deep = (await (await fetch(state.url + SERVICE_PATHS.deep)).json()) as { status: string };
    // Every pod target of the shipped kubernetes-pods job (after its relabeling) is up within a scrape interval.
    const prometheus = /\| prometheus +\| monitoring +\| (\S+)/.exec(table.join('\n'))![1];
    const upTargets = async (job = 'kubernetes-pods') => {
      const q = encodeURIComponent(`up{job="${job}"} == 1`);
      const r = (await (await fetch(`${prometheus}/api/v1/query?query=${q}`)).json()) as {
        data: { result: { metric: { pod: string } }[] };
      };
      return r.data.result.map((x) => x.metric.pod).sort();
    };
    const expectedPods = [
      ...table.filter((l) => /^\| api-\d/.test(l)).map((l) => l.split('|')[1].trim()),
      'alertmanager-0',
      'edge-0',
      'postgres-0',
      'postgres-1',
      'postgres-2',
      'pgbouncer-0',
      'pgbouncer-1',
      'pgbouncer-readonly-0',
      'pgbouncer-readonly-1',
      ...[0, 1, 2, 3, 4, 5].map((i) => `redis-${i}`),
    ].sort();
    let scraped: string[] = [];
    for (let i = 0; i < 60 && scraped.length < expectedPods.length; i++) {
      scraped = await upTargets();
      await new Promise((r) => setTimeout(r, 500));
    }
    // Patroni's REST /metrics through the annotated postgres-patroni Service (the endpoints job).
    let scrapedEndpoints: string[] = [];
    for (let i = 0; i < 60 && scrapedEndpoints.length < 3; i++) {
      scrapedEndpoints = await upTargets('kubernetes-service-endpoints');
      if (scrapedEndpoints.length < 3) await new Promise((r) => setTimeout(r, 500));
    }
    const children = descendants(up.pid!);
    const dirs = [
      ...new Set(children.flatMap((c) => c.cmdline.match(/\/tmp\/fastnext-[A-Za-z]+-[A-Za-z0-9]+/g) ?? [])),
    ];
    const endpoints = addressesIn(table.join('\n'));

    // WHEN local:down runs from another process
    const down = spawn(process.execPath, ['tools/run.js', 'tools/runtime/twin/cli.ts', 'down'], { cwd: ROOT, env });
    let downOut = '';
    down.stdout!.on('data', (d: Buffer) => (downOut += d.toString()));
    const downCode = await new Promise<number | null>((r) => down.once('exit', (code) => r(code)));

    // THEN
    expect(state.pid).toBe(up.pid);
    expect(table.filter((l) => /^\| api-\d/.test(l))).toHaveLength(loadEnvironment('dev').api.autoscaling.minReplicas);
    expect(table.filter((l) => /^\| postgres-\d/.test(l))).toHaveLength(3);
    expect(table.filter((l) => /^\| pgbouncer(-readonly)?-\d/.test(l))).toHaveLength(4);
    expect(table.filter((l) => /^\| redis-\d/.test(l))).toHaveLength(6);
    expect(deep.status).toBe('up');
    expect(scraped).toEqual(expectedPods);
    expect(scrapedEndpoints).toEqual(['postgres-0', 'postgres-1', 'postgres-2']);
    expect(table.filter((l) => /^\| postgres-patroni\/postgres-\d/.test(l))).toHaveLength(3);
    expect(table.filter((l) => /^\| [\w-]+-exporter/.test(l))).toHaveLength(14);
    expect(table.filter((l) => /^\| (alertmanager-\d|alert sink) /.test(l))).toHaveLength(2);
    expect(children.some((c) => c.cmdline.startsWith('nginx') || c.cmdline.includes('/usr/sbin/nginx'))).toBe(true);
    expect(dirs.length).toBeGreaterThan(0);
    expect(downCode).toBe(0);
    expect(downOut).toContain(`stopped the dev twin (pid ${up.pid})`);
    expect(await exited).toBe(0);
    expect(existsSync(env.FASTNEXT_TWIN_STATE)).toBe(false);
    // esbuild's service process (run.js transpiles with it) leaves when its pipe to the parent closes.
    for (let i = 0; i < 30 && children.some((c) => alive(c.pid)); i++) await new Promise((r) => setTimeout(r, 100));
    expect(children.filter((c) => alive(c.pid))).toEqual([]);
    expect(dirs.filter((d) => existsSync(d))).toEqual([]);
    const still = await Promise.all(
      endpoints.map(async (e) => ((await listening(e.host, e.port)) ? `${e.host}:${e.port}` : '')),
    );
    expect(still.filter(Boolean)).toEqual([]);
  });

  test('fails when --env names no environment', async () => {
    const r = spawn(process.execPath, ['tools/run.js', 'tools/runtime/twin/cli.ts', 'up', '--env', 'qa'], {
      cwd: ROOT,
      env,
    });
    let err = '';
    r.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    expect(await new Promise((res) => r.once('exit', res))).toBe(2);
    expect(err.split('\n')[0]).toBe('--env ("qa") must be one of dev, staging, prod');
  });
});

test('fails when an API pod cannot start, and leaves nothing running', async () => {
  // GIVEN an env the service refuses (the only way in: the bench's override hook)
  const log: string[] = [];
  const start = startTwin({ env: 'dev', apiOverrides: { [SERVICE_ENV.logLevel]: 'loud' }, log: (l) => log.push(l) });
  await expect(start).rejects.toThrow(
    /^api-0: init container 'migrate' exited 1:\nconfiguration error: LOG_LEVEL \("loud"\) must be one of fatal, error, warn, info, debug, trace, silent/,
  );
  // THEN every server the log reported is gone.
  const endpoints = addressesIn(log.join('\n'));
  // 3 PostgreSQL members, the primary and read-only Service stand-ins, 2 PgBouncer Services over
  // 4 pods, 6 Redis nodes.
  expect(endpoints.length).toBe(17);
  const still = await Promise.all(endpoints.map((e) => listening(e.host, e.port)));
  expect(still.filter(Boolean)).toEqual([]);
  expect(log[log.length - 1]).toMatch(/stopped: every process exited, every directory removed$/);
});

test('Ctrl-C while local:up is starting stops what is already up', async () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'fastnext-twin-test-'));
  const env = { ...process.env, FASTNEXT_TWIN_STATE: join(stateDir, 'twin.json') };
  const up = spawn(process.execPath, ['tools/run.js', 'tools/runtime/twin/cli.ts', 'up', '--env', 'dev'], {
    cwd: ROOT,
    env,
  });
  let out = '';
  up.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => up.once('exit', (code) => r(code)));
  try {
    // GIVEN the data tier is up and the API pods are starting
    for (let i = 0; !out.includes('starting 2 API pods'); i++) {
      if (up.exitCode !== null || i > 1000) throw new Error(`local:up did not get to the API pods:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    // WHEN Ctrl-C arrives
    up.kill('SIGINT');
    // THEN it stops after the current step, removes everything, and writes no state file
    const code = await exited;
    if (code !== 130) console.log(out);
    expect(code).toBe(130);
    expect(out).toContain('SIGINT: stopping after the current start-up step');
    expect(out).toMatch(/stopped: every process exited, every directory removed\n/);
    expect(existsSync(env.FASTNEXT_TWIN_STATE)).toBe(false);
    const endpoints = addressesIn(out);
    expect(endpoints.length).toBeGreaterThanOrEqual(9);
    const still = await Promise.all(endpoints.map((e) => listening(e.host, e.port)));
    expect(still.filter(Boolean)).toEqual([]);
  } finally {
    if (up.exitCode === null) up.kill('SIGKILL');
    rmSync(stateDir, { recursive: true, force: true });
  }
});

/**
 * The shipped Patroni entry point (patroni-start.sh in `postgres-files`) run by dash, with a stand-in
 * `patroni` that loads its config directory with Patroni 3.0.2's own loader (Debian's python3-patroni:
 * every *.yml in name order, merged by patch_config) and prints `postgresql.authentication`, again on
 * each SIGHUP. The real Patroni under this script is in test/postgres-rotation.test.ts and every
 * server test that starts members (tools/runtime/launcher/patroni.ts runs the same script).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { writeSecretVolume } from '../tools/runtime/secret-volume';
import { find, objectsOf } from './helpers/objects';

const files = find(objectsOf('dev'), 'ConfigMap', 'postgres-files').data as Record<string, string>;
const shippedAuth = (parse(files['patroni.yml']) as { postgresql: { authentication: Record<string, object> } })
  .postgresql.authentication;

const STAND_IN = `#!/usr/bin/python3
import json, os, signal, sys, time
from patroni.config import Config
def show(*_):
    merged = Config._load_config_path(None, sys.argv[1])
    print('CONFIG ' + json.dumps({'pid': os.getpid(), 'auth': merged['postgresql']['authentication']}), flush=True)
signal.signal(signal.SIGHUP, show)
show()
while True:
    time.sleep(1)
`;

let root: string;
const procs: ChildProcess[] = [];

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'patroni-start-'));
  writeFileSync(join(root, 'patroni-start.sh'), files['patroni-start.sh']);
  writeFileSync(join(root, 'patroni.yml'), files['patroni.yml']);
  writeFileSync(join(root, 'patroni'), STAND_IN);
  chmodSync(join(root, 'patroni'), 0o755);
});
afterEach(() => {
  // The whole group: the entry point's watcher loop is a child of the exec'd stand-in.
  for (const p of procs.splice(0)) {
    try {
      process.kill(-p.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  rmSync(root, { recursive: true, force: true });
});

interface Run {
  proc: ChildProcess;
  out: () => string;
  configs: () => { pid: number; auth: Record<string, Record<string, string>> }[];
  exited: Promise<number | null>;
}

function start(env: Record<string, string | undefined> = {}): Run {
  const full: Record<string, string> = {
    PATH: `${root}:/usr/bin:/bin`,
    PATRONI_CONFIG_FILE: join(root, 'patroni.yml'),
    POSTGRES_SUPERUSER_PASSWORD_FILE: join(root, 'credentials', 'superuser-password'),
    POSTGRES_REPLICATION_PASSWORD_FILE: join(root, 'credentials', 'replication-password'),
    PATRONI_RUNTIME_CONFIG_DIR: join(root, 'runtime'),
    CREDENTIALS_RELOAD_INTERVAL_SECONDS: '1',
    EXPORTER_PASSWORD_FILE: join(root, 'exporter-credentials', 'exporter-password'),
    EXPORTER_PGPASSFILE: join(root, 'exporter.pgpass'),
  };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete full[k];
    else full[k] = v;
  }
  const proc = spawn('dash', [join(root, 'patroni-start.sh')], { env: full, detached: true });
  procs.push(proc);
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return {
    proc,
    out: () => out,
    configs: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('CONFIG '))
        .map((l) => JSON.parse(l.slice(7))),
    exited,
  };
}

function secret(superuser: string, replication: string, exporter = 'exporter-1'): void {
  writeSecretVolume(join(root, 'credentials'), {
    'superuser-password': superuser,
    'replication-password': replication,
  });
  writeSecretVolume(join(root, 'exporter-credentials'), { 'exporter-password': exporter });
}
const passfile = () => readFileSync(join(root, 'exporter.pgpass'), 'utf8');

async function until(what: string, ok: () => boolean, run: Run, ms = 15000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}\n${run.out()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("Patroni gets the files' passwords, quoted for YAML, merged with the shipped usernames; the files are private", async () => {
  const tricky = `it's: {a}, #b "c" \\ d %s`;
  secret(tricky, 'repl: "x"', 'exp:1\\2');
  const run = start();
  await until('the first config', () => run.configs().length === 1, run);
  const [first] = run.configs();
  // exec: Patroni has the entry point's pid (its SIGHUP goes to Patroni, the container's PID 1 in a pod).
  expect(first.pid).toBe(run.proc.pid);
  expect(first.auth).toEqual({
    superuser: { ...shippedAuth.superuser, password: tricky },
    replication: { ...shippedAuth.replication, password: 'repl: "x"' },
    rewind: { ...shippedAuth.rewind, password: 'repl: "x"' },
  });
  const runtime = join(root, 'runtime');
  expect(readdirSync(runtime).sort()).toEqual(['00-patroni.yml', '50-credentials.yml']);
  expect(statSync(join(runtime, '50-credentials.yml')).mode & 0o777).toBe(0o600);
  // The exporter's passfile (libpq's format: a colon or backslash escaped), private as libpq requires.
  expect(passfile()).toBe('*:*:*:postgres_exporter:exp\\:1\\\\2\n');
  expect(statSync(join(root, 'exporter.pgpass')).mode & 0o777).toBe(0o600);
});

test('a changed Secret: the file is rewritten and Patroni reloaded (SIGHUP), not restarted; a two-line value is refused and kept out', async () => {
  secret('super-1', 'repl-1');
  const run = start();
  await until('the first config', () => run.configs().length === 1, run);
  // WHEN the kubelet swaps in a replication password of two lines
  secret('super-1', 'repl-2\nsecond line');
  await until('the refusal', () => /holds more than one line/.test(run.out()), run);
  await new Promise((r) => setTimeout(r, 1500));
  // THEN Patroni is not signalled and keeps the values it has
  expect(run.configs()).toHaveLength(1);
  expect(run.out()).toMatch(/patroni-start: \S*replication-password holds more than one line; a password is one line/);
  // WHEN a valid value follows
  secret('super-2', 'repl-2');
  await until('the reload', () => run.configs().length === 2, run);
  const second = run.configs()[1];
  expect(second.pid).toBe(run.proc.pid);
  expect([second.auth.superuser.password, second.auth.replication.password, second.auth.rewind.password]).toEqual([
    'super-2',
    'repl-2',
    'repl-2',
  ]);
  expect(run.out()).toContain('patroni-start: credentials changed: Patroni reloaded');
  expect(passfile()).toBe('*:*:*:postgres_exporter:exporter-1\n');
  // The exporter's Secret alone: its passfile is rewritten.
  secret('super-2', 'repl-2', 'exporter-2');
  await until('the new passfile', () => passfile().includes('exporter-2'), run);
  // An unchanged Secret: no further reload.
  await new Promise((r) => setTimeout(r, 2500));
  expect(run.configs()).toHaveLength(3);
});

test('refuses to start, naming the problem: a two-line password, a missing input', async () => {
  secret('super\nline two', 'repl');
  const twoLines = start();
  expect(await twoLines.exited).not.toBe(0);
  expect(twoLines.out()).toMatch(/superuser-password holds more than one line/);
  expect(twoLines.configs()).toEqual([]);

  secret('super', 'repl');
  const missing = start({ POSTGRES_REPLICATION_PASSWORD_FILE: undefined });
  expect(await missing.exited).not.toBe(0);
  expect(missing.out()).toMatch(
    /POSTGRES_REPLICATION_PASSWORD_FILE must name the file holding the replication password/,
  );
  expect(missing.configs()).toEqual([]);
});

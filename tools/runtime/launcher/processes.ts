/**
 * Process and directory bookkeeping for the loopback launcher: every server is
 * spawned in its own process group and every temp dir is registered, so `stop()`
 * (and, as a last resort, process exit) removes all of them even when a test fails.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import {
  chownSync,
  closeSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A host and port a test connects to. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/** A started server: its process group, log and exit promise. */
export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<number | null>;
  /** Resolves once stdout and stderr are closed too (all output is in log()). */
  readonly closed: Promise<void>;
  /** The end of what the process wrote to stdout/stderr (its log file's last 64 KiB). */
  log(): string;
}

const LOG_TAIL_BYTES = 65536;

/** The last `bytes` of a file ('' when it does not exist). */
export function tailOf(file: string, bytes = LOG_TAIL_BYTES): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.alloc(Math.min(size, bytes));
    const n = readSync(fd, buf, 0, buf.length, size - buf.length);
    return buf.subarray(0, n).toString();
  } finally {
    closeSync(fd);
  }
}

const live = new Set<Proc>();
const dirs = new Set<string>();

function cleanupSync(): void {
  for (const p of live) killGroup(p, 'SIGKILL');
  for (const d of dirs) {
    killProcessesUsing(d);
    rmSync(d, { recursive: true, force: true });
  }
}
process.once('exit', cleanupSync);

/**
 * Pids of processes whose command line or working directory is under `dir` (one of
 * our unique temp dirs). Catches servers that left their process group (pg_ctl
 * detaches its server) and those that rewrite their title (redis-server).
 */
export function processesUsing(dir: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      let cwd = '';
      try {
        cwd = readlinkSync(`/proc/${pid}/cwd`);
      } catch {
        // Another user's process, or gone.
      }
      if (cwd === dir || cwd.startsWith(`${dir}/`) || readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) {
        out.push(Number(pid));
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** SIGKILLs every process `processesUsing(dir)` finds; returns how many. */
export function killProcessesUsing(dir: string): number {
  const pids = processesUsing(dir);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  return pids.length;
}

function killGroup(p: Proc, signal: NodeJS.Signals): void {
  try {
    process.kill(-p.pid, signal);
  } catch {
    // Group already gone.
  }
}

/**
 * Spawns `cmd` detached (own process group) with the given env and user. Its
 * stdout and stderr go straight to `logFile` (appended), as a kubelet keeps a
 * container's log: the server never waits on this process to read its output,
 * so a busy test or load generator cannot slow it down.
 */
export function spawnServer(
  cmd: string,
  args: string[],
  opts: { env: Record<string, string>; logFile: string; uid?: number; gid?: number; cwd?: string },
): Proc {
  const fd = openSync(opts.logFile, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, {
      env: opts.env,
      uid: opts.uid,
      gid: opts.gid,
      cwd: opts.cwd,
      detached: true,
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  // Unreferenced: a test that forgets stop() must not keep jest alive; the exit hook then kills the group.
  child.unref();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const proc: Proc = { child, pid: child.pid, exited, closed, log: () => tailOf(opts.logFile) };
  live.add(proc);
  void exited.then(() => live.delete(proc));
  return proc;
}

/**
 * Stops a process group: `signal` to the group, then SIGKILL after `graceMs`.
 * Resolves once the leader has exited and no member of the group is left.
 */
export async function stopGroup(p: Proc, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10000): Promise<void> {
  killGroup(p, signal);
  const timer = setTimeout(() => killGroup(p, 'SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(timer);
  // Stragglers (e.g. a postgres backend) share the group: wait until none is left.
  for (let i = 0; i < 200 && groupAlive(p.pid); i++) {
    if (i === 50) killGroup(p, 'SIGKILL');
    await sleep(50);
  }
  live.delete(p);
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `start` and returns how long it took (ms); when it throws, `stop` cleans up what was started and the error goes on. */
export async function bringUp(start: () => Promise<void>, stop: () => Promise<void>): Promise<number> {
  const t0 = Date.now();
  try {
    await start();
  } catch (e) {
    await stop();
    throw e;
  }
  return Date.now() - t0;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A registered temp dir (removed by `removeDir` or at process exit). */
export function makeTempDir(prefix: string, parent: string = tmpdir()): string {
  const d = mkdtempSync(join(parent, prefix));
  dirs.add(d);
  return d;
}

export function removeDir(d: string): void {
  if (dirs.has(d)) killProcessesUsing(d);
  rmSync(d, { recursive: true, force: true });
  dirs.delete(d);
}

/** mkdir -p + optional owner, for directories a non-root server writes. */
export function makeDir(path: string, owner?: { uid: number; gid: number }): string {
  mkdirSync(path, { recursive: true });
  if (owner) chownSync(path, owner.uid, owner.gid);
  return path;
}

/** Writes the config files (the shipped bytes) into `dir`, readable by everyone. */
export function writeFiles(dir: string, files: Record<string, string>): void {
  makeDir(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text, { mode: 0o644 });
}

/** chown -R */
export function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  if (statSync(path).isDirectory()) {
    for (const e of readdirSync(path)) chownTree(join(path, e), uid, gid);
  }
}

/** uid and gid of an OS user (e.g. `postgres`). */
export function osUser(name: string): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', name]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', name]).toString().trim());
  return { uid, gid };
}

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A free port on `host` (and, with `alsoFree`, port + alsoFree free too and <= 65535). */
export async function freePort(host: string, alsoFree = 0): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    // Stay below the kernel's ephemeral range (32768+) so clients' source ports never collide.
    const port = 20000 + Math.floor(Math.random() * (alsoFree ? 12000 : 12700));
    if ((await portFree(host, port)) && (!alsoFree || (await portFree(host, port + alsoFree)))) return port;
  }
  throw new Error(`no free port found on ${host}`);
}

/** A random loopback /24, `127.X.Y` (other test runs pick other ones). */
export function loopbackNet(): string {
  const x = 100 + Math.floor(Math.random() * 150);
  const y = 1 + Math.floor(Math.random() * 250);
  return `127.${x}.${y}`;
}

/**
 * `count` distinct loopback addresses 127.X.Y.Z in `net` (@default a random /24); the i-th address of
 * one net is always the same, so more can be added next to the first ones later.
 */
export function loopbackAddresses(count: number, net = loopbackNet()): string[] {
  return Array.from({ length: count }, (_, i) => `${net}.${10 + i}`);
}

/** Polls `check` until it returns true or `timeoutMs` passes (or `proc` exits); throws `what` with `detail()`. */
/** Runs a command to completion (not detached), capturing its stdout and stderr. */
export function runToEnd(
  cmd: string,
  args: readonly string[],
  opts: { env: Record<string, string>; cwd?: string; uid?: number; gid?: number },
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env,
      cwd: opts.cwd,
      uid: opts.uid,
      gid: opts.gid,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', reject);
    // 'close', not 'exit': 'exit' can come before the last stdout chunk has been read.
    child.once('close', (code) => resolve({ code, output }));
  });
}

/** True when something accepts a TCP connection at `ep`. */
export function portOpen(ep: Endpoint): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(ep.port, ep.host, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  detail: () => string = () => '',
  proc?: Proc,
): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    if (proc && proc.child.exitCode !== null) {
      throw new Error(`${what}: the process exited with code ${proc.child.exitCode}\n${detail()}`);
    }
    try {
      if (await check()) return Date.now() - t0;
    } catch {
      // Not yet.
    }
    if (Date.now() - t0 > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${detail()}`);
    await sleep(100);
  }
}

/**
 * A small flame-graph summary of a benchmarked process, reduced to the top frames by self time and
 * the share of busy time per package (or library), by self time and, for Node, by total time.
 * Node processes: V8's sampling profiler, started and stopped by signal (profile-preload.js); idle
 * samples (the event loop waiting) are left out of the shares. nginx: Linux perf (`perf record -p`),
 * when it is installed and permitted.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const PROFILE_PRELOAD = join(__dirname, 'profile-preload.js');

interface ProfileNode {
  readonly id: number;
  readonly children?: readonly number[];
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount: number;
}

export interface ProfileSummary {
  /** Samples with the process busy (not idle, not the profiler itself). */
  readonly busySamples: number;
  /** Share of all samples the process was idle (undefined: the profiler samples only busy time). */
  readonly idleShare?: number;
  /** [frame, share of busy samples], by self time, largest first. */
  readonly frames: readonly (readonly [string, number])[];
  /** [package or area, share of busy samples], largest first. */
  readonly areas: readonly (readonly [string, number])[];
  /**
   * [package or service directory, share of busy samples with one of its frames on the stack],
   * largest first: who caused the self time above (a `writev` under ioredis is a Redis write).
   * Absent for perf.
   */
  readonly totals?: readonly (readonly [string, number])[];
}

/** The env a profiled process needs (with `--require PROFILE_PRELOAD`). */
export function profileEnv(dir: string): Record<string, string> {
  return { NODE_OPTIONS: `--require ${PROFILE_PRELOAD}`, FASTNEXT_PROFILE_DIR: dir };
}

const IDLE = new Set(['(idle)', '(root)']);

/** node_modules/<package>, the service, a node: builtin, or V8's own entries ((garbage collector)). */
function areaOf(url: string, fn: string): string {
  const pkg = /node_modules\/(@[^/]+\/[^/]+|[^/]+)/.exec(url)?.[1];
  if (pkg) return pkg;
  if (url.includes('/service/src/')) return `service/${/service\/src\/([^/]+)/.exec(url)?.[1] ?? ''}`;
  if (url.startsWith('node:')) return url.split('/')[0];
  return url ? 'other' : fn || '(native)';
}

function frameOf(n: ProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame;
  const where = url.replace(/.*node_modules\//, '').replace(/.*\/service\/src\//, 'service/');
  return `${functionName || '(anonymous)'}${where ? ` ${where}:${lineNumber + 1}` : ''}`;
}

export function summarizeProfile(text: string, top = 10): ProfileSummary {
  const p = JSON.parse(text) as { nodes?: ProfileNode[] };
  const nodes = p.nodes ?? [];
  const byFrame = new Map<string, number>();
  const byArea = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  for (const n of nodes) {
    if (n.hitCount === 0) continue;
    if (IDLE.has(n.callFrame.functionName) || n.callFrame.functionName === '(profiler)') {
      idle += n.hitCount;
      continue;
    }
    busy += n.hitCount;
    const f = frameOf(n);
    byFrame.set(f, (byFrame.get(f) ?? 0) + n.hitCount);
    const a = areaOf(n.callFrame.url, n.callFrame.functionName);
    byArea.set(a, (byArea.get(a) ?? 0) + n.hitCount);
  }
  const totals = totalTimes(nodes);
  const ranked = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, v]) => [k, busy ? v / busy : 0] as const);
  return {
    busySamples: busy,
    idleShare: busy + idle ? idle / (busy + idle) : 0,
    frames: ranked(byFrame),
    areas: ranked(byArea),
    totals: ranked(totals),
  };
}

/** Busy samples with a frame of each package or service directory on the stack (once per stack). */
function totalTimes(nodes: readonly ProfileNode[]): Map<string, number> {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const out = new Map<string, number>();
  const onStack = new Map<string, number>();
  const visit = (n: ProfileNode): void => {
    const { url, functionName } = n.callFrame;
    const area = areaOf(url, functionName);
    const f = url !== '' && !area.startsWith('node:') && area !== 'other' ? area : undefined;
    if (f !== undefined) onStack.set(f, (onStack.get(f) ?? 0) + 1);
    if (n.hitCount > 0 && !IDLE.has(functionName) && functionName !== '(profiler)') {
      for (const k of onStack.keys()) out.set(k, (out.get(k) ?? 0) + n.hitCount);
    }
    for (const c of n.children ?? []) {
      const child = byId.get(c);
      if (child) visit(child);
    }
    if (f !== undefined) {
      const left = onStack.get(f)! - 1;
      if (left === 0) onStack.delete(f);
      else onStack.set(f, left);
    }
  };
  if (nodes[0]) visit(nodes[0]);
  return out;
}

/** Starts the profiler of a process loaded with the preload. */
export function startProfile(pid: number): void {
  process.kill(pid, 'SIGUSR2');
}

/** Stops it and returns the summary once the profile is written. */
export async function stopProfile(pid: number, dir: string, n: number, top = 10): Promise<ProfileSummary> {
  process.kill(pid, 'SIGUSR2');
  const file = join(dir, `${pid}-${n}.cpuprofile`);
  for (let i = 0; i < 200 && !existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(file)) throw new Error(`no profile from pid ${pid} in ${dir} after 10 s`);
  return summarizeProfile(readFileSync(file, 'utf8'), top);
}

/** Markdown: the top frames by self time and the top areas, as shares of busy samples. */
export function renderProfile(title: string, s: ProfileSummary): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  const rows = (xs: ProfileSummary['frames']) => xs.map(([k, v]) => `| ${pct(v)} | \`${k}\` |`).join('\n');
  return [
    `**${title}**: ${s.busySamples} busy samples` +
      (s.idleShare === undefined ? '.' : `, idle ${pct(s.idleShare)} of the time.`),
    '',
    '| self time | frame |',
    '| --- | --- |',
    rows(s.frames),
    '',
    '| self time | package or area |',
    '| --- | --- |',
    rows(s.areas),
    ...(s.totals?.length
      ? ['', '| total time | package or area (what its frames call included) |', '| --- | --- |', rows(s.totals)]
      : []),
  ].join('\n');
}

/** True when `perf` runs here (the bench profiles nginx with it; Debian's linux-perf package). */
export function perfAvailable(): boolean {
  try {
    execFileSync('perf', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** `perf report` lines (`  12.34%  name`) as [name, share] pairs, largest first. */
function perfShares(file: string, sort: 'sym' | 'dso', top: number): (readonly [string, number])[] {
  const out = execFileSync('perf', ['report', '-i', file, '--stdio', '--no-children', '--sort', sort, '-q'], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return out
    .split('\n')
    .map((l) => /^\s*([\d.]+)%\s+(.*?)\s*$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .slice(0, top)
    .map((m) => [m[2], Number(m[1]) / 100] as const);
}

/**
 * Samples the given processes with perf (999 Hz, on-CPU time only) until `stop`, which returns
 * their top symbols (`[k]` kernel, `[.]` user space) and libraries.
 */
export function startPerf(pids: readonly number[], file: string, top = 12): { stop(): Promise<ProfileSummary> } {
  const child: ChildProcess = spawn('perf', ['record', '-F', '999', '-p', pids.join(','), '-o', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (e) => {
      err += e.message;
      resolve();
    });
  });
  return {
    async stop() {
      child.kill('SIGINT');
      await exited;
      const samples = Number(/\((\d+) samples\)/.exec(err)?.[1]);
      if (!Number.isFinite(samples)) throw new Error(`perf record wrote no profile: ${err.trim()}`);
      return { busySamples: samples, frames: perfShares(file, 'sym', top), areas: perfShares(file, 'dso', top) };
    },
  };
}

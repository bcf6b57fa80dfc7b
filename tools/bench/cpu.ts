/**
 * CPU time by component, from /proc: how much CPU each part of the topology
 * (load generator, edge, API processes, Redis, PostgreSQL) spent during one
 * benchmark run. A component is a set of root processes plus all their
 * descendants (nginx workers, PostgreSQL backends). Linux only.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { processesUsing } from '../runtime/launcher/processes';

/** Clock ticks per second of /proc's utime and stime (USER_HZ; 100 on every Linux architecture Node runs on). */
const USER_HZ = 100;

interface ProcStat {
  readonly ppid: number;
  /** utime + stime, in ticks. */
  readonly ticks: number;
}

function readStats(): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    out.set(Number(name), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
  }
  return out;
}

/** Busy ticks of the whole machine (all CPUs), from the first line of /proc/stat. */
function machineBusyTicks(): number {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]
    .trim()
    .split(/\s+/)
    .map(Number);
  return user + nice + system + irq + softirq + steal;
}

/** What identifies a component's processes: known pids, or every process working under a directory. */
export type ComponentRoots = { readonly pids: () => readonly number[] } | { readonly dir: string };

export interface CpuSnapshot {
  /** Ticks per component (roots and descendants alive at the snapshot). */
  readonly ticks: Record<string, number>;
  readonly machine: number;
  /** This process's own CPU (the load generator), from process.cpuUsage(). */
  readonly self: NodeJS.CpuUsage;
}

/** A component's processes: its roots and all their descendants alive now. */
function processesOf(roots: ComponentRoots, stats: Map<number, ProcStat>): Set<number> {
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) children.set(s.ppid, [...(children.get(s.ppid) ?? []), pid]);
  const seen = new Set<number>();
  const stack = [...('dir' in roots ? processesUsing(roots.dir) : roots.pids())];
  while (stack.length) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return seen;
}

/** The pids of a component now (e.g. nginx's master and workers, for a profiler). */
export function componentPids(roots: ComponentRoots): number[] {
  return [...processesOf(roots, readStats())];
}

export function cpuSnapshot(components: Readonly<Record<string, ComponentRoots>>): CpuSnapshot {
  const stats = readStats();
  const ticks: Record<string, number> = {};
  for (const [name, roots] of Object.entries(components)) {
    let sum = 0;
    for (const pid of processesOf(roots, stats)) sum += stats.get(pid)?.ticks ?? 0;
    ticks[name] = sum;
  }
  return { ticks, machine: machineBusyTicks(), self: process.cpuUsage() };
}

/**
 * CPU seconds per component between two snapshots, plus `client` (this process)
 * and `other` (the rest of the machine: other tenants' noise, kernel threads).
 * A process that exited between the snapshots is not counted.
 */
export function cpuSeconds(before: CpuSnapshot, after: CpuSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  let named = 0;
  for (const name of Object.keys(after.ticks)) {
    out[name] = Math.max(0, after.ticks[name] - (before.ticks[name] ?? 0)) / USER_HZ;
    named += out[name];
  }
  out.client = (after.self.user + after.self.system - before.self.user - before.self.system) / 1e6;
  out.other = Math.max(0, (after.machine - before.machine) / USER_HZ - named - out.client);
  return out;
}

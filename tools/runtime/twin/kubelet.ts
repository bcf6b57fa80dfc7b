/**
 * The kubelet's part of the local twin: runs a container's startup, readiness and
 * liveness probes from the synthesized pod spec, with their timings
 * (initialDelaySeconds, periodSeconds, timeoutSeconds, failureThreshold,
 * successThreshold), keeps the pod's Ready condition, and restarts the container
 * when liveness fails or the process exits, with the kubelet's back-off.
 *
 * As in the kubelet (pkg/kubelet/prober): readiness and liveness wait for the
 * startup probe to succeed; Ready starts false and turns true after
 * successThreshold consecutive successes, false after failureThreshold consecutive
 * failures or at once when the container stops; a probe that has not answered
 * within timeoutSeconds failed; an HTTP probe succeeds on 200-399. The first
 * restart is immediate, later ones wait 10 s, 20 s, 40 s ... up to 300 s, and the
 * back-off resets once a container has run for 10 minutes.
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import type { Endpoint } from '../launcher/processes';

/** The parts of a core/v1 Probe the twin runs. */
export interface ProbeSpec {
  readonly httpGet?: { readonly path?: string; readonly port: number | string };
  readonly tcpSocket?: { readonly port: number | string };
  readonly exec?: { readonly command: readonly string[] };
  readonly initialDelaySeconds?: number;
  readonly periodSeconds?: number;
  readonly timeoutSeconds?: number;
  readonly failureThreshold?: number;
  readonly successThreshold?: number;
  /** Grace period of a kill after this (liveness or startup) probe fails; the pod's when absent. */
  readonly terminationGracePeriodSeconds?: number;
}

/** The API server's defaults for an unset Probe field. */
export const PROBE_DEFAULTS = {
  initialDelaySeconds: 0,
  periodSeconds: 10,
  timeoutSeconds: 1,
  failureThreshold: 3,
  successThreshold: 1,
} as const;

export type ProbeKind = 'startup' | 'readiness' | 'liveness';
export type Timings = Required<Omit<ProbeSpec, 'httpGet' | 'tcpSocket' | 'exec' | 'terminationGracePeriodSeconds'>>;

export const timingsOf = (p: ProbeSpec): Timings => ({
  initialDelaySeconds: p.initialDelaySeconds ?? PROBE_DEFAULTS.initialDelaySeconds,
  periodSeconds: p.periodSeconds ?? PROBE_DEFAULTS.periodSeconds,
  timeoutSeconds: p.timeoutSeconds ?? PROBE_DEFAULTS.timeoutSeconds,
  failureThreshold: p.failureThreshold ?? PROBE_DEFAULTS.failureThreshold,
  successThreshold: p.successThreshold ?? PROBE_DEFAULTS.successThreshold,
});

/** One probe attempt: ok, and what was seen (status, error). */
export type ProbeAttempt = (timeoutMs: number) => Promise<{ ok: boolean; detail: string }>;

/** How the twin reaches a container: its named ports on loopback, and exec run on the host. */
export interface ProbeTarget {
  /** A container port by name or number -> where it listens on loopback. */
  port(p: number | string): Endpoint;
  /**
   * An exec probe's command as run on the host (the caller substitutes addresses and paths),
   * with the container env it needs. @default refused
   */
  exec?: (command: readonly string[]) => { readonly command: readonly string[]; readonly env?: Record<string, string> };
}

/** The attempt a probe spec describes (httpGet, tcpSocket or exec), against `target`. */
export function probeAttempt(spec: ProbeSpec, target: ProbeTarget): ProbeAttempt {
  if (spec.httpGet) {
    const ep = target.port(spec.httpGet.port);
    const url = `http://${ep.host}:${ep.port}${spec.httpGet.path ?? '/'}`;
    return async (timeoutMs) => {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
        await res.arrayBuffer();
        return { ok: res.status >= 200 && res.status < 400, detail: `HTTP ${res.status}` };
      } catch (e) {
        return { ok: false, detail: errorText(e) };
      }
    };
  }
  if (spec.tcpSocket) {
    const ep = target.port(spec.tcpSocket.port);
    return (timeoutMs) =>
      new Promise((resolve) => {
        const s = connect(ep.port, ep.host);
        const done = (ok: boolean, detail: string) => {
          clearTimeout(timer);
          s.destroy();
          resolve({ ok, detail });
        };
        const timer = setTimeout(() => done(false, `no connection within ${timeoutMs} ms`), timeoutMs);
        s.once('connect', () => done(true, 'connected'));
        s.once('error', (e) => done(false, e.message));
      });
  }
  if (spec.exec) {
    if (!target.exec)
      throw new Error(`exec probe ${JSON.stringify(spec.exec.command)}: this container runs no exec probes`);
    const { exec } = target;
    const command = spec.exec.command;
    return (timeoutMs) =>
      new Promise((resolve) => {
        // Substituted at each attempt: what it names (a pid, an address) may change between them.
        const run = exec(command);
        const [cmd, ...args] = run.command;
        const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...run.env };
        const child = spawn(cmd, args, { stdio: 'ignore', env });
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        child.once('error', (e) => {
          clearTimeout(timer);
          resolve({ ok: false, detail: e.message });
        });
        child.once('exit', (code, signal) => {
          clearTimeout(timer);
          resolve({ ok: code === 0, detail: signal ? `timed out after ${timeoutMs} ms` : `exit ${code}` });
        });
      });
  }
  throw new Error('probe has no httpGet, tcpSocket or exec handler');
}

const errorText = (e: unknown) => {
  const err = e as Error & { cause?: Error };
  if (err.name === 'TimeoutError') return 'timed out';
  return err.cause?.message ?? err.message;
};

/** A running container as the runtime gives it to the kubelet. */
export interface Container {
  readonly pid: number;
  /** Resolves when the process has exited. */
  readonly exited: Promise<unknown>;
  /** preStop, SIGTERM, SIGKILL once `graceSeconds` have passed; resolves on exit. */
  kill(graceSeconds: number): Promise<unknown>;
}

export interface PodEvent {
  /** Milliseconds since the pod was created. */
  readonly at: number;
  readonly type:
    | 'started'
    | 'startup-succeeded'
    | 'ready'
    | 'not-ready'
    | 'probe-failed'
    | 'killing'
    | 'exited'
    | 'back-off'
    | 'terminating';
  readonly detail: string;
}

export interface KubeletPodOptions<C extends Container> {
  readonly name: string;
  readonly probes: Partial<Record<ProbeKind, ProbeSpec>>;
  /** Builds the probe attempt for the container now running. */
  readonly attempt: (spec: ProbeSpec, container: C) => ProbeAttempt;
  /** Starts the container (init containers first); throws when it cannot. */
  readonly start: () => Promise<C>;
  /** The pod's terminationGracePeriodSeconds. */
  readonly terminationGracePeriodSeconds: number;
  /** Called on every change of the Ready condition (the endpoints controller listens). */
  readonly onReadyChange?: (ready: boolean) => void;
  readonly log?: (line: string) => void;
  /** Back-off of restarts. @default the kubelet's: 10 s doubling to 300 s, reset after 10 min */
  readonly backOff?: { readonly initialMs: number; readonly maxMs: number; readonly resetAfterMs: number };
}

const KUBELET_BACKOFF = { initialMs: 10_000, maxMs: 300_000, resetAfterMs: 600_000 };

/**
 * One pod under the twin's kubelet: its container, its probes and its Ready
 * condition. `restarts` counts container restarts, as `kubectl get pods` shows them.
 */
export class KubeletPod<C extends Container> {
  readonly name: string;
  readonly events: PodEvent[] = [];
  container: C | undefined;
  ready = false;
  started = false;
  restarts = 0;
  private readonly t0 = Date.now();
  private generation = 0;
  private stopped = false;
  private backOffMs = 0;
  private lastStart = 0;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly o: KubeletPodOptions<C>) {
    this.name = o.name;
  }

  /** Milliseconds since the pod was created. */
  now(): number {
    return Date.now() - this.t0;
  }

  /** Starts the first container; resolves once it runs (not once it is ready: see waitReady). */
  async run(): Promise<C> {
    return this.startContainer();
  }

  /** Resolves when Ready is true; throws after `timeoutMs` with the pod's events. */
  async waitReady(timeoutMs = 60_000): Promise<void> {
    await this.waitUntil(() => this.ready, timeoutMs, 'Ready');
  }

  /** Resolves when `cond` holds (checked on every event); throws after `timeoutMs`. */
  async waitUntil(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (cond()) return;
    await new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!cond()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${this.name}: not ${what} after ${timeoutMs} ms; events:\n${this.describe()}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** The pod's events, one per line (`kubectl describe pod` style). */
  describe(): string {
    return this.events.map((e) => `${(e.at / 1000).toFixed(1)}s ${e.type}: ${e.detail}`).join('\n');
  }

  /**
   * Deletes the pod: no more probes or restarts, Ready false at once (the endpoints
   * controller drops a terminating pod), then `kill` (preStop, SIGTERM, SIGKILL at the grace period).
   */
  async terminate(graceSeconds = this.o.terminationGracePeriodSeconds): Promise<void> {
    this.stopped = true;
    this.generation++;
    this.event('terminating', `deleted, grace ${graceSeconds} s`);
    this.setReady(false, 'terminating');
    if (this.container) await this.container.kill(graceSeconds);
  }

  /** Stops probing and restarting without killing anything (the caller kills the processes). */
  detach(): void {
    this.stopped = true;
    this.generation++;
  }

  private event(type: PodEvent['type'], detail: string): void {
    this.events.push({ at: this.now(), type, detail });
    this.o.log?.(`[kubelet] ${this.name} ${type}: ${detail}`);
    for (const w of [...this.waiters]) w();
  }

  private setReady(ready: boolean, why: string): void {
    if (this.ready === ready) return;
    this.ready = ready;
    this.event(ready ? 'ready' : 'not-ready', why);
    this.o.onReadyChange?.(ready);
  }

  private async startContainer(): Promise<C> {
    const gen = ++this.generation;
    this.started = false;
    this.lastStart = Date.now();
    const c = await this.o.start();
    this.container = c;
    this.event('started', `pid ${c.pid}${this.restarts ? ` (restart ${this.restarts})` : ''}`);
    void c.exited.then(() => this.onExit(gen, c));
    const { startup, readiness, liveness } = this.o.probes;
    if (!startup) this.onStarted(gen);
    for (const [kind, spec] of [
      ['startup', startup],
      ['readiness', readiness],
      ['liveness', liveness],
    ] as const) {
      if (spec) void this.worker(kind, spec, gen, c);
    }
    return c;
  }

  private onStarted(gen: number): void {
    if (gen !== this.generation) return;
    this.started = true;
    this.event('startup-succeeded', 'liveness and readiness probes apply');
  }

  /** One probe worker for one container generation, as the kubelet's prober worker. */
  private async worker(kind: ProbeKind, spec: ProbeSpec, gen: number, c: C): Promise<void> {
    const t = timingsOf(spec);
    const attempt = this.o.attempt(spec, c);
    const live = () => gen === this.generation && !this.stopped;
    await sleep(t.initialDelaySeconds * 1000);
    let last: boolean | undefined;
    let run = 0;
    while (live()) {
      const begun = Date.now();
      // Readiness and liveness do not run until the startup probe has succeeded.
      if (kind === 'startup' || this.started) {
        const r = await attempt(t.timeoutSeconds * 1000);
        if (!live()) return;
        run = r.ok === last ? run + 1 : 1;
        last = r.ok;
        if (!r.ok) this.event('probe-failed', `${kind} ${r.detail} (${run}/${t.failureThreshold})`);
        if (kind === 'startup') {
          if (r.ok) return this.onStarted(gen);
          if (run >= t.failureThreshold) return void this.restart(gen, `startup probe failed ${run} times`, spec);
        } else if (kind === 'readiness') {
          if (r.ok && run >= t.successThreshold) this.setReady(true, `${run} readiness successes`);
          if (!r.ok && run >= t.failureThreshold) this.setReady(false, `${run} readiness failures`);
        } else if (!r.ok && run >= t.failureThreshold) {
          return void this.restart(gen, `liveness probe failed ${run} times`, spec);
        }
      }
      await sleep(Math.max(0, t.periodSeconds * 1000 - (Date.now() - begun)));
    }
  }

  private async restart(gen: number, why: string, spec: ProbeSpec): Promise<void> {
    if (gen !== this.generation || this.stopped) return;
    const c = this.container!;
    const grace = spec.terminationGracePeriodSeconds ?? this.o.terminationGracePeriodSeconds;
    this.event('killing', `${why}; grace ${grace} s`);
    // Exiting ends this generation (onExit): Ready goes false and the back-off starts there.
    await c.kill(grace);
  }

  private async onExit(gen: number, c: C): Promise<void> {
    if (gen !== this.generation || this.stopped) return;
    this.generation++;
    this.started = false;
    this.event('exited', `pid ${c.pid}`);
    this.setReady(false, 'container not running');
    if (Date.now() - this.lastStart >= (this.o.backOff ?? KUBELET_BACKOFF).resetAfterMs) this.backOffMs = 0;
    const delay = this.backOffMs;
    const b = this.o.backOff ?? KUBELET_BACKOFF;
    this.backOffMs = delay === 0 ? b.initialMs : Math.min(delay * 2, b.maxMs);
    if (delay > 0) this.event('back-off', `restarting in ${delay / 1000} s`);
    await sleep(delay);
    if (this.stopped) return;
    this.restarts++;
    try {
      await this.startContainer();
    } catch (e) {
      // The first line says what failed, the last non-empty one why (an init container's last output line).
      const lines = (e as Error).message.split('\n').filter((l) => l.trim());
      this.event(
        'exited',
        `start failed: ${lines[0]}${lines.length > 1 ? ` ... ${lines[lines.length - 1].trim()}` : ''}`,
      );
      // A failed start counts as a crash: back off and try again.
      void this.onExit(this.generation, {
        pid: 0,
        exited: Promise.resolve(),
        kill: async () => undefined,
      } as unknown as C);
    }
  }
}

// Unreferenced: a probe timer never keeps a process alive on its own (the twin holds its own).
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

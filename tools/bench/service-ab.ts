/**
 * `npm run bench:service -- [--base <git rev>] [--env NAME=value ...] [--rounds 6] [--seconds 5] [--profile]`:
 * the API service of this checkout ("new") against the service of a git revision ("base", default HEAD),
 * side by side on one dev twin, with the baseline server of `npm run bench` in the same rounds.
 * `--env` (repeatable) changes one variable of the new process only: with the default base, a
 * setting's cost on the same code (e.g. `--env CACHE_LOCAL_TTL_SECONDS=30`).
 * The base revision's service/ (and tools/run.js) is extracted with `git archive` and runs on this
 * checkout's node_modules and with this checkout's Deployment env.
 *
 * Both are one API process with the Deployment's env (LOG_LEVEL=info, metrics, cache with its local
 * tier) under the cached-GET load of `npm run bench`: autocannon, 100 connections, Zipf s = 1 over
 * 10,000 users, after a warm-up of each, at a fixed total rate (--rate, default 2,500 req/s, below
 * what one process serves here): CPU per request falls as a busier process batches more per turn of its
 * event loop, so the variants are compared at the same load. The measure is CPU per request from /proc
 * (user + system of the process and its children), which does not depend on how the two cores are shared. Each round
 * runs the three in a rotated order, so a noisy neighbour hits them alike; the table gives medians
 * of the rounds and the median of the per-round ratios.
 *
 * --profile: after the rounds, one more run of each with V8's sampling profiler, summarized as the
 * top frames by self time (tools/bench/profile.ts). Profiling slows a process, so those runs are
 * not counted in the table.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type autocannon from 'autocannon';
import { median } from '../k8s/values';
import type { ApiPod } from '../runtime/twin/api-pods';
import { startTwin, type Twin } from '../runtime/twin/twin';
import type { ComponentRoots } from './cpu';
import { KEYS, measure, seed, startBaseline, type Target, WARM_UP_REQUESTS } from './http';
import { profileEnv, renderProfile, startProfile, stopProfile } from './profile';
import { intOption } from './report';
import { seededRandom, zipfSampler } from './zipf';

const ROOT = join(__dirname, '..', '..');

function stringOption(argv: readonly string[], name: string, fallback: string): string {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const v = argv[i + 1];
  if (!v || v.startsWith('--')) throw new Error(`${name} needs a value`);
  return v;
}

/** The service of `rev` in a temporary directory, running on this checkout's node_modules. */
function checkout(rev: string): { dir: string; sha: string } {
  const sha = execFileSync('git', ['rev-parse', '--verify', `${rev}^{commit}`], { cwd: ROOT, encoding: 'utf8' }).trim();
  const dir = mkdtempSync(join(tmpdir(), 'fastnext-ab-'));
  const tar = execFileSync('git', ['archive', sha, 'service', 'tools/run.js'], { cwd: ROOT, maxBuffer: 1 << 28 });
  execFileSync('tar', ['-x', '-C', dir], { input: tar });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  return { dir, sha };
}

/** Every `--env NAME=value` pair. */
export function envOptions(argv: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  argv.forEach((a, i) => {
    if (a !== '--env') return;
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(argv[i + 1] ?? '');
    if (!m) throw new Error(`--env needs NAME=value (got ${JSON.stringify(argv[i + 1] ?? '')})`);
    env[m[1]] = m[2];
  });
  return env;
}

const fmt = (xs: readonly number[], digits = 0) => xs.map((x) => x.toFixed(digits)).join(' / ');

export async function main(argv: readonly string[] = []): Promise<number> {
  const rounds = intOption(argv, '--rounds', 6);
  const seconds = intOption(argv, '--seconds', 5);
  const rate = intOption(argv, '--rate', 2500);
  const profile = argv.includes('--profile');
  const newEnv = envOptions(argv);
  const base = checkout(stringOption(argv, '--base', 'HEAD'));
  const profileDir = join(base.dir, 'profiles');
  const profiled = profile ? profileEnv(profileDir) : {};
  const log = (line: string) => console.log(line);
  const baseline = await startBaseline(profiled);
  let twin: Twin | undefined;
  try {
    twin = await startTwin({ env: 'dev', log });
    const ids = await seed(twin);
    const pods: Record<'new' | 'base', ApiPod> = {
      new: await twin.startPod('api-new', { rotation: false, overrides: { ...profiled, ...newEnv } }),
      base: await twin.startPod('api-base', { rotation: false, overrides: profiled, serviceRoot: base.dir }),
    };
    const url = (p: ApiPod) => `http://${p.http.host}:${p.http.port}`;
    const targets: Record<'new' | 'base' | 'baseline', Target & { pid: number }> = {
      new: {
        label: Object.keys(newEnv).length
          ? `this checkout, ${Object.entries(newEnv)
              .map(([k, v]) => `${k}=${v}`)
              .join(' ')}`
          : 'this checkout',
        url: url(pods.new),
        pods: [pods.new],
        pid: pods.new.pid,
      },
      base: { label: `base ${base.sha.slice(0, 10)}`, url: url(pods.base), pods: [pods.base], pid: pods.base.pid },
      baseline: { label: 'baseline server', url: baseline.url, pods: [], pid: baseline.child.pid! },
    };
    const zipf = zipfSampler(KEYS, 1, seededRandom(42));
    const cached = (): autocannon.Request => ({ method: 'GET', path: `/api/v1/users/${ids[zipf()]}` });
    const constant = (): autocannon.Request => ({ method: 'GET', path: '/' });
    const requestFor = (name: keyof typeof targets) => (name === 'baseline' ? constant : cached);
    const components: Record<string, ComponentRoots> = Object.fromEntries(
      Object.entries(targets).map(([name, t]) => [name, { pids: () => [t.pid] }]),
    );
    for (const name of ['new', 'base'] as const) {
      log(`[ab] warm-up: ${WARM_UP_REQUESTS} cached GETs -> ${targets[name].label}`);
      await measure(targets[name], { amount: WARM_UP_REQUESTS }, cached);
    }
    const names = ['new', 'base', 'baseline'] as const;
    const perRequest: Record<(typeof names)[number], number[]> = { new: [], base: [], baseline: [] };
    const local: Record<'new' | 'base', number[]> = { new: [], base: [] };
    const errors: Record<string, number> = { new: 0, base: 0, baseline: 0 };
    for (let r = 0; r < rounds; r++) {
      const order = names.map((_, i) => names[(i + r) % names.length]);
      for (const name of order) {
        const x = await measure(targets[name], { seconds }, requestFor(name), components, rate);
        const us = (x.cpu[name] * 1e6) / x.total;
        perRequest[name].push(us);
        errors[name] += x.errors;
        if (name !== 'baseline') local[name].push(x.delta.localHits / Math.max(1, x.delta.hits + x.delta.misses));
        log(
          `[ab] round ${r + 1}/${rounds} ${name}: ${us.toFixed(1)} µs/request, ${x.requestsPerSecond.toFixed(0)} req/s`,
        );
      }
    }
    const ratio = (a: readonly number[], b: readonly number[]) => median(a.map((x, i) => x / b[i]));
    const lines = [
      `CPU per request, one process each, ${rounds} rounds of ${seconds} s at ${rate} req/s (order rotated each round):`,
      '',
      '| variant | CPU µs / request (median) | rounds | x baseline (median of rounds) | errors | answered in-process |',
      '| --- | --- | --- | --- | --- | --- |',
      ...names.map(
        (n) =>
          `| ${targets[n].label} | ${median(perRequest[n]).toFixed(1)} | ${fmt(perRequest[n])} | ` +
          `${n === 'baseline' ? '1.00' : ratio(perRequest[n], perRequest.baseline).toFixed(2)} | ${errors[n]} | ` +
          `${n === 'baseline' ? '-' : `${(100 * median(local[n])).toFixed(1)} %`} |`,
      ),
      '',
      `this checkout / base: **${ratio(perRequest.new, perRequest.base).toFixed(3)}** (median of the per-round ratios: ` +
        `${fmt(
          perRequest.new.map((x, i) => x / perRequest.base[i]),
          3,
        )})`,
    ];
    console.log(`\n${lines.join('\n')}`);
    if (profile) {
      for (const name of names) {
        const t = targets[name];
        startProfile(t.pid);
        await measure(t, { seconds }, requestFor(name), {}, rate);
        console.log(
          `\n${renderProfile(`${t.label} (profiled run, not counted)`, await stopProfile(t.pid, profileDir, 0, 12))}`,
        );
      }
    }
    return 0;
  } finally {
    await twin?.stop();
    baseline.stop();
    rmSync(base.dir, { recursive: true, force: true });
  }
}

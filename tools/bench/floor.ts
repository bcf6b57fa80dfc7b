/**
 * `npm run bench:floor -- [--rounds 6] [--seconds 5] [--rate 2000]`: what the duties issue 19 keeps cost a
 * Fastify server, one at a time, against the baseline server of `npm run bench`. The floor server
 * (tools/bench/floor-server.ts) answers the API's cached GET from the service's in-process tier, with the
 * service's own code for each rung: route and schemas, access log, metrics, ETag, input hooks. Each rung
 * is its own process (rung N runs rungs 1..N); no twin, no Redis, no database.
 *
 * Load as in `npm run bench:service`: autocannon, 100 connections, Zipf s = 1 over 10,000 users, after a
 * warm-up, at a fixed rate (CPU per request falls as a busier process batches more per turn of its event
 * loop, so the rungs are compared at the same load). The measure is CPU per request from /proc (user +
 * system of the process). Each round runs every server in a rotated order; the table gives medians of the
 * rounds, the median of the per-round ratios to the baseline, and the median per-round step from the rung
 * before.
 */
import type autocannon from 'autocannon';
import { median } from '../k8s/values';
import { FLOOR_FIRST_ID, FLOOR_RUNGS } from './floor-server';
import { measure, startBaseline, startBenchServer, type Target } from './http';
import { intOption } from './report';
import { seededRandom, zipfSampler } from './zipf';

const USERS = 10000;
const WARM_UP = 20000;

export async function main(argv: readonly string[] = []): Promise<number> {
  const rounds = intOption(argv, '--rounds', 6);
  const seconds = intOption(argv, '--seconds', 5);
  const rate = intOption(argv, '--rate', 2000);
  const servers = [
    { label: 'baseline server (constant route, logger off)', ...(await startBaseline()) },
    ...(await Promise.all(
      FLOOR_RUNGS.map(async (duty, i) => ({
        label: `${i + 1}. ${i === 0 ? '' : '+ '}${duty}`,
        ...(await startBenchServer('floor-server.ts', ['--rung', String(i + 1), '--users', String(USERS)])),
      })),
    )),
  ];
  try {
    const zipf = zipfSampler(USERS, 1, seededRandom(42));
    const cached = (): autocannon.Request => ({ method: 'GET', path: `/api/v1/users/${FLOOR_FIRST_ID + zipf()}` });
    const constant = (): autocannon.Request => ({ method: 'GET', path: '/' });
    const rungs: Rung[] = servers.map((s, i) => ({
      target: { label: s.label, url: s.url, pods: [] },
      request: i === 0 ? constant : cached,
      pids: [s.child.pid!],
    }));
    console.log(`\n${await runLadder('floor', rungs, { rounds, seconds, rate, warmUp: WARM_UP })}`);
    return 0;
  } finally {
    for (const s of servers) s.stop();
  }
}

/** One server of a ladder: where to send what, and whose CPU it is (roots and their descendants). */
export interface Rung {
  readonly target: Target;
  readonly request: () => autocannon.Request;
  readonly pids: readonly number[];
}

/**
 * Warms each rung up (`warmUp` requests at the rate: any error stops the run), then measures the rungs
 * in `rounds` rounds of `seconds` at `rate`, each round in an order rotated by one, and returns the
 * floor table (row 0 is what the others are compared with).
 */
export async function runLadder(
  tag: string,
  rungs: readonly Rung[],
  run: { rounds: number; seconds: number; rate: number; warmUp: number },
  ratioTo?: string,
): Promise<string> {
  for (const { target, request } of rungs) {
    console.log(`[${tag}] warm-up: ${run.warmUp} requests -> ${target.label}`);
    const w = await measure(target, { amount: run.warmUp }, request, {}, run.rate);
    if (w.errors > 0) {
      throw new Error(`${target.label}: ${w.errors} errors in the warm-up (${JSON.stringify(w.statuses)})`);
    }
  }
  const perRequest: number[][] = rungs.map(() => []);
  const errors = rungs.map(() => 0);
  for (let r = 0; r < run.rounds; r++) {
    for (let k = 0; k < rungs.length; k++) {
      const i = (k + r) % rungs.length;
      const { target, request, pids } = rungs[i];
      const x = await measure(target, { seconds: run.seconds }, request, { rung: { pids: () => pids } }, run.rate);
      const us = (x.cpu.rung * 1e6) / x.total;
      perRequest[i].push(us);
      errors[i] += x.errors;
      console.log(`[${tag}] round ${r + 1}/${run.rounds} ${target.label}: ${us.toFixed(1)} µs/request`);
    }
  }
  return floorTable(
    rungs.map((g) => g.target.label),
    perRequest,
    errors,
    run,
    ratioTo,
  );
}

/**
 * The floor's table: row 0 is what the others are compared with (`ratioTo`). The ratio and the step are
 * medians of per-round figures (ratio to row 0's round; difference from the row before in the same round).
 */
export function floorTable(
  labels: readonly string[],
  perRequest: readonly (readonly number[])[],
  errors: readonly number[],
  run: { rounds: number; seconds: number; rate: number },
  /** What row 0 is called in the ratio column. */
  ratioTo = 'baseline',
): string {
  const perRound = (i: number, f: (r: number) => number) => median(perRequest[i].map((_, r) => f(r)));
  return [
    `CPU per request from /proc, ${run.rounds} rounds of ${run.seconds} s at ${run.rate} req/s ` +
      '(order rotated each round):',
    '',
    `| server | CPU µs / request (median) | rounds | x ${ratioTo} (median of rounds) | step from the row above (µs, median of rounds) | errors |`,
    '| --- | --- | --- | --- | --- | --- |',
    ...labels.map((label, i) => {
      const step = i === 0 ? '-' : perRound(i, (r) => perRequest[i][r] - perRequest[i - 1][r]).toFixed(1);
      const ratio = i === 0 ? '1.00' : perRound(i, (r) => perRequest[i][r] / perRequest[0][r]).toFixed(2);
      return (
        `| ${label} | ${median(perRequest[i]).toFixed(1)} | ${perRequest[i].map((x) => x.toFixed(0)).join(' / ')} | ` +
        `${ratio} | ${step} | ${errors[i]} |`
      );
    }),
  ].join('\n');
}

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
  const log = (line: string) => console.log(line);
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
    const requestFor = (i: number) => (i === 0 ? constant : cached);
    const targets: Target[] = servers.map((s) => ({ label: s.label, url: s.url, pods: [] }));
    const components = (i: number) => ({ [i]: { pids: () => [servers[i].child.pid!] } });
    for (const [i, t] of targets.entries()) {
      log(`[floor] warm-up: ${WARM_UP} requests -> ${t.label}`);
      const w = await measure(t, { amount: WARM_UP }, requestFor(i));
      if (w.errors > 0)
        throw new Error(`${t.label}: ${w.errors} errors in the warm-up (${JSON.stringify(w.statuses)})`);
    }
    const perRequest: number[][] = servers.map(() => []);
    const errors = servers.map(() => 0);
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < servers.length; k++) {
        const i = (k + r) % servers.length;
        const x = await measure(targets[i], { seconds }, requestFor(i), components(i), rate);
        const us = (x.cpu[i] * 1e6) / x.total;
        perRequest[i].push(us);
        errors[i] += x.errors;
        log(`[floor] round ${r + 1}/${rounds} ${targets[i].label}: ${us.toFixed(1)} µs/request`);
      }
    }
    console.log(
      `\n${floorTable(
        servers.map((s) => s.label),
        perRequest,
        errors,
        { rounds, seconds, rate },
      )}`,
    );
    return 0;
  } finally {
    for (const s of servers) {
      s.child.removeAllListeners('exit');
      s.child.kill('SIGTERM');
    }
  }
}

/**
 * The floor's table: row 0 is the baseline. "x baseline" and "step" are medians of per-round figures
 * (ratio to the baseline's round; difference from the row before in the same round).
 */
export function floorTable(
  labels: readonly string[],
  perRequest: readonly (readonly number[])[],
  errors: readonly number[],
  run: { rounds: number; seconds: number; rate: number },
): string {
  const perRound = (i: number, f: (r: number) => number) => median(perRequest[i].map((_, r) => f(r)));
  return [
    `CPU per request from /proc, one process each, ${run.rounds} rounds of ${run.seconds} s at ${run.rate} req/s ` +
      '(order rotated each round):',
    '',
    '| server | CPU µs / request (median) | rounds | x baseline (median of rounds) | step from the row above (µs, median of rounds) | errors |',
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

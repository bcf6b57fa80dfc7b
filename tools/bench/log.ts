/**
 * `npm run bench:log`: CPU per access-log line of the shipped stdout stream (one write per event-loop
 * turn) against pino's synchronous default (a write per line) and pino's asynchronous destination
 * (shipped before: writes through the thread pool). Each round runs all three, in a rotated order, as
 * child processes whose stdout is a pipe drained by this process (a container's stdout is a pipe to its
 * runtime); each child measures its own CPU, all threads (user + system, process.cpuUsage), so other
 * load on the machine counts little. `--per-turn` lines are logged per turn of the event loop (10 by
 * default: about what one API process answers per turn at 2,000 req/s). Prints the rounds and the medians.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { median } from '../k8s/values';
import { intOption } from './report';

const ROOT = join(__dirname, '..', '..');
const MODES = ['sync', 'async', 'turn'] as const;

function runChild(mode: (typeof MODES)[number], lines: number, perTurn: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const args = ['tools/run.js', 'tools/bench/log-lines.ts', mode, String(lines), String(perTurn)];
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stdout.resume();
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const us = Number(err.trim().split('\n').pop());
      if (code !== 0 || !Number.isFinite(us)) reject(new Error(`log-lines ${mode} exited ${code}: ${err}`));
      else resolve(us);
    });
  });
}

export async function main(argv: readonly string[] = []): Promise<number> {
  const lines = intOption(argv, '--lines', 100000);
  const rounds = intOption(argv, '--rounds', 8);
  const perTurn = intOption(argv, '--per-turn', 10);
  const results: Record<(typeof MODES)[number], number[]> = { sync: [], async: [], turn: [] };
  for (let r = 0; r < rounds; r++) {
    for (const mode of MODES.map((_, i) => MODES[(i + r) % MODES.length])) {
      results[mode].push(await runChild(mode, lines, perTurn));
    }
  }
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' / ');
  const m = { sync: median(results.sync), async: median(results.async), turn: median(results.turn) };
  const label = {
    sync: 'pino synchronous (default)',
    async: 'pino asynchronous (shipped before)',
    turn: 'shipped: one write per turn',
  };
  console.log(`${perTurn} lines per event-loop turn, ${lines} lines per child:\n`);
  console.log(`| log stream | CPU µs per line (median of ${rounds}) | rounds |`);
  console.log('| --- | --- | --- |');
  for (const mode of MODES) console.log(`| ${label[mode]} | ${m[mode].toFixed(2)} | ${fmt(results[mode])} |`);
  console.log(
    `\nshipped / synchronous: ${(m.turn / m.sync).toFixed(2)}; shipped / asynchronous: ${(m.turn / m.async).toFixed(2)}`,
  );
  return 0;
}

/**
 * `npm run bench:log`: CPU per access-log line, the shipped asynchronous stdout stream against
 * pino's synchronous default. Each round runs both, in alternating order, as child processes whose
 * stdout is a pipe drained by this process (a container's stdout is a pipe to its runtime); each
 * child measures its own CPU (user + system, process.cpuUsage), so other load on the machine
 * counts little. Prints the rounds and the medians.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { median } from '../k8s/values';
import { intOption } from './report';

const ROOT = join(__dirname, '..', '..');
const MODES = ['sync', 'async'] as const;

function runChild(mode: (typeof MODES)[number], lines: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['tools/run.js', 'tools/bench/log-lines.ts', mode, String(lines)], {
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
  const results: Record<string, number[]> = { sync: [], async: [] };
  for (let r = 0; r < rounds; r++) {
    for (const mode of r % 2 ? [...MODES].reverse() : MODES) results[mode].push(await runChild(mode, lines));
  }
  const fmt = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' / ');
  const [s, a] = [median(results.sync), median(results.async)];
  console.log(`| log stream | CPU µs per line (median of ${rounds}) | rounds |`);
  console.log('| --- | --- | --- |');
  console.log(`| pino synchronous (default) | ${s.toFixed(2)} | ${fmt(results.sync)} |`);
  console.log(`| shipped asynchronous | ${a.toFixed(2)} | ${fmt(results.async)} |`);
  console.log(`\nasynchronous / synchronous: ${(a / s).toFixed(2)} (${(s - a).toFixed(2)} µs less per line)`);
  return 0;
}

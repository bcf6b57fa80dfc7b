/**
 * The serving process writes its log lines once per event-loop turn (server.ts `serviceLogStream`):
 * no line may be lost when the process exits right after logging, and none may be held back
 * on a quiet pod waiting for a buffer to fill.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..', '..');

function run(
  lines: number,
  mode: 'exit' | 'idle' | 'nonblocking',
  onLines?: (n: number, kill: () => void) => void,
  readAfterMs = 0,
) {
  return new Promise<{ code: number | null; lines: string[]; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['tools/run.js', 'service/test/helpers/log-lines.ts', String(lines), mode], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    if (readAfterMs > 0) {
      child.stdout.pause();
      setTimeout(() => child.stdout.resume(), readAfterMs);
    }
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      onLines?.(out.split('\n').filter(Boolean).length, () => child.kill('SIGKILL'));
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, lines: out.split('\n').filter(Boolean), stderr }));
  });
}

test('every line reaches stdout when the process exits right after logging', async () => {
  const r = await run(20000, 'exit');
  expect(r.code).toBe(0);
  expect(r.lines).toHaveLength(20000);
  const last = JSON.parse(r.lines[r.lines.length - 1]) as { i: number; msg: string };
  expect(last).toMatchObject({ i: 19999, msg: 'request completed' });
});

test('a quiet process holds no line back', async () => {
  // The child logs 3 lines, then idles 5 s: all 3 must arrive while it is still alive (it is then killed).
  let seenAlive = 0;
  const r = await run(3, 'idle', (n, kill) => {
    seenAlive = n;
    if (n >= 3) kill();
  });
  expect(seenAlive).toBe(3);
  expect(r.code).toBeNull(); // killed while idling: the lines did not wait for the exit flush
});

test('a non-blocking stdout that fills up (EAGAIN) is waited out: every line arrives, in order, whole', async () => {
  // 20,000 lines (about 3 MB) into a 64 KiB pipe nobody reads for the first 500 ms: on a
  // non-blocking descriptor the writes must meet EAGAIN and retry.
  const r = await run(20000, 'nonblocking', undefined, 500);
  const flags = /stdout flags (\d+)/.exec(r.stderr)?.[1];
  expect(flags).toBeDefined();
  expect(parseInt(flags!, 8) & 0o4000).toBe(0o4000); // O_NONBLOCK
  expect(r.code).toBe(0);
  expect(r.lines).toHaveLength(20000);
  expect(r.lines.map((l) => (JSON.parse(l) as { i: number }).i)).toEqual([...Array(20000).keys()]);
});

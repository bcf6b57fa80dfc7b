/**
 * The serving process writes its log lines once per event-loop turn (server.ts `serviceLogStream`):
 * no line may be lost when the process exits right after logging, and none may be held back
 * on a quiet pod waiting for a buffer to fill.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..', '..');

function run(lines: number, mode: 'exit' | 'idle', onLines?: (n: number, kill: () => void) => void) {
  return new Promise<{ code: number | null; lines: string[] }>((resolve, reject) => {
    const child = spawn(process.execPath, ['tools/run.js', 'service/test/helpers/log-lines.ts', String(lines), mode], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      onLines?.(out.split('\n').filter(Boolean).length, () => child.kill('SIGKILL'));
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, lines: out.split('\n').filter(Boolean) }));
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

/**
 * Child process of service/test/unit/log-stream.test.ts: logs through the serving process's
 * log stream (server.ts `serviceLogStream`), the way the API does.
 * `node tools/run.js service/test/helpers/log-lines.ts <lines> exit`: logs the lines, then calls
 * process.exit(0) at once (pino must flush what is buffered). `... <lines> idle`: logs the lines,
 * then stays alive 5 s without logging (nothing may be held back waiting for more).
 * `... <lines> nonblocking`: first makes stdout non-blocking (Node does so for a pipe once
 * `process.stdout` is opened), reports its file status flags on stderr, then logs as `exit`.
 */
import { readFileSync } from 'node:fs';
import pino from 'pino';
import { serviceLogStream } from '../../src/server';

export function main(argv: readonly string[]): Promise<number> {
  const lines = Number(argv[0]);
  if (argv[1] === 'nonblocking') {
    void process.stdout;
    const flags = /^flags:\s*(\d+)/m.exec(readFileSync('/proc/self/fdinfo/1', 'utf8'))![1];
    process.stderr.write(`stdout flags ${flags}\n`);
  }
  const log = pino({ level: 'info' }, serviceLogStream());
  for (let i = 0; i < lines; i++) log.info({ i, pad: 'x'.repeat(100) }, 'request completed');
  if (argv[1] !== 'idle') process.exit(0);
  return new Promise((resolve) => setTimeout(() => resolve(0), 5000));
}

/**
 * Child of `npm run bench:log` (tools/bench/log.ts): writes `lines` access-log lines, as the API
 * writes one per request, through the log stream `mode` names, `perTurn` lines per event-loop turn
 * (the requests one turn answers under load), then prints its CPU microseconds per line on stderr.
 * `turn` is the shipped stream (service/src/server.ts `serviceLogStream`), `sync` pino's default,
 * `async` pino's asynchronous destination (the one shipped before).
 */
import pino from 'pino';
import { serviceLogStream } from '../../service/src/server';

export function main(argv: readonly string[]): Promise<number> {
  const [mode, count, perTurnArg] = argv;
  const lines = Number(count);
  const perTurn = Number(perTurnArg ?? 50);
  const dest = mode === 'turn' ? serviceLogStream() : pino.destination({ dest: 1, sync: mode === 'sync' });
  const log = pino({ level: 'info' }, dest).child({ reqId: '0123456789abcdef0123456789abcdef' });
  const start = process.cpuUsage();
  let i = 0;
  return new Promise((resolve) => {
    const turn = () => {
      for (let k = 0; k < perTurn && i < lines; k++, i++) {
        log.info(
          {
            req: { method: 'GET', url: `/api/v1/users/${i}`, remoteAddress: '127.0.0.1' },
            res: { statusCode: 200 },
            responseTime: 1.234,
          },
          'request completed',
        );
      }
      if (i < lines) return void setImmediate(turn);
      dest.flushSync();
      const used = process.cpuUsage(start);
      process.stderr.write(`${(used.user + used.system) / lines}\n`);
      resolve(0);
    };
    turn();
  });
}

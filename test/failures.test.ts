/**
 * tools/runtime/twin/failures.ts: a drill's failed requests explained from the edge's
 * access log joined with the pods' logs on nginx's request id (log lines as nginx's
 * shipped `log_format json` and the service's pino logger write them).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { explainFailures } from '../tools/runtime/twin/failures';
import type { Outcome } from '../tools/runtime/twin/traffic';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'failures-'));
  const edge = (o: object) => JSON.stringify({ time: '2026-12-04T18:00:00+00:00', uri: '/api/v1/users', ...o });
  writeFileSync(
    join(dir, 'nginx.log'),
    [
      edge({ remote_addr: '127.0.109.1', request_id: 'a1', method: 'POST', status: 503, upstream: '127.0.0.1:4001' }),
      edge({ remote_addr: '127.0.109.1', request_id: 'a2', method: 'POST', status: 503, upstream: '127.0.0.1:4001' }),
      edge({
        remote_addr: '127.0.109.1',
        request_id: 'a3',
        method: 'GET',
        status: 502,
        upstream: '127.0.0.1:4002, 127.0.0.1:4001',
      }),
      edge({ remote_addr: '127.0.109.1', request_id: 'a4', method: 'GET', status: 200, upstream: '127.0.0.1:4001' }),
      // Another drill's client: not this one's failure.
      edge({ remote_addr: '127.0.108.1', request_id: 'b1', method: 'POST', status: 503, upstream: '127.0.0.1:4001' }),
      'nginx: [warn] not a JSON line',
    ].join('\n'),
  );
  const pod = (o: object) => JSON.stringify({ level: 30, time: 1, pid: 1, hostname: 'vm', ...o });
  writeFileSync(
    join(dir, 'api-0.log'),
    [
      pod({ msg: 'Server listening at http://127.0.0.1:4001' }),
      pod({
        level: 50,
        reqId: 'a1',
        err: { message: 'the primary is unreachable (timed out)' },
        msg: 'request failed',
      }),
      pod({
        level: 50,
        reqId: 'a2',
        err: { message: 'the primary is unreachable (timed out)' },
        msg: 'request failed',
      }),
      pod({ level: 50, reqId: 'b1', err: { message: 'other' }, msg: 'request failed' }),
    ].join('\n'),
  );
  writeFileSync(join(dir, 'api-1.log'), pod({ msg: 'Server listening at http://127.0.0.1:4002' }));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const outcome = (status: number, error?: string): Outcome => ({
  i: 0,
  method: 'POST',
  path: '/api/v1/users',
  at: 0,
  ms: 1,
  status,
  body: '',
  error,
});

test('groups failures by status, method, answering pod and the error the pod logged; unanswered by client error', () => {
  const failed = [outcome(503), outcome(503), outcome(502), outcome(0, 'timeout after 10000 ms')];
  expect(explainFailures(failed, '127.0.109.1', { edgeLogPath: join(dir, 'nginx.log'), podLogDir: dir })).toEqual([
    '2 x 503 POST via api-0 (the primary is unreachable (timed out))',
    '1 x 502 GET via api-0 (not in the pod log)',
    '1 x no answer (timeout after 10000 ms)',
  ]);
});

test('nothing failed: nothing to explain', () => {
  expect(explainFailures([], '127.0.109.1', { edgeLogPath: join(dir, 'nginx.log'), podLogDir: dir })).toEqual([]);
});

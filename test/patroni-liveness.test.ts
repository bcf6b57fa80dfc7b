/**
 * The shipped Patroni liveness check (constructs/postgres/patroni-liveness.ts), run by python3
 * against a stand-in of Patroni's REST API that answers as Patroni 3.0.2 does, for the decisions
 * the real-server drill in test/patroni.test.ts does not reach every run: a stale HA loop, a
 * replica that is behind but replaying, one reinitialise request, the record dropped once it follows.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { livenessScript } from '../constructs/postgres/patroni-liveness';
import { find, objectsOf } from './helpers/objects';

interface State {
  liveness: number;
  me: { role: string; timeline: number; xlog: { replayed_location: number } };
  leaderTimeline: number;
  reinits: number;
}

let server: Server;
let base: string;
let dir: string;
let state: State;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'patroni-liveness-'));
  writeFileSync(join(dir, 'liveness.py'), livenessScript());
  server = createServer((req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/liveness') return json(state.liveness, {});
    if (req.url === '/patroni') return json(200, { state: 'running', ...state.me });
    if (req.url === '/cluster')
      return json(200, {
        members: [
          { name: 'postgres-1', role: 'leader', state: 'running', timeline: state.leaderTimeline },
          { name: 'postgres-2', role: state.me.role, state: 'running', timeline: state.me.timeline },
        ],
      });
    if (req.url === '/reinitialize' && req.method === 'POST') {
      state.reinits++;
      return json(200, {});
    }
    json(404, {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
});
beforeEach(() => {
  rmSync(join(dir, 'state.json'), { force: true });
  state = {
    liveness: 200,
    me: { role: 'replica', timeline: 2, xlog: { replayed_location: 83886080 } },
    leaderTimeline: 2,
    reinits: 0,
  };
});

/** One probe run, as the kubelet makes it (async: the stand-in answers on this thread). */
const probe = (limitSeconds: number) =>
  new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn('python3', [join(dir, 'liveness.py'), base], {
      env: {
        PATH: process.env.PATH,
        LIVENESS_STATE_FILE: join(dir, 'state.json'),
        LIVENESS_DIVERGED_SECONDS: String(limitSeconds),
      },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ code, out }));
  });

test('the shipped StatefulSet runs this script as the Patroni container liveness probe', () => {
  const sts = find(objectsOf('prod'), 'StatefulSet', 'postgres');
  const patroni = sts.spec.template.spec.containers.find((c: { name: string }) => c.name === 'patroni');
  expect(patroni.livenessProbe?.exec?.command.slice(0, 2)).toEqual(['python3', '/etc/patroni/liveness.py']);
  expect(spawnSync('python3', ['-m', 'py_compile', join(dir, 'liveness.py')]).status).toBe(0);
});

test("fails when Patroni's own liveness is stale (503) or Patroni does not answer", async () => {
  state.liveness = 503;
  expect(await probe(30)).toMatchObject({ code: 1, out: expect.stringContaining('503') });
  const down = spawnSync('python3', [join(dir, 'liveness.py'), 'http://127.0.0.1:1'], { encoding: 'utf8' });
  expect(down.status).toBe(1);
  expect(down.stdout).toContain('does not answer');
});

test('a replica on the leader timeline, and a leader, pass and ask for nothing', async () => {
  expect((await probe(0)).code).toBe(0);
  state.me.role = 'master';
  state.me.timeline = 2;
  expect((await probe(0)).code).toBe(0);
  expect(state.reinits).toBe(0);
});

test('a replica behind the leader timeline: nothing while it replays, then one reinitialise request once replay stops for the limit', async () => {
  state.me.timeline = 1;
  // Behind but replaying (catching up from the archive): passes, asks for nothing, however long.
  expect((await probe(30)).out).toContain('ok for now');
  state.me.xlog.replayed_location += 16384;
  expect((await probe(1)).out).toContain('ok for now');
  expect(state.reinits).toBe(0);
  // Replay has not moved since the last check: past the limit it asks Patroni to reinitialise it, once.
  const late = await probe(0);
  expect(late).toMatchObject({ code: 0, out: expect.stringContaining('asked Patroni to reinitialise it: HTTP 200') });
  expect(state.reinits).toBe(1);
  expect((await probe(0)).out).toContain('waiting for the reinitialisation');
  expect(state.reinits).toBe(1);
  // Back on the leader's timeline: the record is dropped.
  state.me.timeline = 2;
  expect((await probe(0)).out).toContain('liveness: ok');
  expect(state.reinits).toBe(1);
});

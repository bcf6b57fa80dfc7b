/**
 * The twin's kubelet (tools/twin/kubelet.ts) against a real HTTP server whose
 * probe answers the test flips: Ready follows failureThreshold / successThreshold,
 * the startup probe gates the others, liveness failures and exits restart the
 * container with back-off. Timings are scaled down (periods of 0.2 s); the drills
 * check the same logic with the Deployment's own probes.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { localExecCommand, localPidCommand } from '../tools/runtime/twin/data-probes';
import { type Container, KubeletPod, type ProbeSpec, probeAttempt } from '../tools/runtime/twin/kubelet';

/** A server answering /ready, /live and /start with the status the test sets. */
let server: http.Server;
let port: number;
const status: Record<string, number> = {};
const hits: Record<string, number> = {};
beforeAll(async () => {
  server = http.createServer((req, res) => {
    const path = req.url ?? '/';
    hits[path] = (hits[path] ?? 0) + 1;
    res.writeHead(status[path] ?? 200).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});
afterAll(() => {
  server.closeAllConnections();
  return new Promise((r) => server.close(r));
});
beforeEach(() => {
  for (const k of Object.keys(status)) delete status[k];
  for (const k of Object.keys(hits)) delete hits[k];
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const get = (path: string, t: Partial<ProbeSpec> = {}): ProbeSpec => ({
  httpGet: { path, port: 'http' },
  periodSeconds: 0.2,
  timeoutSeconds: 0.5,
  ...t,
});

/** A pod whose "container" is a handle the test can crash; kills are recorded. */
function fakePod(probes: { startup?: ProbeSpec; readiness?: ProbeSpec; liveness?: ProbeSpec }) {
  const kills: number[] = [];
  let crash: () => void = () => undefined;
  const pod = new KubeletPod<Container>({
    name: 'pod-0',
    probes,
    terminationGracePeriodSeconds: 1,
    backOff: { initialMs: 400, maxMs: 1600, resetAfterMs: 60000 },
    attempt: (spec) => probeAttempt(spec, { port: () => ({ host: '127.0.0.1', port }) }),
    async start() {
      let exit!: () => void;
      const exited = new Promise<void>((r) => (exit = r));
      crash = exit;
      return {
        pid: 1000 + kills.length,
        exited,
        kill: async (grace: number) => {
          kills.push(grace);
          exit();
        },
      };
    },
  });
  return { pod, kills, crash: () => crash() };
}

test('Ready after successThreshold successes; out within failureThreshold x period (+- a period); back after successThreshold', async () => {
  // GIVEN readiness every 0.2 s, 3 failures to leave, 2 successes to return
  const { pod } = fakePod({ readiness: get('/ready', { failureThreshold: 3, successThreshold: 2 }) });
  await pod.run();
  await pod.waitReady(3000);
  const firstReady = pod.events.find((e) => e.type === 'ready')!;
  expect(firstReady.detail).toBe('2 readiness successes');

  // WHEN readiness starts failing
  status['/ready'] = 503;
  const failingAt = pod.now();
  await pod.waitUntil(() => !pod.ready, 3000, 'not Ready');
  const leftAfter = pod.now() - failingAt;
  // THEN it leaves within 3 x 0.2 s, give or take one period
  expect(leftAfter).toBeGreaterThanOrEqual(400);
  expect(leftAfter).toBeLessThanOrEqual(800 + 100);
  expect(pod.events.filter((e) => e.type === 'not-ready').pop()!.detail).toBe('3 readiness failures');

  // WHEN it answers again, THEN it is back after 2 successes (1-2 periods)
  delete status['/ready'];
  const okAt = pod.now();
  await pod.waitReady(3000);
  const backAfter = pod.now() - okAt;
  expect(backAfter).toBeGreaterThanOrEqual(200);
  expect(backAfter).toBeLessThanOrEqual(600 + 100);
  pod.detach();
});

test('readiness and liveness wait for the startup probe; startup failures restart the container', async () => {
  // GIVEN a startup probe that fails
  status['/start'] = 500;
  const { pod, kills } = fakePod({
    startup: get('/start', { failureThreshold: 3 }),
    readiness: get('/ready'),
    liveness: get('/live'),
  });
  await pod.run();
  await pod.waitUntil(() => kills.length === 1, 3000, 'killed');
  // THEN no readiness or liveness probe ran, and the kill used the pod's grace period
  expect(hits['/ready']).toBeUndefined();
  expect(hits['/live']).toBeUndefined();
  expect(kills).toEqual([1]);
  expect(pod.events.find((e) => e.type === 'killing')!.detail).toBe('startup probe failed 3 times; grace 1 s');
  // WHEN startup succeeds on the restarted container, THEN the others start
  delete status['/start'];
  await pod.waitReady(3000);
  expect(pod.restarts).toBe(1);
  await sleep(500);
  expect(hits['/live']).toBeGreaterThan(0);
  pod.detach();
});

test("liveness failures kill with the probe's grace; restarts back off 0, then initial, doubling", async () => {
  // GIVEN liveness that always fails (3 x 0.2 s), a probe-level grace of 7 s
  status['/live'] = 500;
  const { pod, kills } = fakePod({
    readiness: get('/ready'),
    liveness: get('/live', { failureThreshold: 3, terminationGracePeriodSeconds: 7 }),
  });
  await pod.run();
  await pod.waitUntil(() => pod.restarts >= 3, 8000, 'restarted 3 times');
  pod.detach();
  expect(kills.slice(0, 3)).toEqual([7, 7, 7]);
  // THEN the first restart is immediate, then 0.4 s, then 0.8 s (the kubelet's 10 s, 20 s ... scaled)
  expect(pod.events.filter((e) => e.type === 'back-off').map((e) => e.detail)).toEqual([
    'restarting in 0.4 s',
    'restarting in 0.8 s',
  ]);
  const exits = pod.events.filter((e) => e.type === 'exited').map((e) => e.at);
  const starts = pod.events.filter((e) => e.type === 'started').map((e) => e.at);
  // (Event times are whole milliseconds from another clock than the timer's: 399 ms and 799 ms
  // were seen for 400/800 ms back-offs, so 5 ms of rounding is allowed.)
  expect(starts[1] - exits[0]).toBeLessThan(100);
  expect(starts[2] - exits[1]).toBeGreaterThanOrEqual(395);
  expect(starts[3] - exits[2]).toBeGreaterThanOrEqual(795);
});

test('a container that exits is not Ready at once, and is restarted', async () => {
  const { pod, crash } = fakePod({ readiness: get('/ready', { periodSeconds: 5 }) });
  await pod.run();
  await pod.waitReady(3000);
  crash();
  await pod.waitUntil(() => pod.restarts === 1 && pod.ready, 3000, 'restarted');
  pod.detach();
  expect(pod.events.map((e) => `${e.type}: ${e.detail}`).slice(3, 6)).toEqual([
    'exited: pid 1000',
    'not-ready: container not running',
    'started: pid 1000 (restart 1)',
  ]);
});

test('a TCP probe fails when nothing listens, and an exec probe succeeds on exit 0', async () => {
  const closed = probeAttempt({ tcpSocket: { port: 1 } }, { port: () => ({ host: '127.0.0.1', port: 1 }) });
  expect(await closed(500)).toMatchObject({ ok: false });
  const open = probeAttempt({ tcpSocket: { port: 'http' } }, { port: () => ({ host: '127.0.0.1', port }) });
  expect(await open(500)).toEqual({ ok: true, detail: 'connected' });
  const exec = probeAttempt(
    { exec: { command: ['sh', '-c', 'exit 3'] } },
    { port: () => ({ host: '', port: 0 }), exec: (c) => ({ command: c }) },
  );
  expect(await exec(1000)).toEqual({ ok: false, detail: 'exit 3' });
});

test('fails when a probe has no handler', () => {
  expect(() => probeAttempt({ periodSeconds: 1 }, { port: () => ({ host: '', port: 0 }) })).toThrow(
    'probe has no httpGet, tcpSocket or exec handler',
  );
});

test('fails when an exec probe meets a container that runs none', () => {
  expect(() => probeAttempt({ exec: { command: ['pg_isready'] } }, { port: () => ({ host: '', port: 0 }) })).toThrow(
    'exec probe ["pg_isready"]: this container runs no exec probes',
  );
});

test("a data-tier exec probe runs on the host against the server's loopback address", () => {
  const at = { host: '127.9.0.1', port: 25432 };
  expect(localExecCommand(['pg_isready', '-q', '-h', '/var/run/postgresql', '-p', '5432', '-t', '10'], at)).toEqual([
    'pg_isready',
    '-q',
    '-h',
    '127.9.0.1',
    '-p',
    '25432',
    '-t',
    '10',
  ]);
  expect(
    localExecCommand(['sh', '-c', 'redis-cli -h 127.0.0.1 -p 6379 --no-auth-warning ping | grep -q PONG'], at),
  ).toEqual(['sh', '-c', 'redis-cli -h 127.9.0.1 -p 25432 --no-auth-warning ping | grep -q PONG']);
});

test("PgBouncer's liveness (`kill -0 1`, its pid 1) asks about the pod's process on the host, at each attempt", async () => {
  expect(localPidCommand(['sh', '-c', 'kill -0 1'], 4242)).toEqual(['sh', '-c', 'kill -0 4242']);
  // GIVEN a pid that changes between attempts (the process restarted): each attempt asks about the current one
  let pid: number | undefined = process.pid;
  const live = probeAttempt(
    { exec: { command: ['sh', '-c', 'kill -0 1'] } },
    { port: () => ({ host: '', port: 0 }), exec: (command) => ({ command: localPidCommand(command, pid) }) },
  );
  expect((await live(2000)).ok).toBe(true);
  // WHEN there is no process, THEN the probe fails as it would in a pod whose pid 1 is gone
  pid = undefined;
  expect(await live(2000)).toEqual({ ok: false, detail: 'exit 1' });
});

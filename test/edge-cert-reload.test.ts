/**
 * Certificate renewal without a restart, on real nginx with the shipped prod
 * nginx.conf and the shipped cert-reload script (from the edge ConfigMap, paths
 * moved to temp dirs as for nginx.conf). The script runs under Debian's busybox
 * with nothing but busybox's applets on PATH, as in the nginx image (Alpine's
 * busybox). The TLS Secret volume is written as the kubelet writes it: files
 * behind a `..data` symlink swapped atomically.
 */
import { type ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as http from 'http';
import * as http2 from 'http2';
import * as net from 'net';
import * as https from 'https';
import * as os from 'os';
import * as path from 'path';
import * as tls from 'tls';
import { CERT_RELOAD_HEARTBEAT, CERT_RELOAD_KEY, certReloadProbes } from '../constructs/edge/cert-reload';
import { DEFAULT_CERT_RELOAD_CHECK_SECONDS } from '../constructs/edge/edge-settings';
import { type Endpoint, type RunningNginx, startNginx, substitutePaths } from '../tools/runtime/nginx-runner';
import { writeSecretVolume } from '../tools/runtime/secret-volume';
import { type Backend, backend, request, selfSigned, sleep } from './helpers/edge-http';
import { find, objectsOf } from './helpers/objects';

jest.setTimeout(60000);

const edgeConfigMap = () => find(objectsOf('prod'), 'ConfigMap', 'edge-nginx-conf').data as Record<string, string>;
/** How long the shipped script may take from the swap to new connections on the new certificate. */
const CHECK_MS = DEFAULT_CERT_RELOAD_CHECK_SECONDS * 1000;
/** Margin for a loaded 2-core machine: nginx's reload and the probe's own 100 ms period fit well inside. */
const MARGIN_MS = 1500;

/** Debian's busybox (tools/install-servers.sh). */
const BUSYBOX = '/usr/bin/busybox';
let tmp: string;
let busyboxBin: string;
let a: Backend;
let certs: Record<'a' | 'b' | 'c' | 'd', { cert: string; key: string }>;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'fastnext-cert-reload-'));
  // Only busybox's applets on PATH: what the nginx image's shell has (no coreutils).
  busyboxBin = path.join(tmp, 'bin');
  fs.mkdirSync(busyboxBin);
  execFileSync(BUSYBOX, ['--install', '-s', busyboxBin]);
  certs = {
    a: selfSigned(tmp, 'cert-a'),
    b: selfSigned(tmp, 'cert-b'),
    c: selfSigned(tmp, 'cert-c'),
    d: selfSigned(tmp, 'cert-d'),
  };
  a = await backend('a');
});
afterAll(async () => {
  http.globalAgent.destroy();
  https.globalAgent.destroy();
  await a?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface Watcher {
  readonly log: () => string;
  stop(): Promise<number | null>;
}

/** Runs the shipped script against `nginx` (its paths moved as nginx.conf's were). */
function startWatcher(nginx: RunningNginx): Watcher {
  const script = path.join(nginx.dir, CERT_RELOAD_KEY);
  fs.writeFileSync(script, substitutePaths(edgeConfigMap()[CERT_RELOAD_KEY], nginx.dir));
  let out = '';
  const child: ChildProcess = spawn(BUSYBOX, ['sh', script], {
    env: { PATH: busyboxBin },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return {
    log: () => out,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode);
        child.once('exit', (code) => resolve(code));
        child.kill('SIGTERM');
      }),
  };
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** The CN of the certificate a new TLS connection (no session reuse) gets. */
function servedCn(ep: Endpoint, localAddress?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: ep.host, port: ep.port, localAddress });
    const s = tls.connect({ socket, servername: 'fastnext.example.com', rejectUnauthorized: false });
    s.once('secureConnect', () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.destroy();
      resolve(String(cn));
    });
    s.once('error', reject);
    socket.once('error', reject);
  });
}

describe('the cert-reload script on real nginx (prod conf, kubelet-style Secret volume)', () => {
  test('ShellCheck passes on the shipped script', () => {
    const script = path.join(tmp, CERT_RELOAD_KEY);
    fs.writeFileSync(script, edgeConfigMap()[CERT_RELOAD_KEY]);
    expect(execFileSync('shellcheck', ['--severity=style', script], { encoding: 'utf8' })).toBe('');
  });

  test('renewal under load: new connections get the new certificate within the bound, 0 failed requests', async () => {
    // GIVEN nginx serving cert A, the watcher running, and traffic over HTTP/1.1 keep-alive,
    // HTTP/2 and fresh TLS connections, plus one request of each protocol held in flight
    const nginx = await startNginx({ nginxConf: edgeConfigMap()['nginx.conf'], upstreams: [a], tls: certs.a });
    const watcher = startWatcher(nginx);
    try {
      await until('the watcher to start', () => watcher.log().includes('watching'), 5000);
      expect(await servedCn(nginx.https!)).toBe('cert-a');
      const load = startLoad(nginx.https!);
      await sleep(1500);
      const heldH1 = request(nginx.https!, '/hold', { tls: true, agent: false, localAddress: '127.0.61.1' });
      const heldH2 = load.h2Hold();
      await until('both held requests to reach the backend', () => a.holding() === 2, 5000);

      // WHEN the kubelet swaps the Secret's files to cert B
      const swappedAt = Date.now();
      writeSecretVolume(nginx.tlsDir, { 'tls.crt': certs.b.cert, 'tls.key': certs.b.key });
      let cn = '';
      while ((cn = await servedCn(nginx.https!, '127.0.61.2')) !== 'cert-b' && Date.now() - swappedAt < 10000) {
        await sleep(100);
      }
      const servedAfterMs = Date.now() - swappedAt;
      await sleep(500);
      a.release();
      const [h1, h2] = await Promise.all([heldH1, heldH2]);
      await sleep(1500);
      const r = await load.stop();
      console.log(
        `[drill] cert renewal under load: cert B on new connections ${servedAfterMs} ms after the swap ` +
          `(bound ${CHECK_MS + MARGIN_MS} ms); HTTP/1.1 keep-alive ${r.h1.ok} ok / ${r.h1.failed} failed ` +
          `(${r.h1.connections} connections for 3 clients; ${r.h1.retried} requests sent on a connection the old ` +
          `workers had just closed, retried as clients do), HTTP/2 ${r.h2.ok} ok / ` +
          `${r.h2.failed} failed (${r.h2.goaways} GOAWAY), new TLS connections ${r.fresh.ok} ok / ${r.fresh.failed} ` +
          `failed; held requests: HTTP/1.1 ${h1.status}, HTTP/2 ${h2}`,
      );

      // THEN new connections get cert B within the bound
      expect(cn).toBe('cert-b');
      expect(servedAfterMs).toBeLessThanOrEqual(CHECK_MS + MARGIN_MS);
      expect(watcher.log()).toMatch(/TLS files changed: nginx reloaded \(SIGHUP to \d+\)/);
      // AND no request failed: the held ones finished on the old workers, the rest were served
      expect([h1.status, h2]).toEqual([200, 200]);
      expect([r.h1.failed, r.h2.failed, r.fresh.failed]).toEqual([0, 0, 0]);
      expect(r.h1.ok).toBeGreaterThan(200);
      expect(r.h2.ok).toBeGreaterThan(50);
      expect(r.fresh.ok).toBeGreaterThan(10);
      // AND the keep-alive connections of both protocols were handed over gracefully: the old workers
      // closed each HTTP/1.1 connection after its response (each client opened a second one) and sent
      // the HTTP/2 client GOAWAY, its open streams completed (the held one above)
      expect(r.h1.connections).toBeGreaterThanOrEqual(6);
      expect(r.h2.goaways).toBeGreaterThanOrEqual(1);
    } finally {
      await watcher.stop();
      await nginx.stop();
    }
  });

  test('a certificate nginx refuses leaves the previous one serving; the next good one is taken', async () => {
    const nginx = await startNginx({ nginxConf: edgeConfigMap()['nginx.conf'], upstreams: [a], tls: certs.a });
    const watcher = startWatcher(nginx);
    try {
      await until('the watcher to start', () => watcher.log().includes('watching'), 5000);
      // WHEN the Secret holds a certificate with another certificate's key
      writeSecretVolume(nginx.tlsDir, { 'tls.crt': certs.b.cert, 'tls.key': certs.a.key });
      await until('the reload attempt', () => watcher.log().includes('reloaded'), CHECK_MS + MARGIN_MS);
      await sleep(300);
      // THEN nginx keeps the old configuration: cert A, requests served
      expect(await servedCn(nginx.https!)).toBe('cert-a');
      expect((await request(nginx.https!, '/api/v1/ping', { tls: true, agent: false })).status).toBe(200);
      expect(fs.readFileSync(nginx.logPath, 'utf8')).toMatch(/key values mismatch/);
      // WHEN a good pair follows THEN it is served
      writeSecretVolume(nginx.tlsDir, { 'tls.crt': certs.c.cert, 'tls.key': certs.c.key });
      await until('cert C', async () => (await servedCn(nginx.https!)) === 'cert-c', CHECK_MS + MARGIN_MS);
    } finally {
      await watcher.stop();
      await nginx.stop();
    }
  });

  test('files renewed before the watcher starts (after nginx read them) are reloaded at its start', async () => {
    const nginx = await startNginx({ nginxConf: edgeConfigMap()['nginx.conf'], upstreams: [a], tls: certs.a });
    try {
      // GIVEN a renewal while the sidecar was not yet running (mtime resolution: 1 s on some filesystems)
      await sleep(1100);
      writeSecretVolume(nginx.tlsDir, { 'tls.crt': certs.d.cert, 'tls.key': certs.d.key });
      expect(await servedCn(nginx.https!)).toBe('cert-a');
      // WHEN it starts THEN it reloads nginx at once
      const watcher = startWatcher(nginx);
      try {
        await until('cert D', async () => (await servedCn(nginx.https!)) === 'cert-d', CHECK_MS + MARGIN_MS);
      } finally {
        expect(await watcher.stop()).toBe(0);
      }
    } finally {
      await nginx.stop();
    }
  });

  test("the sidecar's probes pass while the loop turns (run as the pod runs them)", async () => {
    const nginx = await startNginx({ nginxConf: edgeConfigMap()['nginx.conf'], upstreams: [a], tls: certs.a });
    const watcher = startWatcher(nginx);
    try {
      await until('the watcher to start', () => watcher.log().includes('watching'), 5000);
      const probes = certReloadProbes({ checkSeconds: DEFAULT_CERT_RELOAD_CHECK_SECONDS });
      const run = (argv: string[]) =>
        execFileSync(
          path.join(busyboxBin, argv[0]),
          argv.slice(1).map((x) => substitutePaths(x, nginx.dir)),
          {
            env: { PATH: busyboxBin },
          },
        );
      expect(() => run(probes.readiness)).not.toThrow();
      expect(() => run(probes.liveness)).not.toThrow();
      // A loop that stopped turning fails liveness once its heartbeat is three turns old.
      await watcher.stop();
      const old = new Date(Date.now() - (3 * DEFAULT_CERT_RELOAD_CHECK_SECONDS + 11) * 1000);
      fs.utimesSync(substitutePaths(CERT_RELOAD_HEARTBEAT, nginx.dir), old, old);
      expect(() => run(probes.liveness)).toThrow();
    } finally {
      await watcher.stop();
      await nginx.stop();
    }
  });
});

interface ProtocolCount {
  ok: number;
  failed: number;
}

/**
 * Traffic during the swap, each stream from its own source address (the edge limits
 * 100 r/s per client): three HTTP/1.1 keep-alive clients, one HTTP/2 client and a
 * prober opening a new TLS connection every 100 ms. The HTTP/1.1 clients retry a
 * GET once when the server closed the idle keep-alive connection it was sent on
 * (Node's documented `reusedSocket` rule; browsers do the same): that is how nginx's
 * old workers hand their idle connections back. Anything else counts as failed.
 */
function startLoad(ep: Endpoint) {
  let stopped = false;
  let sent = 0;
  const h1 = { ok: 0, failed: 0, retried: 0, connections: 0 };
  const h2 = { ok: 0, failed: 0, goaways: 0 };
  const fresh: ProtocolCount = { ok: 0, failed: 0 };
  const origin = `https://${ep.host}:${ep.port}`;

  const h1Once = (agent: https.Agent, localAddress: string) =>
    new Promise<{ status: number; closedIdle: boolean }>((resolve) => {
      const req = https.request(
        { host: ep.host, port: ep.port, path: '/api/v1/ping', agent, localAddress, rejectUnauthorized: false },
        (res) => {
          if (!req.reusedSocket) h1.connections++;
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, closedIdle: false }));
          res.on('error', () => resolve({ status: 0, closedIdle: false }));
        },
      );
      req.on('error', (e: NodeJS.ErrnoException) =>
        resolve({ status: 0, closedIdle: req.reusedSocket && ['ECONNRESET', 'EPIPE'].includes(e.code ?? '') }),
      );
      req.end();
    });
  const h1Worker = async (n: number) => {
    const localAddress = `127.0.60.${n}`;
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, maxCachedSessions: 0 });
    while (!stopped) {
      sent++;
      let r = await h1Once(agent, localAddress);
      if (r.status === 0 && r.closedIdle) {
        h1.retried++;
        r = await h1Once(agent, localAddress);
      }
      if (r.status === 200) h1.ok++;
      else h1.failed++;
      await sleep(20);
    }
    agent.destroy();
  };

  let session: http2.ClientHttp2Session | undefined;
  const h2Session = () => {
    if (!session || session.closed || session.destroyed) {
      const s = http2.connect(origin, {
        rejectUnauthorized: false,
        localAddress: '127.0.60.10',
      } as http2.SecureClientSessionOptions);
      s.on('goaway', () => {
        h2.goaways++;
        if (session === s) session = undefined;
      });
      s.on('error', () => undefined);
      session = s;
    }
    return session;
  };
  const h2Once = (urlPath: string) =>
    new Promise<number>((resolve) => {
      let stream: http2.ClientHttp2Stream;
      try {
        stream = h2Session().request({ ':path': urlPath });
      } catch {
        // The session got GOAWAY between the check and the call: nothing was sent.
        session = undefined;
        resolve(-1);
        return;
      }
      let status = 0;
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.on('data', () => undefined);
      stream.on('end', () => resolve(status));
      // REFUSED_STREAM (a stream above GOAWAY's last id) was never processed: safe to send again.
      stream.on('error', (e: NodeJS.ErrnoException) => resolve(/REFUSED_STREAM/.test(e.message) ? -1 : 0));
      stream.end();
    });
  const h2Worker = async () => {
    while (!stopped) {
      sent++;
      let status = await h2Once('/api/v1/ping');
      if (status === -1) status = await h2Once('/api/v1/ping');
      if (status === 200) h2.ok++;
      else h2.failed++;
      await sleep(20);
    }
  };
  const prober = async () => {
    while (!stopped) {
      try {
        await servedCn(ep, '127.0.60.20');
        fresh.ok++;
      } catch {
        fresh.failed++;
      }
      await sleep(100);
    }
  };
  const running = Promise.all([h1Worker(1), h1Worker(2), h1Worker(3), h2Worker(), prober()]);
  return {
    sent: () => sent,
    /** One HTTP/2 request held by the backend until it releases it; resolves to its status. */
    h2Hold: () => h2Once('/hold'),
    async stop() {
      stopped = true;
      await running;
      session?.close();
      return { h1, h2, fresh };
    },
  };
}

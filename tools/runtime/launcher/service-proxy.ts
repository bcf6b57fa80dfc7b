/**
 * The twin's stand-in for a Kubernetes ClusterIP Service: a TCP proxy on a loopback
 * address that sends each new connection to the next endpoint currently "ready", as
 * kube-proxy does with the endpoints the endpoints controller publishes.
 *
 * Readiness is re-checked every `pollMs` by the caller's predicate: for the primary
 * Service, the member whose Patroni answers 200 on `GET /primary` (Patroni sets the role
 * label the Service selects in the same HA loop); for the read-only Service, `GET /replica`;
 * for PgBouncer, an open TCP port (its readiness probe). An answer "not ready" (false, or a
 * refused connection) takes an endpoint out at once; a check that gets no answer (a timeout:
 * a loaded machine) takes it out only after `failureThreshold` in a row, as a readiness
 * probe's failureThreshold does, so one slow answer does not empty a Service. Established
 * connections stay where they are, as with kube-proxy; they break when their endpoint goes.
 *
 * The data plane (accepting, connecting, copying bytes) runs in a worker thread with an event
 * loop of its own; only the readiness polls run on the caller's thread. kube-proxy forwards in
 * the kernel, never stalled by whatever else runs on the node: a stand-in sharing the test's
 * thread stopped forwarding whenever that thread was busy (a synchronous `nginx -t`, spawning a
 * pod, a GC pause), and every API pod saw its database go silent for as long, which the service
 * rightly reads as a primary outage.
 */
import { request } from 'node:http';
import { Worker } from 'node:worker_threads';
import { type Endpoint, freePort } from './processes';

/**
 * The worker: listens on the Service address, sends each new connection to the next ready
 * endpoint (round robin), and takes the ready set from `{ ready }` messages. Plain JavaScript,
 * evaluated as is (no TypeScript transform runs in a worker).
 */
const DATA_PLANE = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
let ready = [];
let next = 0;
const sockets = new Set();
const server = net.createServer((client) => {
  const pick = ready.length ? ready[next++ % ready.length] : undefined;
  // No ready endpoint: kube-proxy rejects the connection.
  if (!pick) return void client.destroy();
  const upstream = net.connect(pick.port, pick.host);
  sockets.add(client).add(upstream);
  const done = () => {
    client.destroy();
    upstream.destroy();
    sockets.delete(client);
    sockets.delete(upstream);
  };
  client.on('error', done).on('close', done);
  upstream.on('error', done).on('close', done);
  client.pipe(upstream).pipe(client);
});
server.on('error', (e) => parentPort.postMessage({ error: e.message }));
parentPort.on('message', (m) => {
  if (m.ready) ready = m.ready;
  if (m.stop) {
    for (const s of sockets) s.destroy();
    server.close(() => parentPort.postMessage({ stopped: true }));
  }
});
server.listen({ host: workerData.host, port: workerData.port }, () => parentPort.postMessage({ listening: true }));
`;

/** GET `path` on `ep`; status and body. */
export function httpGet(ep: Endpoint, path: string, timeoutMs = 1000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: ep.host, port: ep.port, path, timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export interface ProxyEndpoint<T extends Endpoint = Endpoint> {
  readonly target: T;
  readonly name: string;
}

export class ServiceProxy<T extends Endpoint = Endpoint> {
  private ready: ProxyEndpoint<T>[] = [];
  /** Checks in a row that got no answer, by endpoint name. */
  private readonly unanswered = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  /** When the set of ready endpoints changed (ms since epoch) and what it became. */
  readonly changes: { at: number; ready: string[] }[] = [];

  private constructor(
    readonly name: string,
    private readonly worker: Worker,
    readonly endpoint: Endpoint,
    private readonly endpoints: () => readonly ProxyEndpoint<T>[],
    private readonly isReady: (e: ProxyEndpoint<T>) => Promise<boolean>,
    private readonly failureThreshold: number,
  ) {}

  /** Listens on a free port of `host`; resolves after the first readiness poll. */
  static async start<T extends Endpoint>(
    name: string,
    host: string,
    endpoints: () => readonly ProxyEndpoint<T>[],
    isReady: (e: ProxyEndpoint<T>) => Promise<boolean>,
    pollMs = 200,
    failureThreshold = 3,
  ): Promise<ServiceProxy<T>> {
    const port = await freePort(host);
    const worker = new Worker(DATA_PLANE, { eval: true, workerData: { host, port } });
    // The worker never keeps the process alive on its own (stop() ends it; so does process exit).
    worker.unref();
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: { listening?: boolean; error?: string }) => {
        if (m.listening) resolve();
        if (m.error) reject(new Error(`Service stand-in ${name} on ${host}:${port}: ${m.error}`));
      };
      worker.on('message', onMessage).once('error', reject);
    });
    // Every socket error is handled inside; a crash of the worker itself shows in the next connection.
    worker.on('error', () => undefined);
    const proxy = new ServiceProxy(name, worker, { host, port }, endpoints, isReady, failureThreshold);
    await proxy.poll();
    const tick = () => {
      void proxy.poll().finally(() => {
        if (proxy.timer) proxy.timer = setTimeout(tick, pollMs).unref();
      });
    };
    proxy.timer = setTimeout(tick, pollMs).unref();
    return proxy;
  }

  /** The endpoints in rotation now. */
  get current(): readonly ProxyEndpoint<T>[] {
    return this.ready;
  }

  private async poll(): Promise<void> {
    const all = this.endpoints();
    const was = new Set(this.ready.map((e) => e.name));
    const ok = await Promise.all(
      all.map((e) =>
        this.isReady(e).then(
          (yes) => {
            this.unanswered.delete(e.name);
            return yes;
          },
          (err: NodeJS.ErrnoException) => {
            if (err.code === 'ECONNREFUSED') return false;
            const n = (this.unanswered.get(e.name) ?? 0) + 1;
            this.unanswered.set(e.name, n);
            return was.has(e.name) && n < this.failureThreshold;
          },
        ),
      ),
    );
    const ready = all.filter((_, i) => ok[i]);
    const names = ready.map((e) => e.name);
    if (names.join() !== this.ready.map((e) => e.name).join()) this.changes.push({ at: Date.now(), ready: names });
    const key = (eps: readonly ProxyEndpoint<T>[]) => eps.map((e) => `${e.target.host}:${e.target.port}`).join();
    if (key(ready) !== key(this.ready)) {
      this.worker.postMessage({ ready: ready.map((e) => ({ host: e.target.host, port: e.target.port })) });
    }
    this.ready = ready;
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      this.worker.on('message', (m: { stopped?: boolean }) => {
        if (m.stopped) {
          clearTimeout(timer);
          resolve();
        }
      });
      this.worker.postMessage({ stop: true });
    });
    await this.worker.terminate();
  }
}

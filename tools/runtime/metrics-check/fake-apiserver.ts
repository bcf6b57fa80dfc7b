/**
 * The least a kube-apiserver must answer for Prometheus' kubernetes_sd: LIST of
 * pods, endpoints and services in one namespace (from given objects) and WATCH
 * requests that stay open with no events. Every request is recorded, so a test
 * can compare what discovery really asks for with what the RBAC Role grants.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ApiRequest {
  readonly method: string;
  readonly path: string;
  /** `list` or `watch`, as RBAC names the verb. */
  readonly verb: 'list' | 'watch' | 'get';
  readonly namespace?: string;
  readonly resource?: string;
}

const LIST_KIND: Record<string, string> = { pods: 'PodList', endpoints: 'EndpointsList', services: 'ServiceList' };
const NAMESPACED = /^\/api\/v1\/namespaces\/([^/]+)\/([^/]+)$/;
const CLUSTER_WIDE = /^\/api\/v1\/([^/]+)$/;

export class FakeApiServer {
  readonly requests: ApiRequest[] = [];
  private readonly server: Server;
  private readonly open = new Set<ServerResponse>();

  /** `objects` by resource (pods, endpoints, services); all live in `namespace`. */
  constructor(
    private readonly namespace: string,
    private readonly objects: Record<string, unknown[]>,
  ) {
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const res of this.open) res.end();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const ns = NAMESPACED.exec(url.pathname);
    const wide = ns ? null : CLUSTER_WIDE.exec(url.pathname);
    const resource = ns?.[2] ?? wide?.[1];
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    this.requests.push({
      method: req.method ?? '',
      path: url.pathname,
      verb: watch ? 'watch' : resource ? 'list' : 'get',
      namespace: ns?.[1],
      resource,
    });
    // Only the namespace's own lists exist here: anything cluster-wide is what a Role would forbid.
    if (req.method !== 'GET' || !ns || ns[1] !== this.namespace || !resource || !(resource in LIST_KIND)) {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Forbidden', code: 403 }));
      return;
    }
    if (watch) {
      // An idle watch: headers now, events never; closed on shutdown.
      res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      res.flushHeaders();
      this.open.add(res);
      res.on('close', () => this.open.delete(res));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        kind: LIST_KIND[resource],
        apiVersion: 'v1',
        metadata: { resourceVersion: '1' },
        items: this.objects[resource] ?? [],
      }),
    );
  }
}

/**
 * The big fuzz run of issue 14: requests generated from the OpenAPI document
 * (service/test/helpers/fuzz.ts, the same generator as the CI fuzz tests) for every
 * operation, sent over HTTP both direct to a pod (the app listening, on the launcher's
 * PostgreSQL primary + replica and six-node Redis Cluster) and through the edge (the
 * shipped dev nginx.conf on real nginx in front of that pod). Counts per route: requests,
 * 5xx, answers with a problem (error shape, missing field, echoed input), and at the edge
 * the 429s of its rate limit (paced under it, so there should be few).
 *
 * Run: node tools/run.js service/bench/fuzz.ts [--per-route 2000] [--edge-rate 90] [--seed 14] [--only <route substring>]
 */
import fc from 'fast-check';
import * as http from 'http';
import { synthObjects } from '../../stacks/synth';
import { loadEnvironment } from '../../stacks/environments';
import { startNginx } from '../../tools/runtime/nginx-runner';
import {
  type FuzzRequest,
  type FuzzResponse,
  isHealthBody,
  problemsOf,
  requestsFor,
  routeName,
  routesOf,
} from '../test/helpers/fuzz';
import { startDataTier, TOKEN } from '../test/helpers/servers';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

function send(port: number, req: FuzzRequest): Promise<FuzzResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...req.headers };
    if (req.payload !== undefined) headers['content-length'] = String(Buffer.byteLength(req.payload));
    const r = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body }));
    });
    r.on('error', reject);
    r.end(req.payload);
  });
}

interface Tally {
  requests: number;
  fiveXx: number;
  problems: number;
  limited: number;
  transportErrors: number;
  examples: string[];
}

/** Sends `requests` with `concurrency` workers, at most `rate` per second (0 = unpaced). */
async function run(
  port: number,
  route: ReturnType<typeof routesOf>[number],
  requests: FuzzRequest[],
  concurrency: number,
  rate: number,
): Promise<Tally> {
  const t: Tally = { requests: 0, fiveXx: 0, problems: 0, limited: 0, transportErrors: 0, examples: [] };
  const start = Date.now();
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= requests.length) return;
      if (rate > 0) {
        const due = start + (i * 1000) / rate;
        if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      }
      const req = requests[i];
      t.requests++;
      let res: FuzzResponse;
      try {
        res = await send(port, req);
      } catch (err) {
        // nginx may close a connection whose body it refused (413) before the client finished sending.
        t.transportErrors++;
        if (t.examples.length < 3) t.examples.push(`${req.method} ${req.url.slice(0, 80)}: ${(err as Error).message}`);
        continue;
      }
      if (res.statusCode === 429) t.limited++;
      const health = (body: unknown) => isHealthBody(route, body);
      if (res.statusCode >= 500 && !health(JSON.parse(res.body || 'null'))) t.fiveXx++;
      const problems = problemsOf(req, res, health);
      if (problems.length) {
        t.problems++;
        if (t.examples.length < 3) t.examples.push(`${req.method} ${req.url.slice(0, 80)}: ${problems.join('; ')}`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return t;
}

async function main(): Promise<void> {
  const perRoute = arg('per-route', 2000);
  const edgeRate = arg('edge-rate', 90);
  const seed = arg('seed', 14);
  const tier = await startDataTier({ replicas: 1 });
  try {
    await tier.migrate();
    const app = await tier.app();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const podPort = (app.server.address() as { port: number }).port;
    for (let i = 1; i <= 20; i++) {
      await app.inject({
        method: 'POST',
        url: '/api/v1/users',
        payload: { email: `fuzz${i}@example.com`, username: `fuzz_${i}` },
      });
    }
    const conf = synthObjects(loadEnvironment('dev')).find(
      (o) => o.kind === 'ConfigMap' && o.metadata.name === 'edge-nginx-conf',
    ) as unknown as { data: Record<string, string> };
    const nginx = await startNginx({
      nginxConf: conf.data['nginx.conf'],
      upstreams: [{ host: '127.0.0.1', port: podPort }],
    });
    try {
      const rows: string[] = [];
      const total = { pod: [0, 0, 0, 0], edge: [0, 0, 0, 0, 0] };
      const began = Date.now();
      const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : '';
      for (const route of routesOf().filter((r) => routeName(r).includes(only))) {
        const requests = fc.sample(requestsFor(route, TOKEN), { numRuns: perRoute, seed });
        const pod = await run(podPort, route, requests, 4, 0);
        const edge = await run(nginx.http.port, route, requests, 4, edgeRate);
        total.pod = [
          total.pod[0] + pod.requests,
          total.pod[1] + pod.fiveXx,
          total.pod[2] + pod.problems,
          total.pod[3] + pod.transportErrors,
        ];
        total.edge = [
          total.edge[0] + edge.requests,
          total.edge[1] + edge.fiveXx,
          total.edge[2] + edge.problems,
          total.edge[3] + edge.limited,
          total.edge[4] + edge.transportErrors,
        ];
        const row = `| ${routeName(route)} | ${pod.requests} | ${pod.fiveXx} | ${pod.problems} | ${edge.requests} | ${edge.fiveXx} | ${edge.problems} | ${edge.limited} | ${pod.transportErrors + edge.transportErrors} |`;
        rows.push(row);
        console.log(row, [...pod.examples, ...edge.examples].join(' || '));
      }
      console.log(
        `\nfuzz: seed ${seed}, ${perRoute} generated requests per route, ${routesOf().length} routes, ${Math.round((Date.now() - began) / 1000)} s`,
      );
      console.log(
        '| route | pod requests | pod 5xx | pod problems | edge requests | edge 5xx | edge problems | edge 429 | transport errors |',
      );
      console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
      for (const r of rows) console.log(r);
      console.log(
        `| total | ${total.pod[0]} | ${total.pod[1]} | ${total.pod[2]} | ${total.edge[0]} | ${total.edge[1]} | ${total.edge[2]} | ${total.edge[3]} | ${total.pod[3] + total.edge[4]} |`,
      );
    } finally {
      agent.destroy();
      await nginx.stop();
    }
  } finally {
    await tier.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

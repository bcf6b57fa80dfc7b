/**
 * The shipped prometheus.yml's kubernetes_sd on a real Prometheus 2.53.3 (Debian 13's
 * build, the version of the shipped image; Debian 12's 2.42 has no kubernetes_sd),
 * against a fake API server that serves the environment's pods (built from the
 * synthesized pod templates). Only the API server address and the pods' IP/port
 * are substituted. Proves: the relabeling keeps exactly the annotated pods on
 * their annotated port, and discovery asks only for what the RBAC Role grants
 * (list/watch of pods, endpoints, services in its own namespace).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DISCOVERY_RULE, KUBELET_RULES } from '../constructs/monitoring';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { FakeApiServer } from '../tools/runtime/metrics-check/fake-apiserver';
import {
  SHIPPED_VERSION_PROMETHEUS,
  startPrometheus,
  stopAll,
  tempDir,
  waitFor,
} from '../tools/runtime/metrics-check/servers';
import { type Obj, find, podTemplates } from './helpers/objects';
import { writeShippedPrometheusFiles } from './helpers/prometheus-files';

jest.setTimeout(90000);

const config = loadEnvironment('prod');
const objects = synthObjects(config) as Obj[];
let metrics: Server;
let metricsPort = 0;
let api: FakeApiServer;
let prometheus = '';

interface Pod {
  metadata: { name: string; labels: Record<string, string>; annotations: Record<string, string>; [f: string]: unknown };
  status: { phase: string; [f: string]: unknown };
  [field: string]: unknown;
}

/** One pod per workload template (a completed one for Jobs), on 127.0.0.1; annotated ports point at the stub. */
function podsOf(): Pod[] {
  return podTemplates(objects)
    .filter((t) => ['Deployment', 'StatefulSet', 'Job'].includes(t.owner.kind))
    .map((t, i): Pod => {
      const annotations = { ...t.annotations };
      if (annotations['prometheus.io/port']) annotations['prometheus.io/port'] = String(metricsPort);
      return {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: `${t.owner.metadata.name}-0`,
          namespace: config.namespace,
          uid: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`,
          resourceVersion: '1',
          labels: t.labels,
          annotations,
        },
        spec: {
          nodeName: 'node-1',
          containers: t.spec.containers.map((c: Obj) => ({ name: c.name, image: c.image, ports: c.ports })),
        },
        status: {
          phase: t.owner.kind === 'Job' ? 'Succeeded' : 'Running',
          podIP: '127.0.0.1',
          hostIP: '127.0.0.1',
          conditions: [{ type: 'Ready', status: 'True' }],
        },
      };
    });
}

beforeAll(async () => {
  metrics = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('stub_up 1\n'));
  await new Promise<void>((resolve) => metrics.listen(0, '127.0.0.1', resolve));
  metricsPort = (metrics.address() as AddressInfo).port;
  api = new FakeApiServer(config.namespace, { pods: podsOf(), endpoints: [], services: [] });
  const apiUrl = await api.listen();

  // GIVEN the shipped files (the ConfigMap's bytes), with only the API server address added to each
  // kubernetes_sd_configs entry, and the kubelet job's ServiceAccount files pointed at stand-ins.
  const files = find(objects, 'ConfigMap', 'prometheus-config').data as Record<string, string>;
  const dir = tempDir('prom-discovery-');
  prometheus = await startPrometheus(writeShippedPrometheusFiles(files, dir, apiUrl), SHIPPED_VERSION_PROMETHEUS);
});

afterAll(async () => {
  stopAll();
  await api?.close();
  await new Promise((resolve) => metrics?.close(resolve));
});

interface Targets {
  activeTargets: { labels: Record<string, string>; scrapeUrl: string }[];
  droppedTargets: { discoveredLabels: Record<string, string> }[];
}

async function targets(): Promise<Targets> {
  return ((await (await fetch(`${prometheus}/api/v1/targets`)).json()) as { data: Targets }).data;
}

test('Prometheus discovers exactly the annotated pods, on their annotated port and path, labelled app/pod/namespace', async () => {
  const annotated = podsOf().filter(
    (p) => p.metadata.annotations['prometheus.io/scrape'] === 'true' && p.status.phase === 'Running',
  );
  expect(annotated.map((p) => p.metadata.labels['app.kubernetes.io/name']).sort()).toEqual(
    expect.arrayContaining(['api', 'edge', 'postgres', 'redis']),
  );
  await waitFor(
    'discovered targets',
    async () => {
      const t = await targets();
      return t.activeTargets.filter((x) => x.labels.job === 'kubernetes-pods').length >= annotated.length;
    },
    60000,
  );
  const active = (await targets()).activeTargets.filter((x) => x.labels.job === 'kubernetes-pods');
  expect(active.map((x) => [x.labels.pod, x.labels.app, x.labels.namespace, x.scrapeUrl]).sort()).toEqual(
    annotated
      .map((p) => [
        p.metadata.name,
        p.metadata.labels['app.kubernetes.io/name'],
        config.namespace,
        `http://127.0.0.1:${metricsPort}${p.metadata.annotations['prometheus.io/path']}`,
      ])
      .sort(),
  );
});

test('pods without annotations and completed Job pods are dropped', async () => {
  const dropped = new Set((await targets()).droppedTargets.map((t) => t.discoveredLabels.__meta_kubernetes_pod_name));
  const expected = podsOf().filter(
    (p) => p.metadata.annotations['prometheus.io/scrape'] !== 'true' || p.status.phase !== 'Running',
  );
  expect(expected.length).toBeGreaterThan(0);
  for (const p of expected) expect([p.metadata.name, dropped.has(p.metadata.name)]).toEqual([p.metadata.name, true]);
});

test('kube-state-metrics is scraped in its own job, on its metrics port, without the pod labels of the generic job', async () => {
  await waitFor('kube-state-metrics target', async () =>
    (await targets()).activeTargets.some((x) => x.labels.job === 'kube-state-metrics'),
  );
  const ksm = (await targets()).activeTargets.filter((x) => x.labels.job === 'kube-state-metrics');
  const port = find(objects, 'Deployment', 'kube-state-metrics').spec.template.spec.containers[0].ports[0]
    .containerPort;
  expect(ksm.map((x) => [x.scrapeUrl, Object.keys(x.labels).sort()])).toEqual([
    [`http://127.0.0.1:${port}/metrics`, ['instance', 'job']],
  ]);
});

test('discovery asks only for what RBAC grants: the Role (pods, endpoints, services in its namespace) and the kubelet ClusterRole (nodes)', () => {
  expect(api.requests.length).toBeGreaterThan(0);
  const asked = [
    ...new Set(api.requests.map((r) => `${r.method} ${r.namespace ?? '(cluster)'} ${r.resource} ${r.verb}`)),
  ];
  const granted = [
    ...DISCOVERY_RULE.resources.flatMap((res) =>
      DISCOVERY_RULE.verbs.map((verb) => `GET ${config.namespace} ${res} ${verb}`),
    ),
    ...KUBELET_RULES.filter((r) => r.resources.includes('nodes')).flatMap((r) =>
      r.verbs.map((verb) => `GET (cluster) nodes ${verb}`),
    ),
  ];
  expect(asked).toEqual(expect.arrayContaining(['GET (cluster) nodes list']));
  expect(granted).toEqual(expect.arrayContaining(asked));
  // And the Role is not wider than discovery needs: every resource it names is listed and watched.
  for (const res of DISCOVERY_RULE.resources) {
    expect(asked).toEqual(
      expect.arrayContaining([`GET ${config.namespace} ${res} list`, `GET ${config.namespace} ${res} watch`]),
    );
  }
});

/**
 * A Mermaid diagram of the topology, generated from the synthesized objects
 * (workloads, the Services in front of them, and the traffic the
 * NetworkPolicies allow), so the README's picture cannot drift from the model.
 *
 *   node tools/run.js tools/manifests/topology-diagram.ts [env]   (prints the diagram)
 */
import { loadEnvironment } from '../../stacks/environments';
import { type KubeObject, synthObjects } from '../../stacks/synth';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Obj = KubeObject & Record<string, any>;

const NAME = 'app.kubernetes.io/name';

function templateOf(o: Obj): any {
  if (o.kind === 'CronJob') return o.spec.jobTemplate.spec.template;
  if (['Deployment', 'StatefulSet', 'Job', 'DaemonSet'].includes(o.kind)) return o.spec.template;
  return undefined;
}

function replicasOf(o: Obj, objects: Obj[]): string {
  const hpa = objects.find(
    (h) => h.kind === 'HorizontalPodAutoscaler' && h.spec.scaleTargetRef.name === o.metadata.name,
  );
  if (hpa) return `${hpa.spec.minReplicas}–${hpa.spec.maxReplicas} pods (HPA)`;
  if (o.kind === 'CronJob') return `CronJob ${o.spec.schedule}`;
  if (o.kind === 'Job') return 'Job';
  return `${o.spec.replicas ?? 1} pod${(o.spec.replicas ?? 1) === 1 ? '' : 's'}`;
}

/** Renders the Mermaid `flowchart` of one environment's objects. */
export function renderTopology(objects: readonly KubeObject[]): string {
  const objs = objects as Obj[];
  const workloads = objs.filter((o) => templateOf(o) && !['Job'].includes(o.kind));
  const components = new Map<string, Obj>();
  for (const w of workloads) {
    const c = templateOf(w).metadata?.labels?.[NAME] ?? w.metadata.name;
    if (!components.has(c)) components.set(c, w);
  }
  const id = (c: string) => c.replace(/[^a-zA-Z0-9]/g, '_');
  const lines = ['flowchart LR', '  client([clients])'];
  for (const [c, w] of [...components].sort(([a], [b]) => a.localeCompare(b))) {
    const images = templateOf(w).spec.containers.map((x: any) => x.image.split('/').pop().split(':')[0]);
    lines.push(`  ${id(c)}["${c}<br/>${w.kind} · ${replicasOf(w, objs)}<br/>${[...new Set(images)].join(' + ')}"]`);
  }
  const edges = new Set<string>();
  for (const np of objs.filter((o) => o.kind === 'NetworkPolicy')) {
    const target = np.spec.podSelector?.matchLabels?.[NAME];
    if (!target || !components.has(target)) continue;
    for (const rule of np.spec.ingress ?? []) {
      const ports = (rule.ports ?? []).map((p: any) => p.port).join(',');
      if (!rule.from) {
        const lb = objs.find(
          (s) => s.kind === 'Service' && s.spec.selector?.[NAME] === target && s.spec.type !== 'ClusterIP',
        );
        edges.add(`  client -->|${ports}${lb ? ` via ${lb.spec.type}` : ''}| ${id(target)}`);
        continue;
      }
      for (const peer of rule.from) {
        const source = peer.podSelector?.matchLabels?.[NAME];
        if (!source || !components.has(source) || source === target) continue;
        // Scrapes are dotted so the request path stands out.
        const arrow = source === 'prometheus' ? '-.->' : '-->';
        edges.add(`  ${id(source)} ${arrow}|${ports}| ${id(target)}`);
      }
    }
  }
  lines.push(...[...edges].sort());
  return lines.join('\n');
}

/** The environment table of the README, from the resolved configs. */
export function renderEnvironmentTable(names: readonly string[]): string {
  const rows = names.map((n) => {
    const c = loadEnvironment(n);
    const objects = synthObjects(c);
    const a = c.api.autoscaling;
    return [
      `\`${n}\``,
      `\`${c.namespace}\``,
      `\`${c.cluster.profile}\`${c.storageClass ? `, ${c.storageClass}` : ''}`,
      `${a.minReplicas}–${a.maxReplicas} @ CPU ${a.cpuTargetPercent} % / mem ${a.memoryTargetPercent} %`,
      `${c.edge.autoscaling.minReplicas}–${c.edge.autoscaling.maxReplicas}, ${c.edge.serviceType}${c.edge.tls ? ', TLS' : ''}, ${c.edge.rateLimit.requestsPerSecond} r/s + ${c.edge.rateLimit.burst}`,
      `1 + ${c.postgres.replicas} (${c.postgres.synchronousReplicas} sync), ${c.postgres.storage.size}`,
      `${c.redis.masters} × (1 + ${c.redis.replicasPerMaster}), ${c.redis.maxmemory}`,
      String(objects.length),
    ];
  });
  return [
    '| env | namespace | cluster profile, StorageClass | API pods | edge | PostgreSQL | Redis Cluster | objects |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

export function main(argv: string[]): number {
  console.log(renderTopology(synthObjects(loadEnvironment(argv[0] ?? 'prod'))));
  return 0;
}

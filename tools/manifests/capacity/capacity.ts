/**
 * What an environment costs: CPU and memory requested and limited with every
 * autoscaled workload at its HPA minimum and at its maximum, and the persistent
 * storage claimed. Pure: objects in, numbers out (cores and bytes).
 *
 * A pod's effective request follows the scheduler: the sum of its containers
 * (and restartable init "sidecars"), or the largest ordinary init container if
 * that is bigger. Jobs and CronJobs run briefly and are left out of the totals.
 */
import { parseQuantity } from '../../../stacks/config';
import { type Container, type KubeObject, specOf } from '../../k8s/objects';
import { PolicyContext } from '../policy/types';

export interface Resources {
  cpuRequest: number;
  cpuLimit: number;
  memoryRequest: number;
  memoryLimit: number;
}

export interface WorkloadCapacity {
  kind: string;
  name: string;
  minReplicas: number;
  maxReplicas: number;
  autoscaled: boolean;
  perPod: Resources;
  /** Bytes claimed per pod through volumeClaimTemplates. */
  storagePerPod: number;
}

export interface Totals extends Resources {
  pods: number;
  /** Bytes of PersistentVolumeClaims (templates × replicas + standalone claims). */
  storage: number;
}

export interface CapacitySummary {
  workloads: WorkloadCapacity[];
  atMin: Totals;
  atMax: Totals;
  /** Jobs and CronJobs, not counted in the totals. */
  jobs: string[];
}

const ZERO: Resources = { cpuRequest: 0, cpuLimit: 0, memoryRequest: 0, memoryLimit: 0 };
const FIELDS = Object.keys(ZERO) as (keyof Resources)[];

function quantityOf(v: string | number | undefined): number {
  if (v === undefined) return 0;
  const n = typeof v === 'number' ? v : parseQuantity(v);
  return Number.isFinite(n) ? n : 0;
}

function containerResources(c: Container): Resources {
  const r = c.resources ?? {};
  return {
    cpuRequest: quantityOf(r.requests?.cpu),
    cpuLimit: quantityOf(r.limits?.cpu),
    memoryRequest: quantityOf(r.requests?.memory),
    memoryLimit: quantityOf(r.limits?.memory),
  };
}

const add = (a: Resources, b: Resources): Resources =>
  Object.fromEntries(FIELDS.map((f) => [f, a[f] + b[f]])) as unknown as Resources;
const max = (a: Resources, b: Resources): Resources =>
  Object.fromEntries(FIELDS.map((f) => [f, Math.max(a[f], b[f])])) as unknown as Resources;
const times = (a: Resources, n: number): Resources =>
  Object.fromEntries(FIELDS.map((f) => [f, a[f] * n])) as unknown as Resources;

/** Effective per-pod resources as the scheduler counts them. */
export function podResources(spec: {
  containers: Container[];
  initContainers?: (Container & { restartPolicy?: string })[];
}): Resources {
  const inits = spec.initContainers ?? [];
  const sidecars = inits.filter((c) => c.restartPolicy === 'Always');
  const running = [...spec.containers, ...sidecars].map(containerResources).reduce(add, ZERO);
  const initPeak = inits
    .filter((c) => c.restartPolicy !== 'Always')
    .map(containerResources)
    .reduce(max, ZERO);
  return max(running, initPeak);
}

export function capacityOf(objects: readonly KubeObject[]): CapacitySummary {
  const ctx = new PolicyContext(objects);
  const workloads: WorkloadCapacity[] = [];
  const jobs: string[] = [];
  // The context has already found every pod template, in object order.
  for (const w of ctx.workloads) {
    const o = w.object;
    if (o.kind === 'Job' || o.kind === 'CronJob') {
      jobs.push(`${o.kind} ${o.metadata.name}`);
      continue;
    }
    // DaemonSets run one pod per node; counted as one pod here (the node count is not in the manifests).
    const range = ctx.replicaRange(o) ?? { min: 1, max: 1, hpa: false };
    const claims =
      specOf<{ volumeClaimTemplates?: { spec?: { resources?: { requests?: { storage?: string } } } }[] }>(o)
        .volumeClaimTemplates ?? [];
    workloads.push({
      kind: o.kind,
      name: o.metadata.name,
      minReplicas: range.min,
      maxReplicas: range.max,
      autoscaled: range.hpa,
      perPod: podResources(w.template.spec),
      storagePerPod: claims.reduce((n, t) => n + quantityOf(t.spec?.resources?.requests?.storage), 0),
    });
  }
  const standalone = objects
    .filter((o) => o.kind === 'PersistentVolumeClaim')
    .reduce(
      (n, o) =>
        n + quantityOf(specOf<{ resources?: { requests?: { storage?: string } } }>(o).resources?.requests?.storage),
      0,
    );
  const total = (pick: (w: WorkloadCapacity) => number): Totals => ({
    ...workloads.map((w) => times(w.perPod, pick(w))).reduce(add, ZERO),
    pods: workloads.reduce((n, w) => n + pick(w), 0),
    storage: standalone + workloads.reduce((n, w) => n + w.storagePerPod * pick(w), 0),
  });
  return { workloads, atMin: total((w) => w.minReplicas), atMax: total((w) => w.maxReplicas), jobs };
}

const MI = 2 ** 20;
const GI = 2 ** 30;

/** Cores with up to 3 decimals: `2.35`. */
export const formatCpu = (cores: number): string => `${Number(cores.toFixed(3))}`;
/** Bytes in GiB with up to 2 decimals (`9.25 GiB`), below 1 GiB in MiB (`320 MiB`). */
export const formatBytes = (bytes: number): string =>
  bytes >= GI ? `${Number((bytes / GI).toFixed(2))} GiB` : `${Number((bytes / MI).toFixed(1))} MiB`;

const ROW = (label: string, t: Totals) => [
  label,
  String(t.pods),
  formatCpu(t.cpuRequest),
  formatCpu(t.cpuLimit),
  formatBytes(t.memoryRequest),
  formatBytes(t.memoryLimit),
  formatBytes(t.storage),
];

/** The capacity table of one environment as aligned text (per workload, then totals). */
export function formatCapacityText(env: string, c: CapacitySummary): string {
  const header = ['', 'pods', 'CPU req', 'CPU lim', 'mem req', 'mem lim', 'storage'];
  const rows = c.workloads.map((w) => {
    const scale = w.minReplicas === w.maxReplicas ? `${w.minReplicas}` : `${w.minReplicas}-${w.maxReplicas}`;
    const p = w.perPod;
    return [
      `${w.kind} ${w.name} (per pod)`,
      scale,
      formatCpu(p.cpuRequest),
      formatCpu(p.cpuLimit),
      formatBytes(p.memoryRequest),
      formatBytes(p.memoryLimit),
      formatBytes(w.storagePerPod),
    ];
  });
  const table = [header, ...rows, ROW('total at HPA minimum', c.atMin), ROW('total at HPA maximum', c.atMax)];
  const widths = header.map((_, i) => Math.max(...table.map((r) => r[i].length)));
  const lines = table.map((r) =>
    r
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])))
      .join('  ')
      .trimEnd(),
  );
  const note = c.jobs.length ? `\n  (not counted: ${c.jobs.join(', ')})` : '';
  return `${env}\n${lines.map((l) => `  ${l}`).join('\n')}${note}\n`;
}

const delta = (before: number, after: number, fmt: (n: number) => string) => {
  if (before === after) return fmt(after);
  const sign = after > before ? '+' : '-';
  return `${fmt(before)} → ${fmt(after)} (${sign}${fmt(Math.abs(after - before))})`;
};

/** A Markdown table of totals, base → head with the difference; `base` undefined for a new environment. */
export function formatCapacityMarkdown(base: CapacitySummary | undefined, head: CapacitySummary | undefined): string {
  const rows: string[] = [
    '| | pods | CPU requests | CPU limits | memory requests | memory limits | storage |',
    '|---|---|---|---|---|---|---|',
  ];
  const none: Totals = { ...ZERO, pods: 0, storage: 0 };
  for (const [label, pick] of [
    ['at HPA minimum', (c: CapacitySummary) => c.atMin],
    ['at HPA maximum', (c: CapacitySummary) => c.atMax],
  ] as const) {
    const b = base ? pick(base) : none;
    const h = head ? pick(head) : none;
    rows.push(
      `| ${label} | ${delta(b.pods, h.pods, String)} | ${delta(b.cpuRequest, h.cpuRequest, formatCpu)} | ${delta(b.cpuLimit, h.cpuLimit, formatCpu)} | ${delta(b.memoryRequest, h.memoryRequest, formatBytes)} | ${delta(b.memoryLimit, h.memoryLimit, formatBytes)} | ${delta(b.storage, h.storage, formatBytes)} |`,
    );
  }
  return `${rows.join('\n')}\n`;
}

/**
 * The few Kubernetes shapes the policy checks, the diff and the capacity summary
 * read, typed loosely over plain JSON (the output of `synthObjects` or YAML read
 * from disk), plus helpers to find pod templates and match label selectors.
 *
 * These are deliberately partial: the strict schema stage (tools/manifests/validate.ts)
 * has already rejected anything that is not the Kubernetes 1.28 API.
 */
import { RUNTIME_LABELS_ANNOTATION } from '../../constructs/postgres/patroni-cluster';

/** A Kubernetes object as plain JSON (synthesized, or read from YAML). */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export type PortRef = number | string;

export interface Probe {
  httpGet?: { port: PortRef; path?: string; [k: string]: unknown };
  tcpSocket?: { port: PortRef; [k: string]: unknown };
  grpc?: { port: number; service?: string };
  exec?: { command?: string[] };
  [k: string]: unknown;
}

export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  seccompProfile?: { type?: string };
}

export interface KeyRef {
  name?: string;
  key: string;
  optional?: boolean;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { configMapKeyRef?: KeyRef; secretKeyRef?: KeyRef; [k: string]: unknown };
}

export type Resources = Record<string, string | number>;

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  ports?: { name?: string; containerPort: number; hostPort?: number; protocol?: string }[];
  resources?: { requests?: Resources; limits?: Resources };
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  securityContext?: SecurityContext;
  env?: EnvVar[];
  envFrom?: {
    configMapRef?: { name?: string; optional?: boolean };
    secretRef?: { name?: string; optional?: boolean };
  }[];
}

interface ItemsRef {
  name?: string;
  optional?: boolean;
  items?: { key: string; path: string }[];
}

export interface Volume {
  name: string;
  hostPath?: { path: string };
  configMap?: ItemsRef;
  secret?: { secretName?: string; optional?: boolean; items?: { key: string; path: string }[] };
  projected?: { sources?: { configMap?: ItemsRef; secret?: ItemsRef }[] };
  persistentVolumeClaim?: { claimName: string };
}

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  securityContext?: SecurityContext & { runAsGroup?: number; fsGroup?: number };
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  serviceAccountName?: string;
  imagePullSecrets?: { name: string }[];
  topologySpreadConstraints?: { topologyKey: string; labelSelector?: LabelSelector }[];
  affinity?: { podAntiAffinity?: unknown };
}

export interface PodTemplate {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: PodSpec;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

/** A pod template found in an object, with the JSON path that leads to it. */
export interface Workload {
  object: KubeObject;
  template: PodTemplate;
  /** e.g. `spec.template` or `spec.jobTemplate.spec.template`. */
  path: string;
  labels: Record<string, string>;
}

/** Kinds whose replica count a PDB and an HPA govern. */
export const SCALABLE_KINDS = new Set(['Deployment', 'StatefulSet', 'ReplicaSet']);

/** The object's `spec` as a loose record (every check reads a few fields of it). */
export function specOf<T = Record<string, unknown>>(o: KubeObject): T {
  return (o.spec ?? {}) as T;
}

/** The pod template of a workload object, or undefined for objects that run no pods. */
export function podTemplateOf(o: KubeObject): Workload | undefined {
  const spec = specOf<{ template?: PodTemplate; jobTemplate?: { spec?: { template?: PodTemplate } } }>(o);
  let template: PodTemplate | undefined;
  let path = '';
  switch (o.kind) {
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
    case 'Job':
      template = spec.template;
      path = 'spec.template';
      break;
    case 'CronJob':
      template = spec.jobTemplate?.spec?.template;
      path = 'spec.jobTemplate.spec.template';
      break;
    case 'Pod':
      template = { metadata: o.metadata, spec: o.spec as PodSpec };
      path = '';
      break;
    default:
      return undefined;
  }
  if (!template?.spec) return undefined;
  return { object: o, template, path, labels: template.metadata?.labels ?? {} };
}

/** Every pod template in the output. */
export function workloadsOf(objects: readonly KubeObject[]): Workload[] {
  return objects.map(podTemplateOf).filter((w): w is Workload => w !== undefined);
}

/** Whether a LabelSelector (matchLabels + matchExpressions) selects `labels`. An empty selector selects all. */
export function selects(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const inValues = has && (e.values ?? []).includes(labels[e.key]);
    if (e.operator === 'In' && !inValues) return false;
    if (e.operator === 'NotIn' && inValues) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** Whether a Service-style selector (a plain map) selects `labels`; an empty map selects nothing. */
/**
 * Service annotation naming selector labels a controller sets on live pods (Patroni's role
 * label): no pod template carries them, so matching a Service to templates leaves them out.
 */
export { RUNTIME_LABELS_ANNOTATION };

/** A Service's selector as pod templates can match it (runtime-set labels left out). */
export function templateSelector(service: {
  metadata?: { annotations?: Record<string, string> };
  spec?: unknown;
}): Record<string, string> | undefined {
  const selector = (service.spec as { selector?: Record<string, string> } | undefined)?.selector;
  const runtime = new Set(annotationList(service, RUNTIME_LABELS_ANNOTATION));
  return selector && Object.fromEntries(Object.entries(selector).filter(([k]) => !runtime.has(k)));
}

export function mapSelects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** JSON path of `rest` (e.g. `spec.volumes`) inside a workload's pod template; a bare Pod has no prefix. */
export function pathIn(w: Workload, rest: string): string {
  return w.path ? `${w.path}.${rest}` : rest;
}

/** Containers and init containers of a pod spec, each with its JSON path below the template. */
export function containersOf(w: Workload): { container: Container; path: string; init: boolean }[] {
  const base = pathIn(w, 'spec');
  const named = (list: Container[] | undefined, field: string, init: boolean) =>
    (list ?? []).map((container) => ({ container, path: `${base}.${field}[name=${container.name}]`, init }));
  return [
    ...named(w.template.spec.initContainers, 'initContainers', true),
    ...named(w.template.spec.containers, 'containers', false),
  ];
}

/** Whether a container declares `port` (a number: containerPort; a string: port name). */
export function declaresPort(c: Container, port: PortRef): boolean {
  return (c.ports ?? []).some((p) => (typeof port === 'number' ? p.containerPort === port : p.name === port));
}

/** The annotation value split on commas, trimmed, empties dropped. */
export function annotationList(o: { metadata?: { annotations?: Record<string, string> } }, key: string): string[] {
  const raw = o.metadata?.annotations?.[key];
  return raw
    ? raw
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : [];
}

/** Something a pod template needs to exist before its pods can start. */
export interface PodReference {
  kind: 'ConfigMap' | 'Secret' | 'ServiceAccount' | 'PersistentVolumeClaim';
  name: string;
  key?: string;
  path: string;
}

/** Every ConfigMap, Secret, ServiceAccount and PVC a pod template needs (optional references left out). */
export function podReferences(w: Workload): PodReference[] {
  const spec = w.template.spec;
  const base = pathIn(w, 'spec');
  const refs: PodReference[] = [];
  if (spec.serviceAccountName && spec.serviceAccountName !== 'default') {
    refs.push({ kind: 'ServiceAccount', name: spec.serviceAccountName, path: `${base}.serviceAccountName` });
  }
  for (const s of spec.imagePullSecrets ?? [])
    refs.push({ kind: 'Secret', name: s.name, path: `${base}.imagePullSecrets` });
  for (const v of spec.volumes ?? []) {
    const path = `${base}.volumes[name=${v.name}]`;
    const items = (
      kind: 'ConfigMap' | 'Secret',
      name: string | undefined,
      src?: { optional?: boolean; items?: { key: string }[] },
    ) => {
      if (!name || src?.optional) return;
      if (src?.items?.length) for (const i of src.items) refs.push({ kind, name, key: i.key, path });
      else refs.push({ kind, name, path });
    };
    items('ConfigMap', v.configMap?.name, v.configMap);
    items('Secret', v.secret?.secretName, v.secret);
    for (const s of v.projected?.sources ?? []) {
      items('ConfigMap', s.configMap?.name, s.configMap);
      items('Secret', s.secret?.name, s.secret);
    }
    if (v.persistentVolumeClaim)
      refs.push({ kind: 'PersistentVolumeClaim', name: v.persistentVolumeClaim.claimName, path });
  }
  for (const { container, path } of containersOf(w)) {
    for (const e of container.env ?? []) {
      const cm = e.valueFrom?.configMapKeyRef;
      const sec = e.valueFrom?.secretKeyRef;
      if (cm?.name && !cm.optional)
        refs.push({ kind: 'ConfigMap', name: cm.name, key: cm.key, path: `${path}.env[name=${e.name}]` });
      if (sec?.name && !sec.optional)
        refs.push({ kind: 'Secret', name: sec.name, key: sec.key, path: `${path}.env[name=${e.name}]` });
    }
    for (const f of container.envFrom ?? []) {
      if (f.configMapRef?.name && !f.configMapRef.optional)
        refs.push({ kind: 'ConfigMap', name: f.configMapRef.name, path: `${path}.envFrom` });
      if (f.secretRef?.name && !f.secretRef.optional)
        refs.push({ kind: 'Secret', name: f.secretRef.name, path: `${path}.envFrom` });
    }
  }
  return refs;
}

/** Env vars holding a certificate's names, not hosts a pod reaches (serviceHostsOf). */
export const CERTIFICATE_NAMES_ENV = /_DNS_NAMES$/;

/**
 * In-cluster DNS names a pod template's env values point at, as Service names:
 * `<svc>.<ns>.svc[.cluster.local]` and a StatefulSet pod's `<pod>.<svc>.<ns>.svc...`.
 * These are the Services a pod reaches by name (a database host, cluster seeds).
 * Env vars named `*_DNS_NAMES` are left out: they hold the names a certificate is issued for
 * (the TLS generator Job's TLS_DNS_NAMES), which the pod never connects to. Counting them would
 * make the generator wait for the Services whose pods wait for its certificate (a cycle).
 */
export function serviceHostsOf(w: Workload, namespace: string): string[] {
  const pattern = new RegExp(
    `(?:^|[\\s,/@=])(?:[a-z0-9-]+\\.)?([a-z0-9-]+)\\.${namespace.replace(/[.]/g, '\\.')}\\.svc\\b`,
    'g',
  );
  const hosts = new Set<string>();
  for (const { container } of containersOf(w)) {
    for (const e of container.env ?? []) {
      if (CERTIFICATE_NAMES_ENV.test(e.name)) continue;
      for (const m of (e.value ?? '').matchAll(pattern)) hosts.add(m[1]);
    }
  }
  return [...hosts].sort();
}

/**
 * Production defaults shared by every tier: labels, hardened security
 * contexts, spread constraints, resources and NetworkPolicy peers. Each tier
 * builds its pods from these so "production-ready" means one thing.
 */
import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import * as kplus from 'cdk8s-plus-28';
import type { EnvironmentConfig } from '../../stacks/config';

const k8s = kplus.k8s;

/** Value of `app.kubernetes.io/instance` on every object. */
export const INSTANCE = 'fastnext';
/**
 * Namespace label marking a production environment, so checks that read the
 * manifests alone (`npm run validate -- --dir`) know it too.
 */
export const PRODUCTION_LABEL = 'fastnext.io/production';
/** Value of `app.kubernetes.io/part-of` on every object. */
export const PART_OF = 'fastnext-platform';

/** Labels that select one component's pods; stable across releases (selectors are immutable). */
export function selectorLabels(component: string): Record<string, string> {
  return { 'app.kubernetes.io/name': component, 'app.kubernetes.io/instance': INSTANCE };
}

/** Full label set for an object of a component: selector labels + part-of + the environment's labels. */
export function standardLabels(config: EnvironmentConfig, component: string): Record<string, string> {
  return {
    ...config.labels,
    ...selectorLabels(component),
    'app.kubernetes.io/part-of': PART_OF,
    'app.kubernetes.io/managed-by': 'cdk8s',
  };
}

/** Metadata for a namespaced object of a component. */
export function meta(
  config: EnvironmentConfig,
  component: string,
  name: string,
  extra: { annotations?: Record<string, string>; labels?: Record<string, string> } = {},
): kplus.k8s.ObjectMeta {
  return {
    name,
    namespace: config.namespace,
    labels: { ...standardLabels(config, component), ...extra.labels },
    ...(extra.annotations ? { annotations: extra.annotations } : {}),
  };
}

/**
 * Container security context of the Pod Security "restricted" profile, plus a
 * read-only root filesystem (writable paths are emptyDir mounts).
 */
export function containerSecurityContext(): kplus.k8s.SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Pod security context: a numeric non-root user (so the kubelet can verify runAsNonRoot) and fsGroup for volumes. */
export function podSecurityContext(uid: number, gid: number = uid): kplus.k8s.PodSecurityContext {
  if (uid === 0) throw new Error("podSecurityContext: 'uid' (0) must be a non-root user id");
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: gid,
    fsGroup: gid,
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/**
 * Spread a component's pods over nodes (hard-ish: ScheduleAnyway keeps small
 * clusters schedulable) and zones.
 */
export function topologySpread(component: string): kplus.k8s.TopologySpreadConstraint[] {
  const labelSelector = { matchLabels: selectorLabels(component) };
  return [
    { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector },
    { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector },
  ];
}

/** Requests and limits from a config `resources` block. */
export function resourcesOf(r: {
  requests: { cpu: string; memory: string };
  limits: { cpu: string; memory: string };
}): kplus.k8s.ResourceRequirements {
  const q = (v: string) => k8s.Quantity.fromString(v);
  return {
    requests: { cpu: q(r.requests.cpu), memory: q(r.requests.memory) },
    limits: { cpu: q(r.limits.cpu), memory: q(r.limits.memory) },
  };
}

/** An emptyDir volume (optionally memory-backed) for a writable path under a read-only root fs. */
export function emptyDir(name: string, sizeLimit = '64Mi', medium?: 'Memory'): kplus.k8s.Volume {
  return { name, emptyDir: { sizeLimit: k8s.Quantity.fromString(sizeLimit), ...(medium ? { medium } : {}) } };
}

/**
 * The `data` volume claim template of a StatefulSet: ReadWriteOnce, the size
 * asked for, and the component's StorageClass, else the environment's, else
 * (none set) the cluster's default class.
 */
export function dataVolumeClaim(
  config: EnvironmentConfig,
  component: string,
  storage: { readonly size: string; readonly storageClass?: string },
): kplus.k8s.KubePersistentVolumeClaimProps {
  const storageClass = storage.storageClass ?? config.storageClass;
  return {
    metadata: { name: 'data', labels: selectorLabels(component) },
    spec: {
      accessModes: ['ReadWriteOnce'],
      ...(storageClass ? { storageClassName: storageClass } : {}),
      resources: { requests: { storage: k8s.Quantity.fromString(storage.size) } },
    },
  };
}

/** An HTTP GET probe on a named container port, with its timings. */
export function httpProbe(
  path: string,
  port: string,
  timing: { readonly periodSeconds: number; readonly failureThreshold?: number; readonly timeoutSeconds: number },
): kplus.k8s.Probe {
  return { httpGet: { path, port: k8s.IntOrString.fromString(port) }, ...timing };
}

/** NetworkPolicy peer: pods of a component in the same namespace. */
export function podsOf(component: string): kplus.k8s.NetworkPolicyPeer {
  return { podSelector: { matchLabels: selectorLabels(component) } };
}

/**
 * Where pods send DNS queries, as written in config: a CIDR (`169.254.20.10/32`) for a
 * host-network or link-local resolver, or a pod label selector (`k8s-app=kube-dns`,
 * any namespace; `kube-system/k8s-app=kube-dns` for one namespace) for resolver pods.
 */
export type DnsResolver = string;

/**
 * Resolvers that cover the clusters people run: kube-dns/CoreDNS pods; `node-local-dns` pods
 * (Cilium's local redirect); NodeLocal DNSCache's link-local address; GKE Cloud DNS's
 * metadata-server address. No pod selector matches a link-local address, so a policy naming
 * only the kube-dns pods breaks every lookup on a node-local resolver.
 */
export const DEFAULT_DNS_RESOLVERS: readonly DnsResolver[] = [
  'k8s-app=kube-dns',
  'k8s-app=node-local-dns',
  '169.254.20.10/32',
  '169.254.169.254/32',
];

const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** What a resolver must look like (the tail of every error about one). */
export const DNS_RESOLVER_FORMAT =
  'must be a CIDR such as "169.254.20.10/32" or a pod label selector such as "k8s-app=kube-dns" (or "kube-system/k8s-app=kube-dns")';

/** Whether `s` is an IPv4 or IPv6 CIDR (`169.254.20.10/32`, `fd00::a/128`). */
function isCidr(s: string): boolean {
  const [address, bits, ...rest] = s.split('/');
  const maxBits = isIPv4(address) ? 32 : isIPv6(address) ? 128 : -1;
  return rest.length === 0 && /^\d{1,3}$/.test(bits ?? '') && Number(bits) <= maxBits;
}

/** The NetworkPolicy peer of one resolver, or undefined when it is neither a CIDR nor a label selector. */
export function dnsResolverPeer(resolver: DnsResolver): kplus.k8s.NetworkPolicyPeer | undefined {
  if (isCidr(resolver)) return { ipBlock: { cidr: resolver } };
  const slash = resolver.indexOf('/');
  // `<namespace>/` before the selector: a name without dots. A label key's prefix has dots (app.kubernetes.io/name).
  const hasNamespace = slash !== -1 && slash < resolver.indexOf('=') && !resolver.slice(0, slash).includes('.');
  const namespace = hasNamespace ? resolver.slice(0, slash) : undefined;
  const selector = hasNamespace ? resolver.slice(slash + 1) : resolver;
  if (namespace !== undefined && !NAMESPACE.test(namespace)) return undefined;
  const matchLabels: Record<string, string> = {};
  for (const term of selector.split(',')) {
    const [key, value, ...rest] = term.split('=');
    if (rest.length > 0 || value === undefined || !LABEL_KEY.test(key) || !LABEL_VALUE.test(value)) return undefined;
    matchLabels[key] = value;
  }
  return {
    namespaceSelector: namespace ? { matchLabels: { 'kubernetes.io/metadata.name': namespace } } : {},
    podSelector: { matchLabels },
  };
}

/** The peers of a resolver list; throws naming the first entry that is neither a CIDR nor a label selector. */
export function dnsResolverPeers(resolvers: readonly DnsResolver[]): kplus.k8s.NetworkPolicyPeer[] {
  return resolvers.map((r, i) => {
    const peer = dnsResolverPeer(r);
    if (!peer) throw new Error(`'dnsResolvers[${i}]' (${JSON.stringify(r)}) ${DNS_RESOLVER_FORMAT}`);
    return peer;
  });
}

/** The peers of DEFAULT_DNS_RESOLVERS: what a construct allows DNS to when its props name none. */
export const DEFAULT_DNS_RESOLVER_PEERS: readonly kplus.k8s.NetworkPolicyPeer[] =
  dnsResolverPeers(DEFAULT_DNS_RESOLVERS);

/** Egress rule allowing DNS (UDP and TCP 53) to the given resolvers. */
export function dnsEgress(
  resolvers: readonly kplus.k8s.NetworkPolicyPeer[] = DEFAULT_DNS_RESOLVER_PEERS,
): kplus.k8s.NetworkPolicyEgressRule {
  if (resolvers.length === 0) {
    throw new Error("'dnsResolvers' ([]) must name at least one resolver: with none, every DNS lookup is denied");
  }
  return {
    to: [...resolvers],
    ports: [
      { protocol: 'UDP', port: k8s.IntOrString.fromNumber(53) },
      { protocol: 'TCP', port: k8s.IntOrString.fromNumber(53) },
    ],
  };
}

/** TCP NetworkPolicy ports. */
export function tcpPorts(...ports: number[]): kplus.k8s.NetworkPolicyPort[] {
  return ports.map((port) => ({ protocol: 'TCP', port: k8s.IntOrString.fromNumber(port) }));
}

/** Name of the Prometheus component; its pods are allowed to scrape every metrics port. */
export const PROMETHEUS_COMPONENT = 'prometheus';

/** Pod annotations that make Prometheus' kubernetes_sd scrape a metrics port. */
export function scrapeAnnotations(port: number, path = '/metrics'): Record<string, string> {
  return { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': path };
}

/**
 * A component's NetworkPolicy: default-deny in both directions for its pods,
 * then exactly the listed ingress and egress rules.
 */
export function networkPolicy(
  scope: import('constructs').Construct,
  id: string,
  config: EnvironmentConfig,
  component: string,
  rules: { ingress: kplus.k8s.NetworkPolicyIngressRule[]; egress: kplus.k8s.NetworkPolicyEgressRule[] },
): kplus.k8s.KubeNetworkPolicy {
  return new k8s.KubeNetworkPolicy(scope, id, {
    metadata: meta(config, component, component),
    spec: {
      podSelector: { matchLabels: selectorLabels(component) },
      policyTypes: ['Ingress', 'Egress'],
      ingress: rules.ingress,
      egress: rules.egress,
    },
  });
}

/** A PDB allowing `maxUnavailable` evictions at a time, so drains never block. */
export function podDisruptionBudget(
  scope: import('constructs').Construct,
  id: string,
  config: EnvironmentConfig,
  component: string,
  maxUnavailable = 1,
): kplus.k8s.KubePodDisruptionBudget {
  if (maxUnavailable < 1) {
    throw new Error(`'maxUnavailable' (${maxUnavailable}) must be >= 1 so a node drain can evict a pod`);
  }
  return new k8s.KubePodDisruptionBudget(scope, id, {
    metadata: meta(config, component, component),
    spec: {
      maxUnavailable: k8s.IntOrString.fromNumber(maxUnavailable),
      selector: { matchLabels: selectorLabels(component) },
    },
  });
}

/** A ServiceAccount that does not mount an API token (none of our app pods talk to the API server). */
export function serviceAccount(
  scope: import('constructs').Construct,
  id: string,
  config: EnvironmentConfig,
  component: string,
): kplus.k8s.KubeServiceAccount {
  return new k8s.KubeServiceAccount(scope, id, {
    metadata: meta(config, component, component),
    automountServiceAccountToken: false,
  });
}

/** HPA autoscaling/v2 on CPU and memory utilization with a damped scale-down. */
export function horizontalPodAutoscaler(
  scope: import('constructs').Construct,
  id: string,
  config: EnvironmentConfig,
  component: string,
  target: { kind: 'Deployment' | 'StatefulSet'; name: string },
  a: EnvironmentConfig['api']['autoscaling'],
): kplus.k8s.KubeHorizontalPodAutoscalerV2 {
  return new k8s.KubeHorizontalPodAutoscalerV2(scope, id, {
    metadata: meta(config, component, component),
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: target.kind, name: target.name },
      minReplicas: a.minReplicas,
      maxReplicas: a.maxReplicas,
      metrics: [
        {
          type: 'Resource',
          resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: a.cpuTargetPercent } },
        },
        {
          type: 'Resource',
          resource: { name: 'memory', target: { type: 'Utilization', averageUtilization: a.memoryTargetPercent } },
        },
      ],
      behavior: {
        // Scale up fast (double or +4 pods a minute); scale down one pod a minute after a quiet window.
        scaleUp: {
          stabilizationWindowSeconds: 0,
          selectPolicy: 'Max',
          policies: [
            { type: 'Percent', value: 100, periodSeconds: 60 },
            { type: 'Pods', value: 4, periodSeconds: 60 },
          ],
        },
        scaleDown: {
          stabilizationWindowSeconds: a.scaleDownStabilizationSeconds,
          selectPolicy: 'Min',
          policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }],
        },
      },
    },
  });
}

/**
 * A Job's name for the spec it runs: `<base>-<8 hex of sha256(spec)>`. A Job's
 * pod template is immutable, so a changed spec must be a new Job (kubectl apply
 * and Pulumi then create it) rather than a refused update of the old one; the
 * same spec keeps its name, so re-applying changes nothing. `inputs`: what the
 * Job runs from outside its spec (a script in a ConfigMap), so a changed script
 * runs again too.
 */
export function jobNameFor(base: string, spec: kplus.k8s.JobSpec, inputs: readonly unknown[] = []): string {
  const hash = createHash('sha256')
    .update(JSON.stringify([spec, ...inputs]))
    .digest('hex')
    .slice(0, 8);
  return `${base}-${hash}`;
}

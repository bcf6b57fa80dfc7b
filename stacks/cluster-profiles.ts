/**
 * Cluster profiles: what differs between the clusters people run (StorageClass,
 * the edge Service's type and load-balancer annotations, DNS resolvers, GKE
 * Autopilot's admission rules). A profile is a layer of defaults between DEFAULTS
 * and the environment file, so an environment still overrides any of it.
 * docs/clusters.md says what each profile sets and why.
 */
import { ApiObject, JsonPatch } from 'cdk8s';
import type { IConstruct } from 'constructs';
import { DEFAULT_DNS_RESOLVERS } from '../constructs/common';
import { parseQuantity } from './config';
import type { EnvironmentOverrides } from './config';

export const CLUSTER_PROFILES = ['generic', 'gke', 'gke-autopilot', 'eks', 'aks', 'kind'] as const;
export type ClusterProfile = (typeof CLUSTER_PROFILES)[number];

/** What a profile may set: any override but the environment's identity. */
export type ProfileDefaults = Omit<EnvironmentOverrides, 'name' | 'namespace' | 'cluster'>;

/** On EKS and AKS 169.254.169.254 is the instance metadata service, not a resolver: no DNS is opened to it. */
const WITHOUT_METADATA_SERVER = DEFAULT_DNS_RESOLVERS.filter((r) => r !== '169.254.169.254/32');

const small = (cpu: string, memory: string, cpuLimit: string, memoryLimit: string) => ({
  requests: { cpu, memory },
  limits: { cpu: cpuLimit, memory: memoryLimit },
});

/** Each profile's defaults (what it changes from DEFAULTS). */
export const PROFILE_DEFAULTS: Readonly<Record<ClusterProfile, ProfileDefaults>> = {
  // Any conformant cluster: its default StorageClass, a plain LoadBalancer, every known resolver.
  generic: {},
  gke: {
    storageClass: 'standard-rwo',
    edge: {
      serviceType: 'LoadBalancer',
      // Backend-service-based passthrough NLB: health-checks kube-proxy's healthCheckNodePort under Local.
      serviceAnnotations: { 'cloud.google.com/l4-rbs': 'enabled' },
    },
  },
  'gke-autopilot': {
    storageClass: 'standard-rwo',
    edge: {
      serviceType: 'LoadBalancer',
      serviceAnnotations: { 'cloud.google.com/l4-rbs': 'enabled' },
    },
  },
  eks: {
    storageClass: 'gp3',
    network: { dnsResolvers: WITHOUT_METADATA_SERVER },
    edge: {
      serviceType: 'LoadBalancer',
      // AWS Load Balancer Controller: an NLB with instance targets; with Local it keeps client IPs.
      serviceAnnotations: {
        'service.beta.kubernetes.io/aws-load-balancer-type': 'external',
        'service.beta.kubernetes.io/aws-load-balancer-nlb-target-type': 'instance',
        'service.beta.kubernetes.io/aws-load-balancer-scheme': 'internet-facing',
      },
    },
  },
  aks: {
    storageClass: 'managed-csi',
    network: { dnsResolvers: WITHOUT_METADATA_SERVER },
    edge: {
      serviceType: 'LoadBalancer',
      // Azure probes `/` over TCP unless told; kube-proxy's health endpoint is /healthz.
      serviceAnnotations: { 'service.beta.kubernetes.io/azure-load-balancer-health-probe-request-path': '/healthz' },
    },
  },
  kind: {
    // kind's (and minikube's) default class; no load balancer: `kubectl port-forward svc/edge 8080:80`.
    storageClass: 'standard',
    edge: { serviceType: 'ClusterIP' },
    api: { resources: small('100m', '128Mi', '500m', '256Mi') },
    postgres: { storage: { size: '2Gi' }, resources: small('100m', '256Mi', '500m', '512Mi') },
    redis: {
      maxmemory: '128mb',
      storage: { size: '1Gi' },
      resources: small('50m', '192Mi', '250m', '256Mi'),
    },
    monitoring: { prometheus: { storage: { size: '5Gi' } } },
  },
};

/** The defaults of a profile; an unknown name has none (the schema then names it). */
export function profileDefaults(profile: unknown): ProfileDefaults {
  return typeof profile === 'string' && Object.hasOwn(PROFILE_DEFAULTS, profile)
    ? PROFILE_DEFAULTS[profile as ClusterProfile]
    : {};
}

// ---------------------------------------------------------------- GKE Autopilot

/**
 * What GKE Autopilot (general-purpose compute class) admits for a Pod's requests:
 * at least 250m CPU and 512 MiB, CPU in steps of 250m, and between 1 and 6.5 GiB
 * of memory per vCPU. Autopilot raises anything else at admission, so manifests
 * that did not say so would differ from what runs (and re-applying an immutable
 * Job template would fail).
 */
export const AUTOPILOT = { cpuStep: 0.25, minMemory: 512 * 2 ** 20, minGiBPerCpu: 1, maxGiBPerCpu: 6.5 } as const;

const GIB = 2 ** 30;

/** Pod totals (cores, bytes) raised to what Autopilot admits. */
export function autopilotPodRequests(pod: { cpu: number; memory: number }): { cpu: number; memory: number } {
  const steps = (cores: number) => Math.ceil(cores / AUTOPILOT.cpuStep - 1e-9) * AUTOPILOT.cpuStep;
  let cpu = Math.max(AUTOPILOT.cpuStep, steps(pod.cpu));
  let memory = Math.max(AUTOPILOT.minMemory, pod.memory);
  if (memory > cpu * AUTOPILOT.maxGiBPerCpu * GIB) cpu = steps(memory / (AUTOPILOT.maxGiBPerCpu * GIB));
  if (memory < cpu * AUTOPILOT.minGiBPerCpu * GIB) memory = cpu * AUTOPILOT.minGiBPerCpu * GIB;
  return { cpu, memory };
}

const formatCpu = (cores: number) => {
  const milli = Math.round(cores * 1000);
  return milli % 1000 === 0 ? String(milli / 1000) : `${milli}m`;
};
const formatMemory = (bytes: number) => {
  const mi = Math.ceil(bytes / 2 ** 20);
  return mi % 1024 === 0 ? `${mi / 1024}Gi` : `${mi}Mi`;
};

interface ContainerResources {
  requests?: { cpu?: string; memory?: string };
  limits?: { cpu?: string; memory?: string };
}

/**
 * The first container's resources after raising the pod's requests to what Autopilot
 * admits (the delta goes to the first container, the tier's main process), with its
 * limits raised to at least its requests; undefined when the pod already fits.
 */
export function fitContainersToAutopilot(containers: readonly ContainerResources[]): ContainerResources | undefined {
  const sum = (kind: 'cpu' | 'memory') =>
    containers.reduce((total, c) => total + parseQuantity(c.requests?.[kind] ?? '0'), 0);
  const pod = { cpu: sum('cpu'), memory: sum('memory') };
  const fit = autopilotPodRequests(pod);
  if (Math.abs(fit.cpu - pod.cpu) < 1e-9 && fit.memory === pod.memory) return undefined;
  const main = containers[0];
  const cpu = parseQuantity(main.requests?.cpu ?? '0') + fit.cpu - pod.cpu;
  const memory = parseQuantity(main.requests?.memory ?? '0') + fit.memory - pod.memory;
  const requests = { cpu: formatCpu(cpu), memory: formatMemory(memory) };
  const atLeast = (limit: string | undefined, request: string) =>
    limit !== undefined && parseQuantity(limit) >= parseQuantity(request) ? limit : request;
  return {
    requests,
    limits: { cpu: atLeast(main.limits?.cpu, requests.cpu), memory: atLeast(main.limits?.memory, requests.memory) },
  };
}

/** JSON pointer of the pod spec inside each kind that carries a pod template. */
const POD_SPEC: Record<string, string> = {
  Deployment: '/spec/template/spec',
  StatefulSet: '/spec/template/spec',
  DaemonSet: '/spec/template/spec',
  Job: '/spec/template/spec',
  CronJob: '/spec/jobTemplate/spec/template/spec',
};

/**
 * Raises every pod template's requests under `scope` to what Autopilot admits, as JSON
 * patches on the synthesized objects (so the cdk8s output and the Pulumi program agree).
 * Init containers run alone before the pod starts and are left as they are.
 */
export function fitToAutopilot(scope: IConstruct): void {
  for (const obj of scope.node.findAll().filter((c): c is ApiObject => c instanceof ApiObject)) {
    const pointer = POD_SPEC[obj.kind];
    if (!pointer) continue;
    let spec: unknown = obj.toJson();
    for (const key of pointer.split('/').slice(1)) spec = (spec as Record<string, unknown>)[key];
    const containers = (spec as { containers: { resources?: ContainerResources }[] }).containers.map(
      (c) => c.resources ?? {},
    );
    const fitted = fitContainersToAutopilot(containers);
    if (fitted) obj.addJsonPatch(JsonPatch.replace(`${pointer}/containers/0/resources`, fitted));
  }
}

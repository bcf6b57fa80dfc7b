/**
 * Cluster profiles: what differs between the clusters people run (StorageClass,
 * the edge Service's type and load-balancer annotations, DNS resolvers; GKE
 * Autopilot's request rules are in autopilot.ts). A profile is a layer of
 * defaults between DEFAULTS and the environment file, so an environment still
 * overrides any of it. docs/clusters.md says what each profile sets and why.
 */
import { DEFAULT_DNS_RESOLVERS } from '../constructs/core/network';
import type { EnvironmentOverrides } from './config';

export const CLUSTER_PROFILES = ['generic', 'gke', 'gke-autopilot', 'eks', 'aks', 'kind'] as const;
export type ClusterProfile = (typeof CLUSTER_PROFILES)[number];

/** What a profile may set: any override but the environment's identity. */
export type ProfileDefaults = Omit<EnvironmentOverrides, 'name' | 'namespace' | 'cluster'>;

/** On EKS and AKS 169.254.169.254 is the instance metadata service, not a resolver: no DNS is opened to it. */
const WITHOUT_METADATA_SERVER = DEFAULT_DNS_RESOLVERS.filter((r) => r !== '169.254.169.254/32');

/** GKE Standard and Autopilot: the PD CSI class and a backend-service-based passthrough NLB. */
const GKE: ProfileDefaults = {
  storageClass: 'standard-rwo',
  // l4-rbs health-checks kube-proxy's healthCheckNodePort per node under externalTrafficPolicy Local.
  edge: { serviceType: 'LoadBalancer', serviceAnnotations: { 'cloud.google.com/l4-rbs': 'enabled' } },
};

/** Each profile's defaults (what it changes from DEFAULTS). */
export const PROFILE_DEFAULTS: Readonly<Record<ClusterProfile, ProfileDefaults>> = {
  // Any conformant cluster: its default StorageClass, a plain LoadBalancer, every known resolver.
  generic: {},
  gke: GKE,
  // Autopilot's request rules are applied at synth (stacks/autopilot.ts), not as defaults.
  'gke-autopilot': GKE,
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
    api: { resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } } },
    postgres: {
      storage: { size: '2Gi' },
      resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '500m', memory: '512Mi' } },
    },
    redis: {
      maxmemory: '128mb',
      storage: { size: '1Gi' },
      resources: { requests: { cpu: '50m', memory: '192Mi' }, limits: { cpu: '250m', memory: '256Mi' } },
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

/**
 * Node-selector keys GKE Autopilot admits (its node-selector allowlist): any
 * other key is refused at admission, because Autopilot, not the user, owns
 * the nodes. Placement is asked for through a compute class instead.
 */
export const AUTOPILOT_NODE_SELECTOR_KEYS: readonly string[] = [
  'cloud.google.com/compute-class',
  'cloud.google.com/gke-spot',
  'cloud.google.com/gke-accelerator',
  'cloud.google.com/machine-family',
  'cloud.google.com/gke-placement-group',
  'cloud.google.com/reservation-name',
  'cloud.google.com/gke-ephemeral-storage-local-ssd',
  'topology.kubernetes.io/zone',
  'topology.kubernetes.io/region',
  'kubernetes.io/arch',
  'kubernetes.io/os',
];

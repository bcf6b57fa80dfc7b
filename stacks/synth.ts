/**
 * Builds an environment's Platform and turns it into plain Kubernetes objects
 * in an order `kubectl apply -f` accepts. Shared by the cdk8s entry point, the
 * Pulumi program, the validators and the local twin.
 */
import { App } from 'cdk8s';
import { Platform } from './platform';
import { fitToAutopilot } from './autopilot';
import type { KubeObject } from '../tools/k8s/objects';
import type { EnvironmentConfig } from './config';

export type { KubeObject };

/** Builds the construct tree of one environment (nothing is written). */
export function buildPlatform(config: EnvironmentConfig): { app: App; platform: Platform } {
  const app = new App({ outdir: 'dist' });
  const platform = new Platform(app, config.name, { config });
  return { app, platform };
}

/**
 * Apply order: the Namespace, then what pods reference (accounts, config,
 * RBAC), then the NetworkPolicies and PDBs, so every pod starts already
 * fenced by its default-deny policy and covered by its budget; then Services,
 * workloads and autoscalers. Unknown kinds go last.
 */
export const KIND_ORDER = [
  'Namespace',
  'ServiceAccount',
  'Secret',
  'ConfigMap',
  'PersistentVolumeClaim',
  'Role',
  'ClusterRole',
  'RoleBinding',
  'ClusterRoleBinding',
  'NetworkPolicy',
  'PodDisruptionBudget',
  'Service',
  'StatefulSet',
  'Deployment',
  'Job',
  'CronJob',
  'HorizontalPodAutoscaler',
];

function kindRank(kind: string): number {
  const i = KIND_ORDER.indexOf(kind);
  return i === -1 ? KIND_ORDER.length : i;
}

/** The environment's objects, Namespace first, then by kind rank and name: deterministic. */
export function sortObjects(objects: KubeObject[]): KubeObject[] {
  return [...objects].sort(
    (a, b) =>
      kindRank(a.kind) - kindRank(b.kind) ||
      a.kind.localeCompare(b.kind) ||
      a.metadata.name.localeCompare(b.metadata.name),
  );
}

/** A built Platform's objects in apply order (for callers that also need the construct tree). */
export function platformObjects(platform: Platform): KubeObject[] {
  const objects = platform.toJson() as KubeObject[];
  // Autopilot raises requests at admission; the manifests say so instead of drifting from what runs.
  return sortObjects(platform.config.cluster.profile === 'gke-autopilot' ? objects.map(fitToAutopilot) : objects);
}

/** Synthesizes one environment into plain objects in apply order. */
export function synthObjects(config: EnvironmentConfig): KubeObject[] {
  return platformObjects(buildPlatform(config).platform);
}

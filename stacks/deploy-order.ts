/**
 * Which object waits for which when the Pulumi program deploys an environment.
 *
 * `@pulumi/kubernetes` waits for each resource it creates or updates (its
 * "await logic") before the resources that depend on it start. A Service with
 * a selector and a cluster IP is only done once pods back it, so a workload
 * that depends on its own Service never starts (the provider times out after
 * 10 minutes). The order here therefore runs:
 *
 * 1. pod prerequisites (accounts, RBAC, config, Secrets, NetworkPolicies, PDBs,
 *    headless Services, which the provider does not wait on): nothing but the
 *    Namespace;
 * 2. pod controllers: every prerequisite (a pod never starts without its
 *    ServiceAccount or NetworkPolicy), the generator Job of each Secret they
 *    read, and the cluster-IP Services their env names (a database host):
 *    which are done only once the pods behind them are ready; a Job also
 *    waits for the controllers its `fastnext.io/runs-after` annotation names
 *    (the PostgreSQL reconfigure Job starts once the StatefulSet rolled out);
 * 3. cluster-IP and LoadBalancer Services: the controllers whose pods they
 *    select, so their wait for endpoints starts when the pods are there;
 * 4. autoscalers: their target.
 *
 * The functions are pure (objects in, keys out) so the Pulumi program and the
 * await model (tools/manifests/pulumi-await) read the same graph.
 */
import {
  templateSelector,
  annotationList,
  mapSelects,
  podReferences,
  podTemplateOf,
  serviceHostsOf,
  specOf,
  type Workload,
} from '../tools/k8s/objects';
import { CREATES_SECRETS_ANNOTATION } from '../constructs/core/generated-secret';
import { RUNS_AFTER_ANNOTATION } from '../constructs/core/workload';
import type { KubeObject } from './synth';

/** Kinds that start pods. */
export const POD_CONTROLLER_KINDS: ReadonlySet<string> = new Set([
  'Deployment',
  'StatefulSet',
  'DaemonSet',
  'Job',
  'CronJob',
]);

/** Kinds that keep pods running (a Service can select them). */
const SERVING_KINDS: ReadonlySet<string> = new Set(['Deployment', 'StatefulSet', 'DaemonSet']);

/** `Kind/name`: unique within one environment (one namespace plus cluster-scoped objects). */
export const objectKey = (o: { kind: string; metadata: { name: string } }) => `${o.kind}/${o.metadata.name}`;

interface ServiceSpec {
  selector?: Record<string, string>;
  clusterIP?: string;
  type?: string;
}

/** A Service the provider reports ready without waiting for endpoints (headless or ExternalName). */
export function awaitsNoEndpoints(service: KubeObject): boolean {
  const spec = specOf<ServiceSpec>(service);
  return spec.clusterIP === 'None' || spec.type === 'ExternalName';
}

/** Objects that must exist before any pod starts and have no await of their own. */
export function isPodPrerequisite(o: KubeObject): boolean {
  if (o.kind === 'Service') return awaitsNoEndpoints(o);
  return !POD_CONTROLLER_KINDS.has(o.kind) && o.kind !== 'HorizontalPodAutoscaler' && o.kind !== 'Namespace';
}

/** The serving workloads whose pods a Service selects. */
export function selectedWorkloads(service: KubeObject, objects: readonly KubeObject[]): Workload[] {
  const selector = templateSelector(service);
  return objects
    .filter((o) => SERVING_KINDS.has(o.kind))
    .map(podTemplateOf)
    .filter((w): w is Workload => w !== undefined && mapSelects(selector, w.labels));
}

/** Jobs that create each Secret at run time (the `fastnext.io/creates-secrets` annotation). */
export function secretCreators(objects: readonly KubeObject[]): Map<string, KubeObject> {
  const creators = new Map<string, KubeObject>();
  for (const o of objects) {
    if (o.kind !== 'Job') continue;
    for (const secret of annotationList(o, CREATES_SECRETS_ANNOTATION)) creators.set(secret, o);
  }
  return creators;
}

/**
 * Each object's dependencies (by `objectKey`) within the environment, the
 * Namespace left out (everything depends on it). `suppliedSecrets`: Secrets
 * the deploy creates from stack config; a workload waits for those instead of
 * their generator Job (which then finds them and leaves them alone).
 */
export function deployDependencies(
  objects: readonly KubeObject[],
  suppliedSecrets: readonly string[] = [],
): Map<string, string[]> {
  const namespace = objects.find((o) => o.kind === 'Namespace')?.metadata.name ?? objects[0]?.metadata.namespace ?? '';
  const byKey = new Map(objects.map((o) => [objectKey(o), o]));
  const prerequisites = objects.filter(isPodPrerequisite).map(objectKey);
  const creators = secretCreators(objects);
  const deps = new Map<string, string[]>();

  for (const o of objects) {
    if (o.kind === 'Namespace') continue;
    const key = objectKey(o);
    if (isPodPrerequisite(o)) {
      deps.set(key, []);
    } else if (POD_CONTROLLER_KINDS.has(o.kind)) {
      const w = podTemplateOf(o);
      const needs = new Set(prerequisites);
      for (const after of annotationList(o, RUNS_AFTER_ANNOTATION)) {
        if (!byKey.has(after))
          throw new Error(`${key}: ${RUNS_AFTER_ANNOTATION} names ${after}, which is not deployed`);
        needs.add(after);
      }
      if (w) {
        for (const ref of podReferences(w)) {
          if (ref.kind !== 'Secret' || suppliedSecrets.includes(ref.name)) continue;
          const creator = creators.get(ref.name);
          if (creator && creator !== o) needs.add(objectKey(creator));
        }
        for (const host of serviceHostsOf(w, namespace)) {
          const service = byKey.get(`Service/${host}`);
          if (!service || awaitsNoEndpoints(service)) continue;
          // A pod that names a Service selecting its own pods would wait for itself.
          if (selectedWorkloads(service, objects).some((s) => s.object === o)) {
            throw new Error(
              `${key} names Service '${host}', which selects its own pods: the Service waits for those pods ` +
                `and the pods for the Service. Reach its own pods through a headless Service instead.`,
            );
          }
          needs.add(objectKey(service));
        }
      }
      deps.set(key, [...needs]);
    } else if (o.kind === 'Service') {
      deps.set(
        key,
        selectedWorkloads(o, objects).map((w) => objectKey(w.object)),
      );
    } else if (o.kind === 'HorizontalPodAutoscaler') {
      const target = specOf<{ scaleTargetRef?: { kind: string; name: string } }>(o).scaleTargetRef;
      const targetKey = target && `${target.kind}/${target.name}`;
      deps.set(key, targetKey && byKey.has(targetKey) ? [targetKey] : []);
    } else {
      deps.set(key, []);
    }
  }
  return deps;
}

/**
 * Objects grouped into layers: each object's dependencies are all in earlier
 * layers. Throws on a cycle, naming it.
 */
export function dependencyLayers(deps: ReadonlyMap<string, readonly string[]>): string[][] {
  const depth = new Map<string, number>();
  const visiting: string[] = [];
  const visit = (key: string): number => {
    const known = depth.get(key);
    if (known !== undefined) return known;
    if (visiting.includes(key)) {
      const cycle = [...visiting.slice(visiting.indexOf(key)), key];
      throw new Error(`deploy order has a cycle: ${cycle.join(' -> ')}`);
    }
    visiting.push(key);
    const d = Math.max(-1, ...(deps.get(key) ?? []).filter((k) => deps.has(k)).map(visit)) + 1;
    visiting.pop();
    depth.set(key, d);
    return d;
  };
  for (const key of deps.keys()) visit(key);
  const layers: string[][] = [];
  for (const [key, d] of depth) (layers[d] ??= []).push(key);
  return layers;
}

/**
 * Provider timeouts longer than its 10-minute default, where a resource may
 * legitimately take longer. A StatefulSet that holds data (volume claim
 * templates) starts each member from a copy of the data: a PostgreSQL
 * replica's base backup of a 100 GiB database at ~100 MB/s takes ~17 minutes
 * on its own, and a rolling update restarts the members one after another,
 * each with crash recovery. 30 minutes covers that; a stuck rollout still fails.
 */
export function customTimeoutsOf(o: KubeObject): { create: string; update: string } | undefined {
  const claims = specOf<{ volumeClaimTemplates?: unknown[] }>(o).volumeClaimTemplates ?? [];
  if (o.kind === 'StatefulSet' && claims.length > 0) return { create: '30m', update: '30m' };
  return undefined;
}

/**
 * The live claims of a StatefulSet (`<template>-<name>-<ordinal>`) with the size
 * of their template: what a `pulumi up` patches them to, since Kubernetes
 * refuses a changed claim template.
 */
export function claimPatchesOf(o: KubeObject): { name: string; storage: string }[] {
  if (o.kind !== 'StatefulSet') return [];
  const spec = specOf<{
    replicas?: number;
    volumeClaimTemplates?: { metadata: { name: string }; spec?: { resources?: { requests?: { storage?: string } } } }[];
  }>(o);
  const replicas = spec.replicas ?? 1;
  return (spec.volumeClaimTemplates ?? []).flatMap((t) => {
    const storage = t.spec?.resources?.requests?.storage;
    if (!storage) return [];
    return Array.from({ length: replicas }, (_, i) => ({
      name: `${t.metadata.name}-${o.metadata.name}-${i}`,
      storage,
    }));
  });
}

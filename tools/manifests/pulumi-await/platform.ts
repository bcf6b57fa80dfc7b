/**
 * Our platform's input to the await model: the runtime needs of our own pods
 * that no manifest field states, and the two ways to get the resources (the
 * Pulumi mock harness' registrations, or synthesized objects with the deploy
 * order of stacks/deploy-order.ts).
 *
 * Needs the model derives from the manifests by itself:
 * - pods start once their ServiceAccount, ConfigMaps and Secrets exist; a
 *   generated Secret exists once its generator Job (`fastnext.io/creates-secrets`)
 *   completed: PostgreSQL, Redis, Grafana and the API read generated Secrets;
 * - pods are ready once the Services their env names exist, and the pods
 *   behind a cluster-IP one are ready: PostgreSQL replicas need the primary
 *   (PRIMARY_HOST, base backup); the API's migrate init container and
 *   readiness need the primary (DATABASE_URL).
 *
 * The API does not need Redis to be ready: it connects to the cluster in the
 * background and serves from PostgreSQL until then (service/src/plugins/redis.ts).
 */
import { PatroniCluster } from '../../../constructs/postgres/patroni-cluster';
import { RedisCluster } from '../../../constructs/redis/redis-cluster';
import { objectKey } from '../../../stacks/deploy-order';
import type { KubeObject } from '../../../stacks/synth';
import type { ModelResource, RuntimeNeed } from './model';

const NAME_LABEL = 'app.kubernetes.io/name';
const component = (name: string) => ({ matchLabels: { [NAME_LABEL]: name } });

export const PLATFORM_RUNTIME_NEEDS: readonly RuntimeNeed[] = [
  {
    pods: component(RedisCluster.CREATE_COMPONENT),
    needs: { pods: component(RedisCluster.COMPONENT), state: 'started' },
    why: 'the create Job joins every node it reaches through the headless Service (it publishes not-ready pods)',
  },
  {
    pods: component(RedisCluster.COMPONENT),
    needs: { pods: component(RedisCluster.CREATE_COMPONENT), state: 'complete' },
    why: "Redis readiness requires 'cluster_state:ok', which only the cluster-create Job establishes",
  },
  {
    pods: component(`${PatroniCluster.COMPONENT}-reconfigure`),
    needs: { pods: component(PatroniCluster.COMPONENT), state: 'ready' },
    why: 'the reconfigure Job waits for a leader and every member streaming before it changes anything',
  },
];

/** A Pulumi registration as the mock harness records it (the fields the model reads). */
export interface RegistrationLike {
  urn: string;
  type: string;
  custom: boolean;
  dependencies: string[];
  inputs: Record<string, unknown>;
}

/** Kubernetes resources of a program run, with their `dependsOn` as registered. */
export function fromRegistrations(registrations: readonly RegistrationLike[]): ModelResource[] {
  const kube = registrations.filter((r) => r.custom && r.type.startsWith('kubernetes:'));
  const urns = new Set(kube.map((r) => r.urn));
  return kube.map((r) => ({
    id: r.urn,
    object: r.inputs as unknown as KubeObject,
    dependsOn: r.dependencies.filter((d) => urns.has(d)),
  }));
}

/** Synthesized objects with a dependency map by `objectKey` (the Namespace first, everything on it). */
export function fromObjects(
  objects: readonly KubeObject[],
  deps: ReadonlyMap<string, readonly string[]>,
): ModelResource[] {
  const namespace = objects.find((o) => o.kind === 'Namespace');
  return objects.map((o) => ({
    id: objectKey(o),
    object: o,
    dependsOn: o === namespace ? [] : [...(namespace ? [objectKey(namespace)] : []), ...(deps.get(objectKey(o)) ?? [])],
  }));
}

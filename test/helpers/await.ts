/** Shared by the Pulumi tests that run the await model (tools/manifests/pulumi-await). */
import { objectKey } from '../../stacks/deploy-order';
import type { KubeObject } from '../../stacks/synth';
import type { ModelResource, RolloutResult } from '../../tools/manifests/pulumi-await/model';
import { fromObjects, PLATFORM_RUNTIME_NEEDS } from '../../tools/manifests/pulumi-await/platform';
import type { ProgramRun } from '../pulumi-harness';

export const AWAIT_OPTIONS = { runtimeNeeds: PLATFORM_RUNTIME_NEEDS };

/** URN -> `Kind/name` of a run's Kubernetes registrations. */
export const nameOf = (run: ProgramRun) =>
  new Map(
    run.registrations
      .filter((r) => r.custom && r.type.startsWith('kubernetes:'))
      .map((r) => [r.urn, objectKey(r.inputs as KubeObject)]),
  );

/** The blocked resources of a rollout as `Kind/name (phase)`. */
export const readable = (result: RolloutResult, names: Map<string, string>) =>
  result.blocked.map((b) => `${names.get(b.id) ?? b.id} (${b.phase})`).sort();

/** The graph before the fix: controllers waited for every other object, Services included. */
export function oldLayering(objects: KubeObject[]): ModelResource[] {
  const isController = (o: KubeObject) => ['Deployment', 'StatefulSet', 'Job', 'CronJob'].includes(o.kind);
  const others = objects.filter((o) => o.kind !== 'Namespace' && !isController(o)).map(objectKey);
  return fromObjects(objects, new Map(objects.map((o) => [objectKey(o), isController(o) ? others : []])));
}

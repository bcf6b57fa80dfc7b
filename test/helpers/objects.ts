/** Helpers to look into synthesized objects in tests. */
import { loadEnvironment, environmentNames } from '../../stacks/environments';
import { type KubeObject, synthObjects } from '../../stacks/synth';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Obj = KubeObject & Record<string, any>;

const cache = new Map<string, Obj[]>();

/** The synthesized objects of a registered environment (memoized per test file). */
export function objectsOf(env: string): Obj[] {
  if (!cache.has(env)) cache.set(env, synthObjects(loadEnvironment(env)) as Obj[]);
  return cache.get(env)!;
}

export const ENVS = environmentNames();

export function ofKind(objects: Obj[], kind: string): Obj[] {
  return objects.filter((o) => o.kind === kind);
}

export function find(objects: Obj[], kind: string, name: string): Obj {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`no ${kind}/${name} in ${objects.map((x) => `${x.kind}/${x.metadata.name}`).join(', ')}`);
  return o;
}

/** The Job that generates Secret `secretName` (its name carries a hash of its spec). */
export function generatorJob(objects: Obj[], secretName: string): Obj {
  const jobs = objects.filter(
    (o) => o.kind === 'Job' && o.metadata.annotations?.['fastnext.io/creates-secrets'] === secretName,
  );
  if (jobs.length !== 1) throw new Error(`expected one generator Job of Secret '${secretName}', found ${jobs.length}`);
  expect(jobs[0].metadata.name).toMatch(new RegExp(`^${secretName}-generator-[0-9a-f]{8}$`));
  return jobs[0];
}

/** A pod template and the object that owns it. */
export interface PodTemplate {
  owner: Obj;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  spec: any;
}

/** Every pod template: Deployments, StatefulSets, Jobs, CronJobs, DaemonSets. */
export function podTemplates(objects: Obj[]): PodTemplate[] {
  const out: PodTemplate[] = [];
  for (const o of objects) {
    const t =
      o.kind === 'CronJob'
        ? o.spec.jobTemplate.spec.template
        : ['Deployment', 'StatefulSet', 'Job', 'DaemonSet'].includes(o.kind)
          ? o.spec.template
          : undefined;
    if (t)
      out.push({
        owner: o,
        labels: t.metadata?.labels ?? {},
        annotations: t.metadata?.annotations ?? {},
        spec: t.spec,
      });
  }
  return out;
}

/** All containers (init included) of a pod spec. */
export function containersOf(spec: any): any[] {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
}

/** Whether a label selector (matchLabels only, as we generate) selects these labels. */
export function selects(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

export function label(o: Obj): string {
  return `${o.kind}/${o.metadata.name}`;
}

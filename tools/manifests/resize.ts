/**
 * `npm run resize -- --env <env> [--dir dist/<env>] [--apply]`: grows the live
 * volumes of an environment to the sizes of its StatefulSets' claim templates,
 * the kubectl way. Kubernetes refuses a changed claim template (an immutable
 * field), and a template only applies to new claims, so per StatefulSet:
 *
 * 1. patch each claim `<template>-<statefulset>-<ordinal>` to the new size;
 * 2. wait until the volume and its file system have grown (the claim's
 *    `status.capacity.storage` reaches the size; `FileSystemResizePending` clears);
 * 3. delete the StatefulSet with `--cascade=orphan` (its pods and claims stay)
 *    and apply it again, so its template matches.
 *
 * Without `--apply` it prints the commands. With `--apply` it runs them through
 * `kubectl` (current context), skipping claims already at the size. The
 * StorageClass must allow expansion (`allowVolumeExpansion: true`); see docs/day-2.md.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { KubeObject } from '../k8s/objects';
import { claimPatchesOf, objectKey } from '../../stacks/deploy-order';
import { readManifestDir } from '../../stacks/manifests';
import { parseQuantity } from '../../stacks/config';

/** One step: a kubectl command line (argv after `kubectl`) and what it is for. */
export interface ResizeStep {
  readonly argv: readonly string[];
  readonly why: string;
  /** The claim this step grows, and its target size (patch and wait steps). */
  readonly claim?: { readonly name: string; readonly storage: string };
}

/**
 * The steps for every StatefulSet of `objects` with claim templates, in order;
 * `grown` picks the StatefulSets to resize (default: all of them).
 */
export function resizePlan(
  objects: readonly KubeObject[],
  manifestOf: (o: KubeObject) => string,
  grown: (o: KubeObject) => boolean = () => true,
): ResizeStep[] {
  const steps: ResizeStep[] = [];
  for (const o of objects) {
    const claims = claimPatchesOf(o);
    if (!claims.length || !grown(o)) continue;
    const ns = o.metadata.namespace ?? 'default';
    for (const c of claims) {
      const patch = JSON.stringify({ spec: { resources: { requests: { storage: c.storage } } } });
      steps.push({ argv: ['-n', ns, 'patch', 'pvc', c.name, '-p', patch], why: `grow ${c.name}`, claim: c });
    }
    for (const c of claims) {
      steps.push({
        argv: [
          '-n',
          ns,
          'wait',
          `pvc/${c.name}`,
          `--for=jsonpath={.status.capacity.storage}=${c.storage}`,
          '--timeout=15m',
        ],
        why: `wait until ${c.name} (volume and file system) has ${c.storage}`,
        claim: c,
      });
    }
    steps.push({
      argv: ['-n', ns, 'delete', 'statefulset', o.metadata.name, '--cascade=orphan'],
      why: `remove ${objectKey(o)} but keep its pods and claims`,
    });
    steps.push({ argv: ['apply', '-f', manifestOf(o)], why: `re-create ${objectKey(o)} with the new claim template` });
    steps.push({
      argv: ['-n', ns, 'rollout', 'status', `statefulset/${o.metadata.name}`, '--timeout=30m'],
      why: `the re-created ${objectKey(o)} has adopted its pods`,
    });
  }
  return steps;
}

/** A claim's current size from the cluster, or undefined when it does not exist. */
function liveSize(ns: string, claim: string): number | undefined {
  try {
    const out = execFileSync('kubectl', ['-n', ns, 'get', 'pvc', claim, '-o', 'jsonpath={.status.capacity.storage}'], {
      encoding: 'utf8',
    });
    return parseQuantity(out.trim());
  } catch {
    return undefined;
  }
}

/** Whether the live StatefulSet's claim templates are smaller than `o`'s (true when it cannot be read). */
function liveTemplateSmaller(o: KubeObject): boolean {
  const ns = o.metadata.namespace ?? 'default';
  try {
    const out = execFileSync(
      'kubectl',
      [
        '-n',
        ns,
        'get',
        'statefulset',
        o.metadata.name,
        '-o',
        'jsonpath={.spec.volumeClaimTemplates[*].spec.resources.requests.storage}',
      ],
      { encoding: 'utf8' },
    );
    const live = out.trim().split(/\s+/).map(parseQuantity);
    const wanted = templateSizes(o);
    return wanted.some((w, i) => !(live[i] >= w));
  } catch {
    return true;
  }
}

/** Sizes of a StatefulSet's claim templates, in bytes. */
function templateSizes(o: KubeObject): number[] {
  const templates =
    (o.spec as { volumeClaimTemplates?: { spec?: { resources?: { requests?: { storage?: string } } } }[] })
      .volumeClaimTemplates ?? [];
  return templates.map((t) => parseQuantity(t.spec?.resources?.requests?.storage ?? ''));
}

/** StatefulSets whose claim templates grew since `before` (the previous manifests). */
export function grownSince(before: readonly KubeObject[]): (o: KubeObject) => boolean {
  return (o) => {
    const old = before.find((b) => b.kind === o.kind && b.metadata.name === o.metadata.name);
    if (!old) return false;
    const was = templateSizes(old);
    return templateSizes(o).some((size, i) => size > (was[i] ?? Infinity));
  };
}

export function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      env: { type: 'string' },
      dir: { type: 'string' },
      from: { type: 'string' },
      apply: { type: 'boolean', default: false },
    },
  });
  if (!values.env && !values.dir) {
    console.error('resize: name the environment (--env prod) or its manifests (--dir dist/prod)');
    return 2;
  }
  const dir = values.dir ?? join('dist', values.env!);
  const objects = readManifestDir(dir);
  // Files are named NNN-<kind>-<name>.yaml (stacks/manifests.ts).
  const fileOf = (o: KubeObject) => {
    const f = readdirSync(dir).find((x) => x.endsWith(`-${o.kind.toLowerCase()}-${o.metadata.name}.yaml`));
    if (!f) throw new Error(`resize: no manifest of ${objectKey(o)} in ${dir}`);
    return join(dir, f);
  };
  // --from: the manifests deployed now (e.g. the previous dist/): only what grew since. --apply asks the cluster.
  const grown = values.from ? grownSince(readManifestDir(values.from)) : values.apply ? liveTemplateSmaller : undefined;
  const plan = resizePlan(objects, fileOf, grown);
  if (plan.length === 0) {
    console.log(`resize: no claim template of ${dir} grew; nothing to do`);
    return 0;
  }
  if (!values.apply) {
    console.log(`# Grow the volumes of ${dir} to their claim templates' sizes (run with --apply to execute):`);
    for (const s of plan)
      console.log(`kubectl ${s.argv.map((a) => (/^[\w./:=@,-]+$/.test(a) ? a : `'${a}'`)).join(' ')}   # ${s.why}`);
    return 0;
  }
  for (const s of plan) {
    if (s.claim && s.argv.includes('patch')) {
      const ns = s.argv[1];
      const size = liveSize(ns, s.claim.name);
      if (size !== undefined && size >= parseQuantity(s.claim.storage)) {
        console.log(`skip: ${s.claim.name} already has ${s.claim.storage} or more`);
        continue;
      }
    }
    console.log(`$ kubectl ${s.argv.join(' ')}   # ${s.why}`);
    execFileSync('kubectl', [...s.argv], { stdio: 'inherit' });
  }
  return 0;
}

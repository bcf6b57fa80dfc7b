/**
 * Object-aware manifest diff (what dyff does for YAML): objects are paired by
 * apiVersion/kind/namespace/name; inside a pair only changed paths are
 * reported; arrays of named items (containers, env, ports, volumes, mounts)
 * are matched by name, so a reorder or an insertion is not "everything after
 * index 2 changed". Secret `data`/`stringData` values never leave this module:
 * their changes carry no old or new value.
 */
import type { KubeObject } from '../../../stacks/synth';
import { keyOf, type ObjectRef, objectRef } from '../policy/engine';
import { type ImmutableFinding, immutableFindings } from './immutable';
import { type ApplyNote, applyNotes } from './postgres-parameters';

export type ChangeKind = 'changed' | 'added' | 'removed' | 'reordered';

export interface Change {
  /** e.g. `spec.template.spec.containers[name=api].image`, `data["nginx.conf"]`. */
  path: string;
  kind: ChangeKind;
  old?: unknown;
  new?: unknown;
  /** A Secret value: old and new are withheld. */
  redacted?: true;
}

export interface ObjectChange {
  object: ObjectRef;
  changes: Change[];
  /** Changes Kubernetes refuses in place (tools/manifests/diff/immutable.ts); absent when none. */
  immutable?: ImmutableFinding[];
  /** How a change is applied where that is not obvious (a PostgreSQL parameter: reload or restart); absent when none. */
  notes?: ApplyNote[];
}

export interface EnvironmentDiff {
  added: ObjectRef[];
  removed: ObjectRef[];
  changed: ObjectChange[];
}

type Json = unknown;
const isObject = (v: Json): v is Record<string, Json> => typeof v === 'object' && v !== null && !Array.isArray(v);
/**
 * Fields whose value identifies an array item, tried in order (the first one unique in both arrays wins).
 * `metadata.name` names a StatefulSet's volume claim templates; it is written `[name=…]` in paths.
 */
const ITEM_KEYS = ['name', 'metadata.name', 'mountPath', 'containerPort', 'port', 'key', 'topologyKey'];
const itemId = (item: unknown, key: string): unknown =>
  key.split('.').reduce<unknown>((v, k) => (isObject(v) ? v[k] : undefined), item);
const keyLabel = (key: string) => key.split('.').at(-1)!;
const canonical = (v: Json): string =>
  JSON.stringify(v, (_k, val: Json) =>
    isObject(val)
      ? Object.fromEntries(
          Object.keys(val)
            .sort()
            .map((k) => [k, val[k]]),
        )
      : val,
  );
const equal = (a: Json, b: Json) => canonical(a) === canonical(b);

/** `.key`, or `["key"]` when the key has dots or slashes (labels, annotations, file names). */
export function keySegment(key: string): string {
  return /^[A-Za-z_$][\w$-]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}
const join = (path: string, key: string) => (path ? `${path}${keySegment(key)}` : keySegment(key).replace(/^\./, ''));

/** The field that names every item of both arrays uniquely, if any. */
function itemKey(a: Json[], b: Json[]): string | undefined {
  return ITEM_KEYS.find((k) =>
    [a, b].every((list) => {
      const ids = list.map((item) => itemId(item, k));
      return ids.every((id) => typeof id === 'string' || typeof id === 'number') && new Set(ids).size === ids.length;
    }),
  );
}

function diffArrays(a: Json[], b: Json[], path: string, out: Change[]): void {
  const key = a.length && b.length ? itemKey(a, b) : undefined;
  if (key) {
    const id = (item: Json) => String(itemId(item, key));
    const seg = (item: Json) => `${path}[${keyLabel(key)}=${id(item)}]`;
    const before = new Map(a.map((item) => [id(item), item]));
    const after = new Map(b.map((item) => [id(item), item]));
    for (const item of a) if (!after.has(id(item))) out.push({ path: seg(item), kind: 'removed', old: item });
    for (const item of b) {
      const old = before.get(id(item));
      if (old === undefined) out.push({ path: seg(item), kind: 'added', new: item });
      else diffValues(old, item, seg(item), out);
    }
    const common = (list: Json[], other: Map<string, Json>) => list.map(id).filter((n) => other.has(n));
    const orderBefore = common(a, after);
    const orderAfter = common(b, before);
    if (orderBefore.join('\0') !== orderAfter.join('\0'))
      out.push({ path, kind: 'reordered', old: orderBefore, new: orderAfter });
    return;
  }
  if (a.every((x) => !isObject(x) && !Array.isArray(x)) && b.every((x) => !isObject(x) && !Array.isArray(x))) {
    // Lists of scalars (command, args, verbs) are read as a whole: one change, old → new.
    out.push({ path, kind: 'changed', old: a, new: b });
    return;
  }
  if (a.length === b.length && equal([...a].map(canonical).sort(), [...b].map(canonical).sort())) {
    out.push({ path, kind: 'reordered', old: a.map((_, i) => i), new: b.map((x) => a.findIndex((y) => equal(x, y))) });
    return;
  }
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (i >= b.length) out.push({ path: `${path}[${i}]`, kind: 'removed', old: a[i] });
    else if (i >= a.length) out.push({ path: `${path}[${i}]`, kind: 'added', new: b[i] });
    else diffValues(a[i], b[i], `${path}[${i}]`, out);
  }
}

function diffValues(a: Json, b: Json, path: string, out: Change[]): void {
  if (equal(a, b)) return;
  if (isObject(a) && isObject(b)) {
    for (const k of Object.keys(a)) if (!(k in b)) out.push({ path: join(path, k), kind: 'removed', old: a[k] });
    for (const k of Object.keys(b)) {
      if (!(k in a)) out.push({ path: join(path, k), kind: 'added', new: b[k] });
      else diffValues(a[k], b[k], join(path, k), out);
    }
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    diffArrays(a, b, path, out);
    return;
  }
  out.push({ path, kind: 'changed', old: a, new: b });
}

const SECRET_FIELDS = ['data', 'stringData'];

/** Changes between two versions of one object; Secret values reported by key only. */
export function diffObject(a: KubeObject, b: KubeObject): Change[] {
  const out: Change[] = [];
  if (a.kind !== 'Secret' || b.kind !== 'Secret') {
    diffValues(a, b, '', out);
    return out;
  }
  const strip = (o: KubeObject) => Object.fromEntries(Object.entries(o).filter(([k]) => !SECRET_FIELDS.includes(k)));
  diffValues(strip(a), strip(b), '', out);
  for (const field of SECRET_FIELDS) {
    const before = (a[field] ?? {}) as Record<string, Json>;
    const after = (b[field] ?? {}) as Record<string, Json>;
    for (const k of new Set([...Object.keys(before), ...Object.keys(after)])) {
      const kind: ChangeKind | undefined = !(k in after)
        ? 'removed'
        : !(k in before)
          ? 'added'
          : before[k] !== after[k]
            ? 'changed'
            : undefined;
      if (kind) out.push({ path: join(field, k), kind, redacted: true });
    }
  }
  return out;
}

/** Pairs the objects of two versions of an environment and diffs each pair. */
export function diffEnvironment(base: readonly KubeObject[], head: readonly KubeObject[]): EnvironmentDiff {
  const before = new Map(base.map((o) => [keyOf(objectRef(o)), o]));
  const after = new Map(head.map((o) => [keyOf(objectRef(o)), o]));
  const result: EnvironmentDiff = { added: [], removed: [], changed: [] };
  for (const [key, o] of before) if (!after.has(key)) result.removed.push(objectRef(o));
  for (const [key, o] of after) {
    const old = before.get(key);
    if (!old) {
      result.added.push(objectRef(o));
      continue;
    }
    const changes = diffObject(old, o);
    if (!changes.length) continue;
    const immutable = immutableFindings(o.kind, o.metadata.name, changes);
    const notes = applyNotes(old, o);
    result.changed.push({
      object: objectRef(o),
      changes,
      ...(immutable.length ? { immutable } : {}),
      ...(notes.length ? { notes } : {}),
    });
  }
  return result;
}

export const isEmpty = (d: EnvironmentDiff) => d.added.length + d.removed.length + d.changed.length === 0;

/** How many changes Kubernetes would refuse in place. */
export const immutableCount = (d: EnvironmentDiff) => d.changed.reduce((n, c) => n + (c.immutable?.length ?? 0), 0);

/**
 * How a change of PostgreSQL's configuration reaches the running members, for the diff. The
 * parameters live in Patroni's dynamic configuration (`bootstrap.dcs` of the shipped
 * patroni.yml); the reconfigure Job applies a change: by a reload where `pg_settings.context`
 * allows it, else by restarting the replicas one at a time and switching over
 * (constructs/postgres/patroni-reconfigure.ts). The diff says which, per parameter, from the
 * same table the construct validates with (constructs/postgres/pg-settings.ts).
 */
import { parse } from 'yaml';
import { applyPathText } from '../../../constructs/postgres/pg-settings';
import type { KubeObject } from '../../k8s/objects';

/** A line the diff prints under a change: how it will be applied. */
export interface ApplyNote {
  /** The changed path of the object the note explains (`data["patroni.yml"]`). */
  readonly path: string;
  readonly message: string;
}

const PATRONI_FILE = 'patroni.yml';
const PATH = `data[${JSON.stringify(PATRONI_FILE)}]`;

type Dcs = Record<string, unknown> & { postgresql?: { parameters?: Record<string, unknown> } };

/** `bootstrap.dcs` of a ConfigMap's patroni.yml, or undefined when it has none (or it does not parse). */
function dcsOf(o: KubeObject): Dcs | undefined {
  const text = (o.data as Record<string, unknown> | undefined)?.[PATRONI_FILE];
  if (typeof text !== 'string') return undefined;
  try {
    return (parse(text) as { bootstrap?: { dcs?: Dcs } } | null)?.bootstrap?.dcs;
  } catch {
    return undefined;
  }
}

const show = (v: unknown) => (v === undefined ? '(default)' : JSON.stringify(v));
const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * One note per changed PostgreSQL parameter and per changed Patroni setting of a ConfigMap
 * that carries patroni.yml; none for other objects.
 */
export function applyNotes(before: KubeObject, after: KubeObject): ApplyNote[] {
  if (after.kind !== 'ConfigMap') return [];
  const [a, b] = [dcsOf(before), dcsOf(after)];
  if (!a || !b) return [];
  const notes: ApplyNote[] = [];
  const pa = a.postgresql?.parameters ?? {};
  const pb = b.postgresql?.parameters ?? {};
  for (const name of [...new Set([...Object.keys(pa), ...Object.keys(pb)])].sort()) {
    if (same(pa[name], pb[name])) continue;
    notes.push({
      path: PATH,
      message: `parameter ${name}: ${show(pa[name])} → ${show(pb[name])}: ${applyPathText(name)}`,
    });
  }
  const settings = (d: Dcs) => Object.fromEntries(Object.entries(d).filter(([k]) => k !== 'postgresql'));
  const [sa, sb] = [settings(a), settings(b)];
  for (const key of [...new Set([...Object.keys(sa), ...Object.keys(sb)])].sort()) {
    if (same(sa[key], sb[key])) continue;
    notes.push({
      path: PATH,
      message: `Patroni setting ${key}: ${show(sa[key])} → ${show(sb[key])}: applied by the reconfigure Job (Patroni's PATCH /config), no restart`,
    });
  }
  return notes;
}

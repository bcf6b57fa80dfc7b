/**
 * Prop checks of the constructs, cdk8s-plus style: the error names the prop,
 * the value and what is allowed (`'minReplicas' (5) must be <= 'maxReplicas' (2)`).
 * The environment schema (stacks/config.ts) reuses the predicates, so a rule
 * is written once.
 */

/** A DNS-1123 label: lowercase alphanumerics and '-', starting and ending with one, at most 63. */
export const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** A DNS-1123 subdomain: labels joined by dots. */
export const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Throws `'prop' (value) message`. */
export function fail(prop: string, value: unknown, message: string): never {
  const shown = typeof value === 'string' ? value : JSON.stringify(value);
  throw new Error(`'${prop}' (${shown}) ${message}`);
}

/** An integer within [min, max]. */
export function checkInt(prop: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    fail(
      prop,
      value,
      max === Number.MAX_SAFE_INTEGER ? `must be an integer >= ${min}` : `must be an integer from ${min} to ${max}`,
    );
  }
}

/** A DNS-1123 label (object names, Secret names). */
export function checkName(prop: string, value: string): void {
  if (value.length > 63 || !DNS1123_LABEL.test(value)) {
    fail(prop, value, "must be a DNS-1123 label: lowercase letters, digits and '-', at most 63 characters");
  }
}

/** Why an image reference is not pinned to a tag or digest, or undefined. */
export function imageProblem(image: string): string | undefined {
  if (image.includes('@sha256:')) return undefined;
  const lastSegment = image.split('/').pop() ?? '';
  const tag = lastSegment.includes(':') ? lastSegment.slice(lastSegment.indexOf(':') + 1) : '';
  if (!tag) return 'must carry a tag or digest (e.g. repo/name:1.2.3 or repo/name@sha256:…)';
  if (tag === 'latest') return "must not use the 'latest' tag: pin a version (e.g. repo/name:1.2.3)";
  return undefined;
}

/** A container image pinned to a tag or digest. */
export function checkImage(prop: string, image: string): void {
  const problem = imageProblem(image);
  if (problem) fail(prop, image, problem);
}

/** Whether version `v` (major, minor, patch) comes before `than`. */
export function versionBefore(v: readonly number[], than: readonly number[]): boolean {
  for (let i = 0; i < than.length; i++) if ((v[i] ?? 0) !== than[i]) return (v[i] ?? 0) < than[i];
  return false;
}

/** A non-empty list (an empty peer list in a NetworkPolicy rule would admit every pod). */
export function checkNotEmpty(prop: string, value: readonly unknown[], fix: string): void {
  if (value.length === 0) throw new Error(`'${prop}' is empty: ${fix}`);
}

/** Each key of `defaults` from `props` when set there, else the default (the settings alone, no other prop). */
export function withDefaults<T extends object>(defaults: Required<T>, props: Partial<T>): Required<T> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(defaults) as (keyof T & string)[]) out[key] = props[key] ?? defaults[key];
  return out as Required<T>;
}

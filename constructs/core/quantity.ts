/** Kubernetes resource quantities and the requests/limits every container carries. */
import { k8s } from 'cdk8s-plus-28';
import { fail } from './validate';

/** A Kubernetes resource quantity, non-negative (e.g. `250m`, `1`, `512Mi`, `10Gi`). */
export const QUANTITY = /^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;

const SUFFIX: Record<string, number> = {
  '': 1,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** Parses a Kubernetes quantity into a number of base units (cores or bytes). NaN if malformed. */
export function parseQuantity(q: string): number {
  const m = QUANTITY.exec(q);
  if (!m) return NaN;
  return Number(m[1]) * SUFFIX[m[3] ?? ''];
}

/** Requests and limits of a container, as quantities (`cpu: '250m'`, `memory: '512Mi'`). */
export interface Resources {
  readonly requests: { readonly cpu: string; readonly memory: string };
  readonly limits: { readonly cpu: string; readonly memory: string };
}

/** Why a quantity is not a positive Kubernetes quantity, or undefined. */
export function quantityProblem(q: string): string | undefined {
  return QUANTITY.test(q) && parseQuantity(q) > 0
    ? undefined
    : "must be a positive Kubernetes quantity such as '250m', '512Mi' or '10Gi'";
}

/** Why requests exceed limits (one line per resource), or nothing. `[path, message]` pairs. */
export function resourcesProblems(r: Resources): [string, string][] {
  const out: [string, string][] = [];
  for (const kind of ['cpu', 'memory'] as const) {
    for (const side of ['requests', 'limits'] as const) {
      const problem = quantityProblem(r[side][kind]);
      if (problem) out.push([`${side}.${kind}`, problem]);
    }
    if (parseQuantity(r.requests[kind]) > parseQuantity(r.limits[kind])) {
      out.push([`requests.${kind}`, `must be <= limits.${kind} (${r.limits[kind]})`]);
    }
  }
  return out;
}

/** Throws the first problem of a `resources` prop, naming it. */
export function checkResources(prop: string, r: Resources): void {
  const [problem] = resourcesProblems(r);
  if (problem) fail(`${prop}.${problem[0]}`, valueAt(r, problem[0]), problem[1]);
}

function valueAt(r: Resources, path: string): string {
  const [side, kind] = path.split('.') as ['requests' | 'limits', 'cpu' | 'memory'];
  return r[side][kind];
}

/** Requests and limits as the Kubernetes API takes them. */
export function resourcesOf(r: Resources): k8s.ResourceRequirements {
  const q = (v: string) => k8s.Quantity.fromString(v);
  return {
    requests: { cpu: q(r.requests.cpu), memory: q(r.requests.memory) },
    limits: { cpu: q(r.limits.cpu), memory: q(r.limits.memory) },
  };
}

/**
 * How a check is defined when it judges one container or one pod at a time: the
 * rule says what is wrong; the definer walks the workloads, names the container
 * and builds the path to blame.
 */
import { type Container, type SecurityContext, type Workload, pathIn } from '../../../k8s/objects';
import type { Check, CheckInfo, PolicyContext, Violation } from '../types';

/** A container as a rule sees it. */
export interface ContainerSite {
  readonly container: Container;
  /**
   * The security context in force: the container's fields, and the pod's where the
   * container sets none (the precedence Kubernetes applies to the shared fields).
   */
  readonly securityContext: SecurityContext;
  /** An init container. */
  readonly init: boolean;
  readonly workload: Workload;
  readonly ctx: PolicyContext;
}

/** What a container rule finds. */
export interface ContainerFinding {
  /** Where, below the container (e.g. `securityContext.runAsUser`); none: the container itself. */
  readonly field?: string;
  /** What is wrong, as it reads after "container '<name>' ". */
  readonly problem: string;
}

export type ContainerRule = (site: ContainerSite) => ContainerFinding | readonly ContainerFinding[] | undefined;

/** The container's security context over the pod's: a container field left unset takes the pod's. */
function inForce(container: Container, pod: SecurityContext): SecurityContext {
  const own = Object.entries(container.securityContext ?? {}).filter(([, v]) => v !== undefined && v !== null);
  return { ...pod, ...Object.fromEntries(own) };
}

/** A check that evaluates `rule` on every container and init container of every workload. */
export function containerCheck(info: CheckInfo, rule: ContainerRule): Check {
  return {
    ...info,
    run: (ctx: PolicyContext) =>
      ctx.eachContainer(({ container, path, init }, workload) => {
        const securityContext = inForce(container, workload.template.spec.securityContext ?? {});
        const found = rule({ container, securityContext, init, workload, ctx });
        return (Array.isArray(found) ? found : found ? [found] : []).map((f: ContainerFinding) => ({
          path: f.field ? `${path}.${f.field}` : path,
          message: `container '${container.name}' ${f.problem}`,
        }));
      }),
  };
}

/** A check that evaluates `rule` on the pod template of every workload. */
export function podCheck(info: CheckInfo, rule: (w: Workload) => Omit<Violation, 'object'>[]): Check {
  return {
    ...info,
    run: (ctx: PolicyContext) => ctx.workloads.flatMap((w) => rule(w).map((v) => ({ object: w.object, ...v }))),
  };
}

/** Path of a pod-spec field of `w`. */
export const specPath = (w: Workload, field: string) => pathIn(w, `spec.${field}`);

/**
 * The vocabulary of the policy stage: a check, what it reports, and the context
 * every check reads (the objects, their pod templates, and the options).
 */
import {
  type Container,
  type KubeObject,
  type LabelSelector,
  type Workload,
  SCALABLE_KINDS,
  containersOf,
  selects,
  specOf,
  workloadsOf,
} from '../../k8s/objects';

export type Severity = 'error' | 'warning';

/** A check's identity and documentation; the fix is shown under every finding. */
export interface CheckInfo {
  /** Stable id, used in reports, SARIF rule ids and opt-out annotations. */
  readonly id: string;
  readonly severity: Severity;
  /** One line: what the check wants and why. */
  readonly explanation: string;
  /** One line: how to fix a finding. */
  readonly fix: string;
}

/** What a check returns: the object to blame, where in it, and what is wrong. */
export interface Violation {
  readonly object: KubeObject;
  /** JSON path inside the object, e.g. `spec.template.spec.containers[name=api].resources`. */
  readonly path?: string;
  readonly message: string;
}

export interface Check extends CheckInfo {
  run(ctx: PolicyContext): Violation[];
}

export interface PolicyOptions {
  /**
   * Whether the environment is production (stricter HPA rules). When undefined, a
   * namespace is production if its Namespace object carries the label
   * `fastnext.io/production: "true"`.
   */
  readonly production?: boolean;
}

/**
 * Annotation on a Job or workload: Secrets it creates at run time (comma-separated
 * names). Defined once, by the construct that writes it (GeneratedSecret).
 */
export { CREATES_SECRETS_ANNOTATION, EXTERNAL_SECRETS_ANNOTATION } from '../../../constructs/core/generated-secret';
/** Opt-out annotation prefix: `fastnext.io/policy-skip.<check-id>: "<reason>"`. */
export const SKIP_ANNOTATION_PREFIX = 'fastnext.io/policy-skip.';
/** Namespace label that marks a namespace as production when no option says otherwise (written by Platform). */
import { PRODUCTION_LABEL } from '../../../constructs/core/labels';
export { PRODUCTION_LABEL };

export interface HpaSpec {
  minReplicas?: number;
  maxReplicas: number;
  scaleTargetRef: { apiVersion?: string; kind: string; name: string };
}

export class PolicyContext {
  readonly workloads: Workload[];
  private readonly hpas: KubeObject[];

  constructor(
    readonly objects: readonly KubeObject[],
    private readonly options: PolicyOptions = {},
  ) {
    this.workloads = workloadsOf(objects);
    this.hpas = this.ofKind('HorizontalPodAutoscaler');
  }

  ofKind(kind: string): KubeObject[] {
    return this.objects.filter((o) => o.kind === kind);
  }

  /** The object of `kind` named `name` in `namespace`, if the output holds one. */
  find(kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.objects.find((o) => o.kind === kind && o.metadata.name === name && o.metadata.namespace === namespace);
  }

  /** Objects of `kind` in the workload's namespace whose `spec[field]` LabelSelector selects its pods (PDBs, NetworkPolicies). */
  selecting(kind: string, w: Workload, field: 'selector' | 'podSelector'): KubeObject[] {
    return this.ofKind(kind).filter(
      (o) =>
        o.metadata.namespace === w.object.metadata.namespace &&
        selects(specOf<Record<string, LabelSelector | undefined>>(o)[field], w.labels),
    );
  }

  /** Pod templates in `o`'s namespace that `o`'s `spec[field]` LabelSelector selects (the reverse of `selecting`). */
  selectedBy(o: KubeObject, field: 'selector' | 'podSelector'): Workload[] {
    const selector = specOf<Record<string, LabelSelector | undefined>>(o)[field];
    return this.workloads.filter(
      (w) => w.object.metadata.namespace === o.metadata.namespace && selects(selector, w.labels),
    );
  }

  /** Runs `rule` on every container and init container of every pod template; blames the workload. */
  eachContainer(
    rule: (c: { container: Container; path: string; init: boolean }, w: Workload) => Omit<Violation, 'object'>[],
  ): Violation[] {
    return this.workloads.flatMap((w) =>
      containersOf(w).flatMap((c) => rule(c, w).map((v) => ({ object: w.object, ...v }))),
    );
  }

  /** The HPA that scales `o`, if any. */
  hpaFor(o: KubeObject): HpaSpec | undefined {
    const hpa = this.hpas.find((h) => {
      const ref = specOf<HpaSpec>(h).scaleTargetRef;
      return h.metadata.namespace === o.metadata.namespace && ref?.kind === o.kind && ref?.name === o.metadata.name;
    });
    return hpa ? specOf<HpaSpec>(hpa) : undefined;
  }

  /** Lowest and highest replica count of a scalable workload (HPA bounds, else spec.replicas, default 1). */
  replicaRange(o: KubeObject): { min: number; max: number; hpa: boolean } | undefined {
    if (!SCALABLE_KINDS.has(o.kind)) return undefined;
    const hpa = this.hpaFor(o);
    if (hpa) return { min: hpa.minReplicas ?? 1, max: hpa.maxReplicas, hpa: true };
    const replicas = specOf<{ replicas?: number }>(o).replicas ?? 1;
    return { min: replicas, max: replicas, hpa: false };
  }

  isProduction(namespace: string | undefined): boolean {
    if (this.options.production !== undefined) return this.options.production;
    const ns = namespace ? this.find('Namespace', undefined, namespace) : undefined;
    return ns?.metadata.labels?.[PRODUCTION_LABEL] === 'true';
  }
}

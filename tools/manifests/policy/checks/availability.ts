/**
 * Availability checks: disruption budgets, autoscalers and spreading (kube-score's
 * pod-disruption-budget, horizontal-pod-autoscaler and deployment-replicas; Polaris'
 * missing-pod-disruption-budget, topology spread).
 */
import { type KubeObject, type LabelSelector, pathIn, SCALABLE_KINDS, selects, specOf } from '../../../k8s/objects';
import type { Check, HpaSpec, PolicyContext, Violation } from '../types';

interface PdbSpec {
  selector?: LabelSelector;
  minAvailable?: number | string;
  maxUnavailable?: number | string;
}

/** Scalable workloads whose pod template a PDB selects. */
export function pdbTargets(ctx: PolicyContext, pdb: KubeObject): KubeObject[] {
  return ctx
    .selectedBy(pdb, 'selector')
    .filter((w) => SCALABLE_KINDS.has(w.object.kind))
    .map((w) => w.object);
}

/** How many pods `value` (an integer or a percentage, rounded up as the eviction API does) means out of `total`. */
function podsOf(value: number | string, total: number): number {
  if (typeof value === 'number') return value;
  return Math.ceil((parseFloat(value) * total) / 100);
}

export const pdbRequired: Check = {
  id: 'pdb-required',
  severity: 'error',
  explanation:
    'Every workload that can run more than one pod has a PodDisruptionBudget, so a node drain cannot take all its pods at once.',
  fix: 'Add a PodDisruptionBudget (maxUnavailable: 1) whose selector matches the pod template labels.',
  run: (ctx) =>
    ctx.workloads.flatMap((w) => {
      const range = ctx.replicaRange(w.object);
      if (!range || range.max <= 1 || ctx.selecting('PodDisruptionBudget', w, 'selector').length > 0) return [];
      return [
        {
          object: w.object,
          message: `${w.object.kind} can run ${range.max} pods but no PodDisruptionBudget selects them`,
        },
      ];
    }),
};

export const pdbAllowsEviction: Check = {
  id: 'pdb-allows-eviction',
  severity: 'error',
  explanation:
    'A PodDisruptionBudget still allows one eviction at the lowest replica count (HPA minReplicas), or node drains hang for ever.',
  fix: 'Use maxUnavailable: 1, or a minAvailable below the HPA minReplicas / spec.replicas of every workload it selects.',
  run: (ctx) =>
    ctx.ofKind('PodDisruptionBudget').flatMap((pdb): Violation[] => {
      const targets = pdbTargets(ctx, pdb);
      if (targets.length === 0) return [];
      const ranges = targets.map((t) => ({ t, range: ctx.replicaRange(t) ?? { min: 1, max: 1, hpa: false } }));
      const total = ranges.reduce((n, r) => n + r.range.min, 0);
      const spec = specOf<PdbSpec>(pdb);
      const what = ranges
        .map(
          ({ t, range }) => `${t.kind} ${t.metadata.name} (${range.hpa ? 'HPA minReplicas' : 'replicas'} ${range.min})`,
        )
        .join(', ');
      if (spec.maxUnavailable !== undefined && podsOf(spec.maxUnavailable, total) < 1) {
        return [
          {
            object: pdb,
            path: 'spec.maxUnavailable',
            message: `maxUnavailable ${spec.maxUnavailable} blocks every eviction of ${what}`,
          },
        ];
      }
      if (spec.minAvailable !== undefined && podsOf(spec.minAvailable, total) >= total) {
        return [
          {
            object: pdb,
            path: 'spec.minAvailable',
            message: `minAvailable ${spec.minAvailable} is not below the ${total} pod(s) of ${what}: no pod can be evicted at that scale`,
          },
        ];
      }
      return [];
    }),
};

export const hpaTargetNoReplicas: Check = {
  id: 'hpa-target-no-replicas',
  severity: 'error',
  explanation:
    'A workload scaled by an HPA does not set spec.replicas, or every apply resets the replica count the HPA chose.',
  fix: 'Remove spec.replicas from the workload; the HPA minReplicas sets the floor.',
  run: (ctx) =>
    ctx.ofKind('HorizontalPodAutoscaler').flatMap((hpa) => {
      const ref = specOf<HpaSpec>(hpa).scaleTargetRef;
      const target = ref && ctx.find(ref.kind, hpa.metadata.namespace, ref.name);
      if (!target || specOf<{ replicas?: number }>(target).replicas === undefined) return [];
      return [
        {
          object: target,
          path: 'spec.replicas',
          message: `${target.kind} sets replicas although HPA '${hpa.metadata.name}' scales it`,
        },
      ];
    }),
};

export const hpaMinReplicasProd: Check = {
  id: 'hpa-min-replicas-prod',
  severity: 'error',
  explanation: 'In production an HPA keeps at least 2 pods, so one eviction or crash is not an outage.',
  fix: 'Set minReplicas >= 2 in the environment config (autoscaling.minReplicas).',
  run: (ctx) =>
    ctx.ofKind('HorizontalPodAutoscaler').flatMap((hpa) => {
      const min = specOf<HpaSpec>(hpa).minReplicas ?? 1;
      if (!ctx.isProduction(hpa.metadata.namespace) || min >= 2) return [];
      return [
        { object: hpa, path: 'spec.minReplicas', message: `minReplicas ${min} is below 2 in a production environment` },
      ];
    }),
};

export const hpaMaxAboveMin: Check = {
  id: 'hpa-max-above-min',
  severity: 'error',
  explanation: 'An HPA has room to scale: maxReplicas is greater than minReplicas.',
  fix: 'Raise maxReplicas above minReplicas, or drop the HPA and set a fixed replica count.',
  run: (ctx) =>
    ctx.ofKind('HorizontalPodAutoscaler').flatMap((hpa) => {
      const spec = specOf<HpaSpec>(hpa);
      const min = spec.minReplicas ?? 1;
      return spec.maxReplicas > min
        ? []
        : [
            {
              object: hpa,
              path: 'spec.maxReplicas',
              message: `maxReplicas ${spec.maxReplicas} is not above minReplicas ${min}`,
            },
          ];
    }),
};

export const replicasSpread: Check = {
  id: 'replicas-spread',
  severity: 'error',
  explanation:
    'A workload that can run several pods spreads them (topologySpreadConstraints or pod anti-affinity) so one node loss is not all of them.',
  fix: 'Add topologySpreadConstraints whose labelSelector matches the pod labels (topologySpread() in constructs/core/pod.ts).',
  run: (ctx) =>
    ctx.workloads.flatMap((w): Violation[] => {
      const range = ctx.replicaRange(w.object);
      if (!range || range.max <= 1) return [];
      const spec = w.template.spec;
      if (spec.affinity?.podAntiAffinity) return [];
      const constraints = spec.topologySpreadConstraints ?? [];
      if (constraints.some((c) => selects(c.labelSelector, w.labels))) return [];
      const message = constraints.length
        ? `no topologySpreadConstraint's labelSelector matches the pod labels, so nothing is spread`
        : `${w.object.kind} can run ${range.max} pods but sets no topologySpreadConstraints or pod anti-affinity`;
      return [{ object: w.object, path: pathIn(w, 'spec.topologySpreadConstraints'), message }];
    }),
};

export const AVAILABILITY_CHECKS: Check[] = [
  pdbRequired,
  pdbAllowsEviction,
  hpaTargetNoReplicas,
  hpaMinReplicasProd,
  hpaMaxAboveMin,
  replicasSpread,
];

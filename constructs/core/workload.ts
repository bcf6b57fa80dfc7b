/** The objects around every workload: ServiceAccount, PodDisruptionBudget, autoscaler. */
import { createHash } from 'node:crypto';
import { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import { meta, selectorLabels, standardLabels } from './labels';
import { externalSecretsAnnotations, type PodOptions, withPodOptions } from './pod';
import { checkInt, checkName, fail } from './validate';

/** What every workload construct takes besides its own settings. */
export interface WorkloadProps {
  /** Placement of the tier's pods and what is added to them (placement also reaches its Jobs). @default - none */
  readonly pod?: PodOptions;
  /** Secrets every pod of the tier pulls its images with. @default - none */
  readonly imagePullSecrets?: readonly string[];
  /**
   * Where the pods may send DNS queries (UDP and TCP 53).
   * @default DEFAULT_DNS_RESOLVER_PEERS: kube-dns and node-local-dns pods, 169.254.20.10/32, 169.254.169.254/32
   */
  readonly dnsResolvers?: readonly k8s.NetworkPolicyPeer[];
}

/** A workload that serves metrics: who may scrape them. */
export interface ScrapedProps {
  /** Pods allowed to scrape the metrics port. @default - the bundled Prometheus' pods (`podsOf('prometheus')`) */
  readonly scrapers?: readonly k8s.NetworkPolicyPeer[];
}

/** The tier's name (the `name` prop, else the construct's default): a DNS-1123 label, also its component label. */
export function workloadName(name: string | undefined, fallback: string): string {
  const resolved = name ?? fallback;
  checkName('name', resolved);
  return resolved;
}

/**
 * Metadata of a workload object (Deployment, StatefulSet): common labels, and the
 * Secrets its pods use that come from outside the output (`more`, then the pod block's).
 */
export function workloadMeta(
  scope: Construct,
  component: string,
  name: string,
  props: WorkloadProps,
  more: readonly string[] = [],
): k8s.ObjectMeta {
  return meta(scope, component, name, {
    annotations: externalSecretsAnnotations(props.pod, props.imagePullSecrets, more),
  });
}

/**
 * A workload's pod template: the common labels (plus `extra.labels`), `extra.annotations`,
 * and the pod block of `props` merged in (`withPodOptions`; `mainContainer` gets the extra env and mounts).
 */
export function podTemplate(
  scope: Construct,
  component: string,
  mainContainer: string,
  props: WorkloadProps,
  extra: { readonly annotations?: Record<string, string>; readonly labels?: Record<string, string> },
  spec: k8s.PodSpec,
): k8s.PodTemplateSpec {
  const metadata = {
    labels: { ...standardLabels(scope, component), ...extra.labels },
    ...(extra.annotations ? { annotations: extra.annotations } : {}),
  };
  return withPodOptions({ metadata, spec }, mainContainer, props.pod, props.imagePullSecrets);
}

/** A Deployment rollout that never goes below the desired replicas: new pods first (`maxSurge`), then old ones go. */
export function surgeRollout(maxSurge: number | string): k8s.DeploymentStrategy {
  const surge =
    typeof maxSurge === 'number' ? k8s.IntOrString.fromNumber(maxSurge) : k8s.IntOrString.fromString(maxSurge);
  return { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: k8s.IntOrString.fromNumber(0), maxSurge: surge } };
}

/**
 * A Deployment's spec: the pods of `component`, five old ReplicaSets kept for `kubectl rollout undo`.
 * Leave `replicas` out when an autoscaler owns the count (a fixed value would reset it on every apply).
 */
export function deploymentSpec(
  component: string,
  spec: Pick<k8s.DeploymentSpec, 'replicas' | 'strategy' | 'template'>,
): k8s.DeploymentSpec {
  return { revisionHistoryLimit: 5, selector: { matchLabels: selectorLabels(component) }, ...spec };
}

/**
 * A StatefulSet's spec: the pods of `component` behind the headless Service `serviceName`, updated
 * one pod at a time, their volumes kept when the set is deleted or scaled in (data is never
 * dropped by an apply). `podManagementPolicy`: `Parallel` when the peers order themselves;
 * `selector`: narrower than the component's selector labels where the pods carry more.
 */
export function statefulSetSpec(
  component: string,
  spec: Pick<
    k8s.StatefulSetSpec,
    'replicas' | 'serviceName' | 'podManagementPolicy' | 'template' | 'volumeClaimTemplates'
  > &
    Partial<Pick<k8s.StatefulSetSpec, 'selector'>>,
): k8s.StatefulSetSpec {
  return {
    selector: { matchLabels: selectorLabels(component) },
    updateStrategy: { type: 'RollingUpdate' },
    persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
    ...spec,
  };
}

/** Bounds and targets of a HorizontalPodAutoscaler. */
export interface AutoscalingProps {
  /** Lower bound of the autoscaler. */
  readonly minReplicas: number;
  /** Upper bound of the autoscaler. */
  readonly maxReplicas: number;
  /** Average CPU utilization (percent of requests) the autoscaler aims for. */
  readonly cpuTargetPercent: number;
  /** Average memory utilization (percent of requests) the autoscaler aims for. */
  readonly memoryTargetPercent: number;
  /** Seconds the autoscaler waits before scaling down after load drops. */
  readonly scaleDownStabilizationSeconds: number;
}

/**
 * The platform's autoscaling targets (the seed's CPU 70 %, memory 80 %) and scale-down
 * stabilization: the default of every autoscaled tier, which sets only its bounds.
 */
export const AUTOSCALING_TARGETS: Omit<AutoscalingProps, 'minReplicas' | 'maxReplicas'> = {
  cpuTargetPercent: 70,
  memoryTargetPercent: 80,
  scaleDownStabilizationSeconds: 300,
};

/** Throws when autoscaling props are out of range. */
export function checkAutoscaling(prop: string, a: AutoscalingProps): void {
  checkInt(`${prop}.minReplicas`, a.minReplicas, 1);
  checkInt(`${prop}.maxReplicas`, a.maxReplicas, 1);
  if (a.minReplicas > a.maxReplicas) {
    fail(`${prop}.minReplicas`, a.minReplicas, `must be <= '${prop}.maxReplicas' (${a.maxReplicas})`);
  }
  checkInt(`${prop}.cpuTargetPercent`, a.cpuTargetPercent, 1, 100);
  checkInt(`${prop}.memoryTargetPercent`, a.memoryTargetPercent, 1, 100);
  checkInt(`${prop}.scaleDownStabilizationSeconds`, a.scaleDownStabilizationSeconds, 0, 3600);
}

/** A PDB allowing `maxUnavailable` evictions at a time, so drains never block. */
export function podDisruptionBudget(
  scope: Construct,
  id: string,
  component: string,
  maxUnavailable = 1,
): k8s.KubePodDisruptionBudget {
  if (maxUnavailable < 1) {
    throw new Error(`'maxUnavailable' (${maxUnavailable}) must be >= 1 so a node drain can evict a pod`);
  }
  return new k8s.KubePodDisruptionBudget(scope, id, {
    metadata: meta(scope, component, component),
    spec: {
      maxUnavailable: k8s.IntOrString.fromNumber(maxUnavailable),
      selector: { matchLabels: selectorLabels(component) },
    },
  });
}

/** A ServiceAccount that does not mount an API token (none of our app pods talk to the API server). */
export function serviceAccount(
  scope: Construct,
  id: string,
  component: string,
  annotations?: Readonly<Record<string, string>>,
): k8s.KubeServiceAccount {
  return new k8s.KubeServiceAccount(scope, id, {
    metadata: meta(scope, component, component, { annotations: { ...annotations } }),
    automountServiceAccountToken: false,
  });
}

/** HPA autoscaling/v2 on CPU and memory utilization with a damped scale-down. */
export function horizontalPodAutoscaler(
  scope: Construct,
  id: string,
  component: string,
  target: { kind: 'Deployment' | 'StatefulSet'; name: string },
  a: AutoscalingProps,
): k8s.KubeHorizontalPodAutoscalerV2 {
  return new k8s.KubeHorizontalPodAutoscalerV2(scope, id, {
    metadata: meta(scope, component, component),
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: target.kind, name: target.name },
      minReplicas: a.minReplicas,
      maxReplicas: a.maxReplicas,
      metrics: [
        {
          type: 'Resource',
          resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: a.cpuTargetPercent } },
        },
        {
          type: 'Resource',
          resource: { name: 'memory', target: { type: 'Utilization', averageUtilization: a.memoryTargetPercent } },
        },
      ],
      behavior: {
        // Scale up fast (double or +4 pods a minute); scale down one pod a minute after a quiet window.
        scaleUp: {
          stabilizationWindowSeconds: 0,
          selectPolicy: 'Max',
          policies: [
            { type: 'Percent', value: 100, periodSeconds: 60 },
            { type: 'Pods', value: 4, periodSeconds: 60 },
          ],
        },
        scaleDown: {
          stabilizationWindowSeconds: a.scaleDownStabilizationSeconds,
          selectPolicy: 'Min',
          policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }],
        },
      },
    },
  });
}

/**
 * Annotation on a pod controller: `Kind/name` of objects (comma-separated) whose rollout it must
 * follow, e.g. a Job that reconfigures a StatefulSet's members, or the API Deployment whose migrate
 * init container needs the role the roles Job creates. The Pulumi program makes it depend on them
 * (stacks/deploy-order.ts); with kubectl it waits (retries) for what it needs itself.
 */
export const RUNS_AFTER_ANNOTATION = 'fastnext.io/runs-after';

/**
 * A Job's name for the spec it runs: `<base>-<8 hex of sha256(spec)>`. A Job's
 * pod template is immutable, so a changed spec must be a new Job (kubectl apply
 * and Pulumi then create it) rather than a refused update of the old one; the
 * same spec keeps its name, so re-applying changes nothing. `inputs`: what the
 * Job runs from outside its spec (a script in a ConfigMap), so a changed script
 * runs again too.
 */
export function jobNameFor(base: string, spec: k8s.JobSpec, inputs: readonly unknown[] = []): string {
  const hash = createHash('sha256')
    .update(JSON.stringify([spec, ...inputs]))
    .digest('hex')
    .slice(0, 8);
  return `${base}-${hash}`;
}

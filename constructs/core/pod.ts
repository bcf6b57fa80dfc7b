/**
 * What every pod gets: the Pod Security "restricted" contexts, spread over
 * nodes and zones, probes, scratch volumes, and the user's pod block
 * (`PodOptions`: placement and extensions) merged in without touching ours.
 */
import { k8s } from 'cdk8s-plus-28';
import { selectorLabels } from './labels';
import { DNS1123_SUBDOMAIN, fail } from './validate';

/**
 * Container security context of the Pod Security "restricted" profile, plus a
 * read-only root filesystem (writable paths are emptyDir mounts).
 */
export function containerSecurityContext(): k8s.SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    privileged: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Pod security context: a numeric non-root user (so the kubelet can verify runAsNonRoot) and fsGroup for volumes. */
export function podSecurityContext(uid: number, gid: number = uid): k8s.PodSecurityContext {
  if (uid === 0) throw new Error("podSecurityContext: 'uid' (0) must be a non-root user id");
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: gid,
    fsGroup: gid,
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/**
 * Spread a component's pods over nodes (hard-ish: ScheduleAnyway keeps small
 * clusters schedulable) and zones.
 */
export function topologySpread(component: string): k8s.TopologySpreadConstraint[] {
  const labelSelector = { matchLabels: selectorLabels(component) };
  return [
    { maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector },
    { maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector },
  ];
}

/** An HTTP GET probe on a named container port, with its timings. */
export function httpProbe(
  path: string,
  port: string,
  timing: { readonly periodSeconds: number; readonly failureThreshold?: number; readonly timeoutSeconds: number },
): k8s.Probe {
  return { httpGet: { path, port: k8s.IntOrString.fromString(port) }, ...timing };
}

/** An emptyDir volume (optionally memory-backed) for a writable path under a read-only root fs. */
export function emptyDir(name: string, sizeLimit = '64Mi', medium?: 'Memory'): k8s.Volume {
  return { name, emptyDir: { sizeLimit: k8s.Quantity.fromString(sizeLimit), ...(medium ? { medium } : {}) } };
}

/**
 * The pod block every workload tier takes: where its pods run and what is
 * added to them. Topology spread and security contexts stay the construct's.
 */
export interface PodOptions {
  /** Node labels the pods must match. @default - any node */
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /** Taints the pods tolerate. @default - none */
  readonly tolerations?: readonly k8s.Toleration[];
  /** Node and pod (anti-)affinity of the main workload's pods (Jobs do not get it). @default - none */
  readonly affinity?: k8s.Affinity;
  /** PriorityClass of the pods. @default - the cluster's default priority */
  readonly priorityClassName?: string;
  /** Extra annotations of the main workload's pod template; keys the construct sets are refused. @default - none */
  readonly annotations?: Readonly<Record<string, string>>;
  /** Extra labels of the main workload's pod template; keys the construct sets are refused. @default - none */
  readonly labels?: Readonly<Record<string, string>>;
  /** Extra environment variables of the main container; names the construct sets are refused. @default - none */
  readonly extraEnv?: readonly k8s.EnvVar[];
  /** Extra volumes of the main workload's pods (the Pod Security "restricted" volume types only). @default - none */
  readonly extraVolumes?: readonly k8s.Volume[];
  /** Extra mounts of the main container, each naming a volume of the pod. @default - none */
  readonly extraVolumeMounts?: readonly k8s.VolumeMount[];
  /** Annotations of the tier's ServiceAccount (e.g. a cloud IAM role). @default - none */
  readonly serviceAccountAnnotations?: Readonly<Record<string, string>>;
}

/** Volume sources Pod Security "restricted" admits. */
export const RESTRICTED_VOLUME_SOURCES = [
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
] as const;

/** Why a volume would break Pod Security "restricted", or undefined. */
export function volumeSourceProblem(volume: object): string | undefined {
  const sources = Object.keys(volume).filter((k) => k !== 'name');
  const refused = sources.filter((s) => !(RESTRICTED_VOLUME_SOURCES as readonly string[]).includes(s));
  if (refused.length) {
    return `uses ${refused.join(', ')}, which Pod Security "restricted" refuses; use one of: ${RESTRICTED_VOLUME_SOURCES.join(', ')}`;
  }
  if (sources.length !== 1) return `must have exactly one volume source (has ${sources.length})`;
  return undefined;
}

/** Annotation the policy checks read: this workload uses Secrets supplied from outside (cert-manager, kubectl). */
export const EXTERNAL_SECRETS_ANNOTATION = 'fastnext.io/external-secrets';

/**
 * A workload's annotations declaring the Secrets its pods use that come from
 * outside the output (`more`, e.g. a TLS Secret, then the pod block's pull
 * secrets, secret volumes and secret env), so the reference check knows them.
 */
export function externalSecretsAnnotations(
  pod: PodOptions = {},
  imagePullSecrets: readonly string[] = [],
  more: readonly string[] = [],
): Record<string, string> {
  const names = [
    ...more,
    ...imagePullSecrets,
    ...(pod.extraVolumes ?? []).flatMap((v) => (v.secret?.secretName ? [v.secret.secretName] : [])),
    ...(pod.extraEnv ?? []).flatMap((e) => (e.valueFrom?.secretKeyRef?.name ? [e.valueFrom.secretKeyRef.name] : [])),
  ];
  return names.length ? { [EXTERNAL_SECRETS_ANNOTATION]: [...new Set(names)].join(',') } : {};
}

/** Placement every pod of a tier gets (Jobs included): node selector, tolerations, priority, pull secrets. */
export function podPlacement(pod: PodOptions = {}, imagePullSecrets: readonly string[] = []): Partial<k8s.PodSpec> {
  if (pod.priorityClassName !== undefined && !DNS1123_SUBDOMAIN.test(pod.priorityClassName)) {
    fail('pod.priorityClassName', pod.priorityClassName, 'must be a DNS-1123 subdomain (a PriorityClass name)');
  }
  return {
    ...(pod.nodeSelector && Object.keys(pod.nodeSelector).length ? { nodeSelector: { ...pod.nodeSelector } } : {}),
    ...(pod.tolerations?.length ? { tolerations: [...pod.tolerations] } : {}),
    ...(pod.priorityClassName ? { priorityClassName: pod.priorityClassName } : {}),
    ...(imagePullSecrets.length ? { imagePullSecrets: imagePullSecrets.map((name) => ({ name })) } : {}),
  };
}

/** Adds `extra` to `ours`, refusing a key that would replace one of ours. */
function addKeys(
  prop: string,
  ours: Record<string, string> | undefined,
  extra: Readonly<Record<string, string>> | undefined,
): Record<string, string> | undefined {
  if (!extra || !Object.keys(extra).length) return ours;
  for (const key of Object.keys(extra)) {
    if (ours && key in ours)
      fail(`${prop}.${key}`, extra[key], `would replace the construct's own value (${ours[key]}): choose another key`);
  }
  return { ...ours, ...extra };
}

/**
 * The main workload's pod template with the pod block merged in: placement
 * and affinity, extra volumes, the main container's extra env and mounts,
 * extra template labels and annotations. Nothing of ours is replaced: a
 * colliding key, a mount of a volume the pod lacks, or a volume type that
 * Pod Security "restricted" refuses is an error naming the prop.
 */
export function withPodOptions(
  template: k8s.PodTemplateSpec,
  mainContainer: string,
  pod: PodOptions = {},
  imagePullSecrets: readonly string[] = [],
): k8s.PodTemplateSpec {
  const spec = template.spec!;
  const extraVolumes = pod.extraVolumes ?? [];
  extraVolumes.forEach((v, i) => {
    const problem = volumeSourceProblem(v);
    if (problem) fail(`pod.extraVolumes[${i}]`, v.name, problem);
  });
  const volumes = [...(spec.volumes ?? []), ...extraVolumes];
  const volumeNames = volumes.map((v) => v.name);
  const duplicate = volumeNames.find((n, i) => volumeNames.indexOf(n) !== i);
  if (duplicate) fail('pod.extraVolumes', duplicate, 'names a volume the pod already has: choose another name');
  (pod.extraVolumeMounts ?? []).forEach((m, i) => {
    if (!volumeNames.includes(m.name)) {
      fail(
        `pod.extraVolumeMounts[${i}].name`,
        m.name,
        `names no volume of the pod; volumes: ${volumeNames.join(', ')}`,
      );
    }
  });
  const containers = spec.containers.map((c) => {
    if (c.name !== mainContainer) return c;
    const env = c.env ?? [];
    for (const [i, e] of (pod.extraEnv ?? []).entries()) {
      if (env.some((x) => x.name === e.name))
        fail(`pod.extraEnv[${i}].name`, e.name, 'is set by the construct: choose another name');
    }
    return {
      ...c,
      ...(pod.extraEnv?.length ? { env: [...env, ...pod.extraEnv] } : {}),
      ...(pod.extraVolumeMounts?.length ? { volumeMounts: [...(c.volumeMounts ?? []), ...pod.extraVolumeMounts] } : {}),
    };
  });
  const labels = addKeys('pod.labels', template.metadata?.labels, pod.labels);
  const annotations = addKeys('pod.annotations', template.metadata?.annotations, pod.annotations);
  return {
    metadata: {
      ...template.metadata,
      ...(labels ? { labels } : {}),
      ...(annotations ? { annotations } : {}),
    },
    spec: {
      ...spec,
      containers,
      ...(extraVolumes.length ? { volumes } : {}),
      ...podPlacement(pod, imagePullSecrets),
      ...(pod.affinity ? { affinity: pod.affinity } : {}),
    },
  };
}

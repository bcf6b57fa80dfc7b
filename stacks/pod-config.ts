/**
 * The pod block every workload tier takes in an environment (`<tier>.pod`):
 * placement (node selector, tolerations, affinity, priority class) and
 * extensions (labels, annotations, env, volumes, mounts, ServiceAccount
 * annotations), strict like the rest of the schema. Volumes are limited to
 * what Pod Security "restricted" admits and an environment can spell.
 */
import { z } from 'zod';
import { volumeSourceProblem } from '../constructs/core/pod';
import { dnsLabel, dnsSubdomain, quantity, refineWith } from './config-fields';
const stringMap = z.record(z.string(), z.string());
const labelSelector = z
  .object({
    matchLabels: stringMap.optional(),
    matchExpressions: z
      .array(
        z
          .object({
            key: z.string(),
            operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
            values: z.array(z.string()).optional(),
          })
          .strict(),
      )
      .optional(),
  })
  .strict();
const nodeSelectorTerm = z
  .object({
    matchExpressions: z
      .array(
        z
          .object({
            key: z.string(),
            operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt']),
            values: z.array(z.string()).optional(),
          })
          .strict(),
      )
      .optional(),
    matchFields: z
      .array(
        z
          .object({ key: z.string(), operator: z.enum(['In', 'NotIn']), values: z.array(z.string()).optional() })
          .strict(),
      )
      .optional(),
  })
  .strict();
const podAffinityTerm = z
  .object({
    labelSelector: labelSelector.optional(),
    namespaceSelector: labelSelector.optional(),
    namespaces: z.array(dnsLabel).optional(),
    topologyKey: z.string().min(1),
  })
  .strict();
const weight = z.number().int().min(1).max(100);
const podAffinity = z
  .object({
    requiredDuringSchedulingIgnoredDuringExecution: z.array(podAffinityTerm).optional(),
    preferredDuringSchedulingIgnoredDuringExecution: z.array(z.object({ weight, podAffinityTerm }).strict()).optional(),
  })
  .strict();
const affinity = z
  .object({
    nodeAffinity: z
      .object({
        requiredDuringSchedulingIgnoredDuringExecution: z
          .object({ nodeSelectorTerms: z.array(nodeSelectorTerm).min(1) })
          .strict()
          .optional(),
        preferredDuringSchedulingIgnoredDuringExecution: z
          .array(z.object({ weight, preference: nodeSelectorTerm }).strict())
          .optional(),
      })
      .strict()
      .optional(),
    podAffinity: podAffinity.optional(),
    podAntiAffinity: podAffinity.optional(),
  })
  .strict();
const toleration = z
  .object({
    key: z.string().optional(),
    operator: z.enum(['Exists', 'Equal']).optional(),
    value: z.string().optional(),
    effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
    tolerationSeconds: z.number().int().optional(),
  })
  .strict();
const keyRef = (nameKey: 'name') =>
  z.object({ [nameKey]: dnsSubdomain, key: z.string().min(1), optional: z.boolean().optional() }).strict();
const envVar = z
  .object({
    name: z.string().regex(/^[-._a-zA-Z][-._a-zA-Z0-9]*$/, { message: 'must be an environment variable name' }),
    value: z.string().optional(),
    valueFrom: z
      .object({
        secretKeyRef: keyRef('name').optional(),
        configMapKeyRef: keyRef('name').optional(),
        fieldRef: z.object({ fieldPath: z.string() }).strict().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
const keyToPath = z.object({ key: z.string(), path: z.string(), mode: z.number().int().optional() }).strict();
/** Volume types a config's extraVolumes can spell (all admitted by Pod Security "restricted"). */
export const CONFIG_VOLUME_SOURCES = ['configMap', 'secret', 'emptyDir', 'persistentVolumeClaim', 'csi'] as const;

/** Why a volume of a config is refused: a type "restricted" refuses, or one a config cannot spell. */
function configVolumeProblem(v: Record<string, unknown>): string | undefined {
  const restricted = volumeSourceProblem(v);
  if (restricted) return restricted;
  const source = Object.keys(v).find((k) => k !== 'name') ?? '';
  return (CONFIG_VOLUME_SOURCES as readonly string[]).includes(source)
    ? undefined
    : `uses ${source}, which an environment cannot spell; use one of: ${CONFIG_VOLUME_SOURCES.join(', ')} (or pass it to the construct as a prop)`;
}

/**
 * An extra volume: one of CONFIG_VOLUME_SOURCES; hostPath and every other
 * type Pod Security "restricted" refuses is an error naming the ones allowed.
 */
const volume = z
  .object({ name: dnsLabel })
  .catchall(z.unknown())
  .superRefine(refineWith(configVolumeProblem))
  .pipe(
    z
      .object({
        name: dnsLabel,
        configMap: z
          .object({
            name: dnsSubdomain,
            items: z.array(keyToPath).optional(),
            defaultMode: z.number().int().optional(),
            optional: z.boolean().optional(),
          })
          .strict()
          .optional(),
        secret: z
          .object({
            secretName: dnsSubdomain,
            items: z.array(keyToPath).optional(),
            defaultMode: z.number().int().optional(),
            optional: z.boolean().optional(),
          })
          .strict()
          .optional(),
        emptyDir: z
          .object({ medium: z.enum(['', 'Memory']).optional(), sizeLimit: quantity.optional() })
          .strict()
          .optional(),
        persistentVolumeClaim: z
          .object({ claimName: dnsSubdomain, readOnly: z.boolean().optional() })
          .strict()
          .optional(),
        csi: z
          .object({
            driver: z.string().min(1),
            readOnly: z.boolean().optional(),
            fsType: z.string().optional(),
            volumeAttributes: stringMap.optional(),
          })
          .strict()
          .optional(),
      })
      .strict(),
  );
const volumeMount = z
  .object({
    name: dnsLabel,
    mountPath: z.string().regex(/^\//, { message: 'must be an absolute path' }),
    subPath: z.string().optional(),
    readOnly: z.boolean().optional(),
  })
  .strict();

/** The pod block of every workload tier: placement and extensions, merged into the pod spec by the construct. */
export const pod = z
  .object({
    nodeSelector: stringMap,
    tolerations: z.array(toleration),
    affinity: affinity.optional(),
    priorityClassName: dnsSubdomain.optional(),
    annotations: stringMap,
    labels: stringMap,
    extraEnv: z.array(envVar),
    extraVolumes: z.array(volume),
    extraVolumeMounts: z.array(volumeMount),
    serviceAccountAnnotations: stringMap,
  })
  .strict();

/** An empty pod block: the default of every tier. */
export const NO_POD_OPTIONS = {
  nodeSelector: {},
  tolerations: [],
  affinity: undefined,
  priorityClassName: undefined,
  annotations: {},
  labels: {},
  extraEnv: [],
  extraVolumes: [],
  extraVolumeMounts: [],
  serviceAccountAnnotations: {},
};

/** A tier's pod block, as an environment writes it. */
export type PodConfig = z.infer<typeof pod>;

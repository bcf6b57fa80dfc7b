/**
 * The field types the environment schema is built from: names, images,
 * quantities, resources, storage, autoscaling. Each reuses the construct
 * library's predicate, so a rule is written once and says the same thing.
 */
import { z } from 'zod';
import { DNS_RESOLVER_FORMAT, dnsResolverPeer } from '../constructs/core/network';
import { quantityProblem, resourcesProblems } from '../constructs/core/quantity';
import { DNS1123_LABEL, DNS1123_SUBDOMAIN, imageProblem } from '../constructs/core/validate';
import { SERVER_NAME } from '../constructs/edge/nginx-conf';
/** A DNS-1123 label (namespace, object name prefix): lowercase alphanumerics and '-', at most 63. */
export const dnsLabel = z
  .string()
  .max(63, { message: 'must be at most 63 characters (DNS-1123 label)' })
  .regex(DNS1123_LABEL, {
    message: "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit",
  });

export const dnsSubdomain = z
  .string()
  .max(253, { message: 'must be at most 253 characters' })
  .regex(DNS1123_SUBDOMAIN, { message: 'must be a lowercase DNS name such as api.example.com' });

/** A host name nginx answers for: a DNS name, or a `*.example.com` wildcard. */
export const serverName = z.string().max(253, { message: 'must be at most 253 characters' }).regex(SERVER_NAME, {
  message: 'must be a lowercase DNS name such as api.example.com, or a wildcard such as *.example.com',
});

/** Adds a custom issue when `problem` returns one. */
export const refineWith =
  <T>(problem: (value: T) => string | undefined) =>
  (value: T, ctx: z.RefinementCtx) => {
    const message = problem(value);
    if (message) ctx.addIssue({ code: 'custom', message });
  };

/**
 * A container image pinned to a tag or digest. `latest` and untagged images are
 * refused: they make a rollout depend on what the registry holds that day.
 */
export const imageRef = z.string().superRefine(refineWith(imageProblem));

/** A positive resource quantity such as `250m`, `512Mi` or `10Gi`. */
export const quantity = z.string().superRefine(refineWith(quantityProblem));

/** Where pods send DNS queries: a CIDR or a pod label selector (see constructs/common.ts). */
export const dnsResolver = z.string().superRefine((r, ctx) => {
  if (!dnsResolverPeer(r)) ctx.addIssue({ code: 'custom', message: DNS_RESOLVER_FORMAT });
});

export const percent = z.number().int().min(1).max(100);
export const positiveInt = z.number().int().min(1);

export const resources = z
  .object({
    requests: z.object({ cpu: quantity, memory: quantity }).strict(),
    limits: z.object({ cpu: quantity, memory: quantity }).strict(),
  })
  .strict()
  .superRefine((r, ctx) => {
    for (const [path, message] of resourcesProblems(r)) {
      // Malformed quantities are reported by their own field's schema.
      if (message.startsWith('must be <=')) ctx.addIssue({ code: 'custom', path: path.split('.'), message });
    }
  });

export const storage = z
  .object({
    /** Size of each PersistentVolumeClaim. */
    size: quantity,
    /** StorageClass; omitted = the cluster's default class. */
    storageClass: dnsLabel.optional(),
  })
  .strict();

export const autoscaling = z
  .object({
    minReplicas: positiveInt,
    maxReplicas: positiveInt,
    cpuTargetPercent: percent,
    memoryTargetPercent: percent,
    /** Seconds the HPA waits before scaling down after load drops. */
    scaleDownStabilizationSeconds: z.number().int().min(0).max(3600),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.minReplicas > a.maxReplicas) {
      ctx.addIssue({
        code: 'custom',
        path: ['minReplicas'],
        message: `must be <= maxReplicas (${a.maxReplicas})`,
      });
    }
  });

/**
 * The environment config: one typed schema with documented defaults for every
 * tier, the merge of an environment's overrides onto those defaults, and error
 * messages that name the environment, the field, the bad value and the fix.
 *
 * Everything below `stacks/` reads its settings from an `EnvironmentConfig`
 * produced here; nothing reads `process.env`.
 */
import { z } from 'zod';
import { DEFAULT_DNS_RESOLVERS, DNS_RESOLVER_FORMAT, dnsResolverPeer } from '../constructs/core/common';
import { CLUSTER_PROFILES, profileDefaults } from './cluster-profiles';
import { preview } from '../tools/k8s/values';

// ---------------------------------------------------------------- primitives

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Kubernetes resource quantity, non-negative (e.g. `250m`, `1`, `512Mi`, `10Gi`). */
const QUANTITY = /^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/;

/** A DNS-1123 label (namespace, object name prefix): lowercase alphanumerics and '-', at most 63. */
export const dnsLabel = z
  .string()
  .max(63, { message: 'must be at most 63 characters (DNS-1123 label)' })
  .regex(DNS1123_LABEL, {
    message: "must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit",
  });

const hostname = z
  .string()
  .max(253, { message: 'must be at most 253 characters' })
  .regex(DNS1123_SUBDOMAIN, { message: 'must be a lowercase DNS name such as api.example.com' });

/**
 * A container image pinned to a tag or digest. `latest` and untagged images are
 * refused: they make a rollout depend on what the registry holds that day.
 */
export const imageRef = z.string().superRefine((image, ctx) => {
  if (image.includes('@sha256:')) return;
  const lastSegment = image.split('/').pop() ?? '';
  const tag = lastSegment.includes(':') ? lastSegment.slice(lastSegment.indexOf(':') + 1) : '';
  if (!tag) {
    ctx.addIssue({
      code: 'custom',
      message: 'must carry a tag or digest (e.g. repo/name:1.2.3 or repo/name@sha256:…)',
    });
  } else if (tag === 'latest') {
    ctx.addIssue({ code: 'custom', message: "must not use the 'latest' tag: pin a version (e.g. repo/name:1.2.3)" });
  }
});

/** A positive resource quantity such as `250m`, `512Mi` or `10Gi`. */
export const quantity = z.string().superRefine((q, ctx) => {
  if (!QUANTITY.test(q) || parseQuantity(q) <= 0) {
    ctx.addIssue({
      code: 'custom',
      message: "must be a positive Kubernetes quantity such as '250m', '512Mi' or '10Gi'",
    });
  }
});

/** Where pods send DNS queries: a CIDR or a pod label selector (see constructs/common.ts). */
const dnsResolver = z.string().superRefine((r, ctx) => {
  if (!dnsResolverPeer(r)) ctx.addIssue({ code: 'custom', message: DNS_RESOLVER_FORMAT });
});

const percent = z.number().int().min(1).max(100);
const positiveInt = z.number().int().min(1);

const resources = z
  .object({
    requests: z.object({ cpu: quantity, memory: quantity }).strict(),
    limits: z.object({ cpu: quantity, memory: quantity }).strict(),
  })
  .strict()
  .superRefine((r, ctx) => {
    for (const kind of ['cpu', 'memory'] as const) {
      if (parseQuantity(r.requests[kind]) > parseQuantity(r.limits[kind])) {
        ctx.addIssue({
          code: 'custom',
          path: ['requests', kind],
          message: `must be <= limits.${kind} (${r.limits[kind]})`,
        });
      }
    }
  });

const storage = z
  .object({
    /** Size of each PersistentVolumeClaim. */
    size: quantity,
    /** StorageClass; omitted = the cluster's default class. */
    storageClass: dnsLabel.optional(),
  })
  .strict();

const autoscaling = z
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

// ---------------------------------------------------------------- the schema

/**
 * Seconds a terminating API pod sleeps in preStop before SIGTERM, so every
 * edge pod has seen it leave the endpoints before it stops accepting.
 */
export const PRESTOP_SLEEP_SECONDS = 5;

export const environmentSchema = z
  .object({
    /** Environment name; also the `dist/<name>/` folder. */
    name: dnsLabel,
    /** Namespace every object lives in. */
    namespace: dnsLabel,
    /** Labels added to every object (on top of the app.kubernetes.io ones). */
    labels: z.record(z.string(), z.string()),
    /** StorageClass for every PVC that does not name its own; omitted = cluster default. */
    storageClass: dnsLabel.optional(),
    /** Whether HPA min must be >= 2 etc. (policy strictness for production). */
    production: z.boolean(),

    cluster: z
      .object({
        /** The kind of cluster; its defaults (stacks/cluster-profiles.ts) sit between DEFAULTS and the environment. */
        profile: z.enum(CLUSTER_PROFILES),
      })
      .strict(),

    network: z
      .object({
        /** Where every pod may send DNS queries (UDP and TCP 53): CIDRs and pod label selectors. */
        dnsResolvers: z
          .array(dnsResolver)
          .min(1, { message: 'must name at least one resolver: with none, every DNS lookup is denied' }),
      })
      .strict(),

    api: z
      .object({
        image: imageRef,
        autoscaling,
        resources,
        /** Seconds the pod keeps serving after SIGTERM while readiness fails (preStop drain). */
        drainSeconds: z.number().int().min(0).max(300),
        /** Pod grace period; must exceed drainSeconds. */
        terminationGracePeriodSeconds: z.number().int().min(1).max(3600),
        /** Fraction of pods the PDB lets be evicted at once. */
        pdbMaxUnavailable: positiveInt,
        db: z
          .object({
            poolSize: positiveInt,
            maxOverflow: z.number().int().min(0),
            poolTimeoutSeconds: positiveInt,
            poolRecycleSeconds: positiveInt,
            replicaMaxLagSeconds: positiveInt,
          })
          .strict(),
        cache: z
          .object({
            enabled: z.boolean(),
            defaultTtlSeconds: positiveInt,
            warmOnStart: z.boolean(),
            /**
             * Seconds a value lives in each pod's in-process tier in front of Redis (hot keys skip the
             * Redis round trip); invalidations reach every pod through Redis pub/sub, and this bounds
             * staleness should one be lost. 0 turns the tier off.
             */
            localTtlSeconds: z.number().int().min(0).max(3600),
            /** Entries of that tier per pod (least recently used go first). */
            localMaxEntries: positiveInt,
          })
          .strict(),
        /** Schedule of the activity_logs partition maintenance CronJob. */
        partitionMaintenanceSchedule: z
          .string()
          .regex(/^(\S+\s+){4}\S+$/, { message: 'must be a 5-field cron expression' }),
        /** Secret holding `token` for management endpoints; generated in-cluster when absent. */
        managementTokenSecret: dnsLabel,
      })
      .strict()
      .superRefine((a, ctx) => {
        if (a.terminationGracePeriodSeconds <= a.drainSeconds + PRESTOP_SLEEP_SECONDS) {
          ctx.addIssue({
            code: 'custom',
            path: ['terminationGracePeriodSeconds'],
            message: `must be > drainSeconds + ${PRESTOP_SLEEP_SECONDS} s of preStop (${a.drainSeconds + PRESTOP_SLEEP_SECONDS}) so in-flight requests finish before SIGKILL`,
          });
        }
      }),

    edge: z
      .object({
        image: imageRef,
        exporterImage: imageRef,
        autoscaling,
        resources,
        exporterResources: resources,
        /** Service type in front of nginx. */
        serviceType: z.enum(['LoadBalancer', 'NodePort', 'ClusterIP']),
        /** Annotations of the edge Service (load-balancer settings); the profile's, plus the environment's. */
        serviceAnnotations: z.record(z.string(), z.string()),
        /** Host names nginx answers for (server_name); empty = any. */
        hostnames: z.array(hostname),
        rateLimit: z
          .object({
            /** Requests per second per client IP. */
            requestsPerSecond: positiveInt,
            /** Requests queued above the rate before nginx answers 429. */
            burst: z.number().int().min(0),
          })
          .strict(),
        /** TLS termination from a kubernetes.io/tls Secret; omitted = plain HTTP. */
        tls: z.object({ secretName: dnsLabel }).strict().optional(),
        /** Idle keepalive connections per nginx worker to the API upstream. */
        upstreamKeepalive: positiveInt,
        proxyTimeouts: z
          .object({ connectSeconds: positiveInt, readSeconds: positiveInt, sendSeconds: positiveInt })
          .strict(),
        /** DNS server nginx re-resolves the API pods with (`resolve` upstream parameter). */
        resolver: hostname,
        /** Largest request body nginx accepts (nginx size, e.g. 1m). */
        clientMaxBodySize: z.string().regex(/^\d+[km]?$/, { message: "must be an nginx size such as '1m' or '512k'" }),
      })
      .strict(),

    postgres: z
      .object({
        image: imageRef,
        exporterImage: imageRef,
        /** Streaming read replicas (0–5). */
        replicas: z.number().int().min(0).max(5),
        /** How many replicas must confirm a commit (0 = asynchronous). */
        synchronousReplicas: z.number().int().min(0).max(5),
        synchronousCommit: z.enum(['on', 'remote_write', 'remote_apply', 'local', 'off']),
        maxConnections: z.number().int().min(20).max(10000),
        database: dnsLabel,
        user: dnsLabel,
        /** Secret with `password` and `replication-password`; generated in-cluster when absent. */
        credentialsSecret: dnsLabel,
        storage,
        resources,
        exporterResources: resources,
      })
      .strict()
      .superRefine((p, ctx) => {
        if (p.synchronousReplicas > p.replicas) {
          ctx.addIssue({
            code: 'custom',
            path: ['synchronousReplicas'],
            message: `must be <= replicas (${p.replicas})`,
          });
        }
      }),

    redis: z
      .object({
        image: imageRef,
        exporterImage: imageRef,
        /** Masters of the cluster (>= 3, as Redis Cluster requires for a majority). */
        masters: z
          .number()
          .int()
          .min(3, { message: 'must be >= 3: Redis Cluster needs a majority of masters to fail over' })
          .max(50),
        replicasPerMaster: z.number().int().min(0).max(5),
        /** maxmemory per node (Redis size, e.g. 2gb). */
        maxmemory: z.string().regex(/^\d+(kb|mb|gb)$/, { message: "must be a Redis size such as '256mb' or '2gb'" }),
        maxmemoryPolicy: z.enum([
          'allkeys-lru',
          'allkeys-lfu',
          'volatile-lru',
          'volatile-lfu',
          'volatile-ttl',
          'noeviction',
        ]),
        nodeTimeoutMs: z.number().int().min(500).max(60000),
        /** Secret with `password`; generated in-cluster when absent. */
        passwordSecret: dnsLabel,
        storage,
        resources,
        exporterResources: resources,
      })
      .strict(),

    monitoring: z
      .object({
        enabled: z.boolean(),
        prometheus: z
          .object({
            image: imageRef,
            reloaderImage: imageRef,
            retention: z.string().regex(/^\d+[hdwy]$/, { message: "must be a duration such as '15d'" }),
            scrapeIntervalSeconds: positiveInt,
            storage,
            resources,
          })
          .strict(),
        grafana: z
          .object({
            image: imageRef,
            resources,
            /** Secret with `admin-user` / `admin-password`; generated in-cluster when absent. */
            adminSecret: dnsLabel,
          })
          .strict(),
        alerts: z
          .object({
            apiErrorRatio: z.number().gt(0).lt(1),
            apiP95LatencySeconds: z.number().gt(0),
            cacheHitRatio: z.number().gt(0).lt(1),
            replicationLagSeconds: z.number().gt(0),
            postgresConnectionsRatio: z.number().gt(0).lt(1),
            edge429Ratio: z.number().gt(0).lt(1),
          })
          .strict(),
      })
      .strict(),
  })
  .strict()
  .superRefine((env, ctx) => {
    if (env.cluster.profile === 'kind' && env.edge.serviceType === 'LoadBalancer') {
      ctx.addIssue({
        code: 'custom',
        path: ['edge', 'serviceType'],
        message:
          "cannot be used with cluster.profile 'kind': kind has no load-balancer controller, so the Service stays pending; use 'ClusterIP' (kubectl port-forward) or 'NodePort'",
      });
    }
    if (env.production && env.api.autoscaling.minReplicas < 2) {
      ctx.addIssue({
        code: 'custom',
        path: ['api', 'autoscaling', 'minReplicas'],
        message: 'must be >= 2 in a production environment so one pod can be evicted without an outage',
      });
    }
    const nodes = env.redis.masters * (1 + env.redis.replicasPerMaster);
    if (nodes > 100) {
      ctx.addIssue({
        code: 'custom',
        path: ['redis', 'masters'],
        message: `gives ${nodes} nodes; at most 100 are supported`,
      });
    }
  });

/** A fully resolved, validated environment. */
export type EnvironmentConfig = z.infer<typeof environmentSchema>;

type DeepPartial<T> = T extends readonly (infer U)[]
  ? U[]
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;

/** What an environment file writes: its name plus overrides of the defaults. */
export type EnvironmentOverrides = DeepPartial<EnvironmentConfig> & { name: string };

// ---------------------------------------------------------------- defaults

const small = (cpu: string, memory: string, cpuLimit: string, memoryLimit: string) => ({
  requests: { cpu, memory },
  limits: { cpu: cpuLimit, memory: memoryLimit },
});

/**
 * The defaults every environment starts from: production values, so a new
 * environment is safe unless it says otherwise.
 */
export const DEFAULTS: Omit<EnvironmentConfig, 'name' | 'namespace'> = {
  labels: {},
  storageClass: undefined,
  production: true,
  cluster: { profile: 'generic' },
  network: { dnsResolvers: [...DEFAULT_DNS_RESOLVERS] },
  api: {
    image: 'ghcr.io/fastnext/api:0.1.0',
    autoscaling: {
      minReplicas: 3,
      maxReplicas: 20,
      cpuTargetPercent: 70,
      memoryTargetPercent: 80,
      scaleDownStabilizationSeconds: 300,
    },
    resources: small('250m', '256Mi', '1', '512Mi'),
    drainSeconds: 10,
    terminationGracePeriodSeconds: 30,
    pdbMaxUnavailable: 1,
    db: { poolSize: 20, maxOverflow: 40, poolTimeoutSeconds: 30, poolRecycleSeconds: 3600, replicaMaxLagSeconds: 10 },
    cache: { enabled: true, defaultTtlSeconds: 300, warmOnStart: true, localTtlSeconds: 2, localMaxEntries: 10000 },
    partitionMaintenanceSchedule: '17 3 * * *',
    managementTokenSecret: 'api-management-token',
  },
  edge: {
    image: 'nginxinc/nginx-unprivileged:1.28.0-alpine',
    exporterImage: 'nginx/nginx-prometheus-exporter:1.4.2',
    autoscaling: {
      minReplicas: 2,
      maxReplicas: 10,
      cpuTargetPercent: 70,
      memoryTargetPercent: 80,
      scaleDownStabilizationSeconds: 300,
    },
    resources: small('100m', '64Mi', '500m', '128Mi'),
    exporterResources: small('10m', '16Mi', '100m', '32Mi'),
    serviceType: 'LoadBalancer',
    serviceAnnotations: {},
    hostnames: [],
    rateLimit: { requestsPerSecond: 100, burst: 50 },
    tls: undefined,
    upstreamKeepalive: 32,
    proxyTimeouts: { connectSeconds: 5, readSeconds: 60, sendSeconds: 60 },
    resolver: 'kube-dns.kube-system.svc.cluster.local',
    clientMaxBodySize: '1m',
  },
  postgres: {
    image: 'postgres:15.10-bookworm',
    exporterImage: 'quay.io/prometheuscommunity/postgres-exporter:v0.15.0',
    replicas: 2,
    synchronousReplicas: 0,
    synchronousCommit: 'on',
    maxConnections: 200,
    database: 'fastnext',
    user: 'fastnext',
    credentialsSecret: 'postgres-credentials',
    storage: { size: '20Gi' },
    resources: small('500m', '1Gi', '2', '2Gi'),
    exporterResources: small('10m', '32Mi', '100m', '64Mi'),
  },
  redis: {
    image: 'redis:7.0.15-bookworm',
    exporterImage: 'oliver006/redis_exporter:v1.62.0',
    masters: 3,
    replicasPerMaster: 1,
    maxmemory: '2gb',
    maxmemoryPolicy: 'allkeys-lru',
    nodeTimeoutMs: 5000,
    passwordSecret: 'redis-password',
    storage: { size: '5Gi' },
    resources: small('250m', '2560Mi', '1', '3Gi'),
    exporterResources: small('10m', '16Mi', '100m', '32Mi'),
  },
  monitoring: {
    enabled: true,
    prometheus: {
      image: 'prom/prometheus:v2.53.3',
      reloaderImage: 'ghcr.io/jimmidyson/configmap-reload:v0.13.1',
      retention: '15d',
      scrapeIntervalSeconds: 15,
      storage: { size: '50Gi' },
      resources: small('250m', '1Gi', '1', '2Gi'),
    },
    grafana: {
      image: 'grafana/grafana:11.3.0',
      resources: small('100m', '128Mi', '500m', '256Mi'),
      adminSecret: 'grafana-admin',
    },
    alerts: {
      apiErrorRatio: 0.01,
      apiP95LatencySeconds: 0.1,
      cacheHitRatio: 0.85,
      replicationLagSeconds: 10,
      postgresConnectionsRatio: 0.8,
      edge429Ratio: 0.05,
    },
  },
};

// ---------------------------------------------------------------- merge + errors

/** Thrown for an invalid environment config; `message` lists every problem, one per line. */
export class ConfigError extends Error {
  constructor(
    readonly environment: string,
    readonly problems: readonly string[],
  ) {
    super(`Invalid config for environment '${environment}':\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep-merges `override` onto `base`: objects merge key by key, arrays and scalars replace. */
export function deepMerge<T>(base: T, override: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(override)) {
    return (override === undefined ? base : override) as T;
  }
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    if (value === undefined) continue;
    out[key] = key in base ? deepMerge((base as Record<string, unknown>)[key], value) : value;
  }
  return out as T;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const key of path) {
    if (!isPlainObject(cur) && !Array.isArray(cur)) return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

function knownKeysAt(path: readonly PropertyKey[]): string[] {
  const v = valueAt({ ...DEFAULTS, name: '', namespace: '' }, path);
  return isPlainObject(v) ? Object.keys(v) : [];
}

/** Turns zod issues into "field: value — problem" lines. */
function describeIssues(issues: readonly z.core.$ZodIssue[], input: unknown): string[] {
  return issues.map((issue) => {
    const path = issue.path.map(String).join('.') || '(root)';
    if (issue.code === 'unrecognized_keys') {
      const allowed = knownKeysAt(issue.path);
      return issue.keys
        .map((k) => {
          const field = issue.path.length ? `${path}.${k}` : k;
          return `${field}: unknown field (a typo?); allowed here: ${allowed.join(', ')}`;
        })
        .join('\n  - ');
    }
    let message = issue.message;
    if (issue.code === 'invalid_value' && 'values' in issue) {
      message = `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    } else if (issue.code === 'invalid_type') {
      message = `must be of type ${issue.expected}`;
    } else if (issue.code === 'too_small' && 'minimum' in issue) {
      message = issue.message.startsWith('must') ? issue.message : `must be >= ${String(issue.minimum)}`;
    } else if (issue.code === 'too_big' && 'maximum' in issue) {
      message = issue.message.startsWith('must') ? issue.message : `must be <= ${String(issue.maximum)}`;
    }
    return `${path}: ${preview(valueAt(input, issue.path))} ${message}`;
  });
}

/**
 * Resolves an environment: merges its overrides onto its cluster profile's
 * defaults and DEFAULTS (namespace defaults to `fastnext-<name>`) and
 * validates the result. Throws ConfigError naming every bad field.
 */
export function resolveEnvironment(overrides: EnvironmentOverrides): EnvironmentConfig {
  const name = typeof overrides.name === 'string' ? overrides.name : String(overrides.name);
  // DEFAULTS, then the cluster profile's defaults, then the environment's own values.
  const base = deepMerge({ ...DEFAULTS, namespace: `fastnext-${name}` }, profileDefaults(overrides.cluster?.profile));
  const merged = deepMerge(base as unknown, overrides);
  const result = environmentSchema.safeParse(merged);
  if (!result.success) {
    throw new ConfigError(name, describeIssues(result.error.issues, merged));
  }
  return result.data;
}

// ---------------------------------------------------------------- quantities

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
  const m = /^(\d+(?:\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(q);
  if (!m) return NaN;
  return Number(m[1]) * SUFFIX[m[2] ?? ''];
}

/**
 * The environment config: one typed schema with documented defaults for every
 * tier, the merge of an environment's overrides onto those defaults, and error
 * messages that name the environment, the field, the bad value and the fix.
 *
 * Everything below `stacks/` reads its settings from an `EnvironmentConfig`
 * produced here; nothing reads `process.env`.
 */
import { z } from 'zod';
import { AUTOPILOT_NODE_SELECTOR_KEYS, CLUSTER_PROFILES, profileDefaults } from './cluster-profiles';
import {
  autoscaling,
  dnsLabel,
  dnsResolver,
  dnsSubdomain,
  imageRef,
  positiveInt,
  resources,
  serverName,
  storage,
} from './config-fields';
import { NO_POD_OPTIONS, pod } from './pod-config';
import { API_SERVICE_DEFAULTS, CRON, PRESTOP_SLEEP_SECONDS } from '../constructs/api/api-service';
import { DEFAULT_DNS_RESOLVERS } from '../constructs/core/network';
import { quantityProblem } from '../constructs/core/quantity';
import { EDGE_PROXY_DEFAULTS } from '../constructs/edge/edge-proxy';
import { ALERT_DEFAULTS, GRAFANA_DEFAULTS, PROMETHEUS_DEFAULTS } from '../constructs/monitoring';
import { RETENTION } from '../constructs/monitoring/prometheus';
import { SYNCHRONOUS_COMMIT } from '../constructs/postgres/files';
import { POSTGRES_CLUSTER_DEFAULTS } from '../constructs/postgres/postgres-cluster';
import { MAXMEMORY_POLICIES, REDIS_SIZE, redisMemoryProblem } from '../constructs/redis/files';
import { REDIS_CLUSTER_DEFAULTS } from '../constructs/redis/redis-cluster';
import { preview } from '../tools/k8s/values';

export { parseQuantity } from '../constructs/core/quantity';
export { PRESTOP_SLEEP_SECONDS } from '../constructs/api/api-service';

export { dnsLabel, imageRef, quantity } from './config-fields';
export type { PodConfig } from './pod-config';

// ---------------------------------------------------------------- the schema

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
    /** Secrets every pod pulls its images with (private registries). */
    imagePullSecrets: z.array(dnsSubdomain),

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
        partitionMaintenanceSchedule: z.string().regex(CRON, { message: 'must be a 5-field cron expression' }),
        /** Secret holding `token` for management endpoints; generated in-cluster when absent. */
        managementTokenSecret: dnsLabel,
        pod,
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
        /** Host names nginx answers for (server_name; `*.example.com` wildcards allowed); empty = any. */
        hostnames: z.array(serverName),
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
        resolver: dnsSubdomain,
        pod,
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
        synchronousCommit: z.enum(SYNCHRONOUS_COMMIT),
        maxConnections: z.number().int().min(20).max(10000),
        database: dnsLabel,
        user: dnsLabel,
        /** Secret with `password` and `replication-password`; generated in-cluster when absent. */
        credentialsSecret: dnsLabel,
        storage,
        resources,
        exporterResources: resources,
        pod,
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
        /** maxmemory per node, as Redis takes it (2gb, 1GB, 512mb; units case-insensitive); must fit under the memory limit. */
        maxmemory: z.string().regex(REDIS_SIZE, {
          message: "must be a Redis size such as '256mb', '2gb' or '1GB' (k, kb, m, mb, g, gb; any case)",
        }),
        maxmemoryPolicy: z.enum(MAXMEMORY_POLICIES),
        nodeTimeoutMs: z.number().int().min(500).max(60000),
        /** Secret with `password`; generated in-cluster when absent. */
        passwordSecret: dnsLabel,
        storage,
        resources,
        exporterResources: resources,
        pod,
      })
      .strict()
      .superRefine((r, ctx) => {
        if (!REDIS_SIZE.test(r.maxmemory) || quantityProblem(r.resources.limits.memory)) return;
        const problem = redisMemoryProblem(r.maxmemory, r.resources.limits.memory);
        if (problem) ctx.addIssue({ code: 'custom', path: ['maxmemory'], message: problem });
      }),

    monitoring: z
      .object({
        enabled: z.boolean(),
        prometheus: z
          .object({
            image: imageRef,
            reloaderImage: imageRef,
            retention: z.string().regex(RETENTION, { message: "must be a duration such as '15d'" }),
            scrapeIntervalSeconds: positiveInt,
            storage,
            resources,
            pod,
          })
          .strict(),
        grafana: z
          .object({
            image: imageRef,
            resources,
            /** Secret with `admin-user` / `admin-password`; generated in-cluster when absent. */
            adminSecret: dnsLabel,
            pod,
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
    if (env.cluster.profile === 'gke-autopilot') {
      const tiers = [
        ['api'],
        ['edge'],
        ['postgres'],
        ['redis'],
        ['monitoring', 'prometheus'],
        ['monitoring', 'grafana'],
      ];
      for (const tier of tiers) {
        const block = tier.reduce<Record<string, unknown>>((o, k) => o[k] as Record<string, unknown>, env).pod as {
          nodeSelector?: Record<string, string>;
        };
        for (const key of Object.keys(block?.nodeSelector ?? {})) {
          if (AUTOPILOT_NODE_SELECTOR_KEYS.includes(key)) continue;
          ctx.addIssue({
            code: 'custom',
            path: [...tier, 'pod', 'nodeSelector', key],
            message: `is refused by GKE Autopilot (cluster.profile 'gke-autopilot' admits node selectors on ${AUTOPILOT_NODE_SELECTOR_KEYS.join(', ')}); ask for a compute class with 'cloud.google.com/compute-class' instead`,
          });
        }
      }
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

/**
 * The defaults every environment starts from: each construct's own defaults
 * (production values), so a new environment is safe unless it says otherwise.
 */
export const DEFAULTS: Omit<EnvironmentConfig, 'name' | 'namespace'> = {
  labels: {},
  storageClass: undefined,
  production: true,
  cluster: { profile: 'generic' },
  network: { dnsResolvers: [...DEFAULT_DNS_RESOLVERS] },
  imagePullSecrets: [],
  api: { ...API_SERVICE_DEFAULTS, pod: NO_POD_OPTIONS },
  edge: { ...EDGE_PROXY_DEFAULTS, hostnames: [...EDGE_PROXY_DEFAULTS.hostnames], tls: undefined, pod: NO_POD_OPTIONS },
  postgres: { ...POSTGRES_CLUSTER_DEFAULTS, pod: NO_POD_OPTIONS },
  redis: { ...REDIS_CLUSTER_DEFAULTS, pod: NO_POD_OPTIONS },
  monitoring: {
    enabled: true,
    prometheus: { ...PROMETHEUS_DEFAULTS, scrapeIntervalSeconds: 15, pod: NO_POD_OPTIONS },
    grafana: { ...GRAFANA_DEFAULTS, pod: NO_POD_OPTIONS },
    alerts: { ...ALERT_DEFAULTS },
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
          return `${field}: unknown field (a typo?)${allowed.length ? `; allowed here: ${allowed.join(', ')}` : ''}`;
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

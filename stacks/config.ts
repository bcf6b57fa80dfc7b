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
import {
  EDGE_EXPOSE,
  EDGE_PROXY_DEFAULTS,
  edgeProblems,
  GATEWAY_NAME_REQUIRED,
} from '../constructs/edge/edge-settings';
import { HTTP_METHODS, ROUTE_PATH_REQUIRED } from '../constructs/edge/rate-limit';
import {
  ALERT_DEFAULTS,
  ALERTING_DEFAULTS,
  ALERTMANAGER_DEFAULTS,
  alertingProblems,
  GRAFANA_DEFAULTS,
  KUBE_STATE_METRICS_DEFAULTS,
  OPERATOR_RESOURCE_LABELS,
  PROMETHEUS_DEFAULTS,
  RECEIVER_TYPES,
  RUNBOOK_URL,
} from '../constructs/monitoring';
import { RETENTION } from '../constructs/monitoring/prometheus';
import { PGBOUNCER_POOL_DEFAULTS } from '../constructs/pgbouncer/pgbouncer-pool';
import { POSTGRES_CLUSTER_DEFAULTS } from '../constructs/postgres/patroni-cluster';
import {
  BACKUP_DEFAULTS,
  backupProblems,
  REPOSITORY_TYPES,
  restoreProblems,
} from '../constructs/postgres/backup-settings';
import { allowedCidrsProblem, SYNCHRONOUS_COMMIT } from '../constructs/postgres/patroni-files';
import { credentialsProblems } from '../constructs/postgres/credentials-settings';
import { serverParameterProblem } from '../constructs/postgres/pg-settings';
import { MAXMEMORY_POLICIES, REDIS_SIZE, redisMemoryProblem, redisNodeCount } from '../constructs/redis/files';
import { appCommandsProblem } from '../constructs/redis/acl';
import { REDIS_CLUSTER_DEFAULTS, redisTlsProblem, scaleFromProblem } from '../constructs/redis/redis-cluster';
import { preview } from '../tools/k8s/values';
import { connectionBudgetProblems } from './connection-budget';

export { parseQuantity } from '../constructs/core/quantity';
export { PRESTOP_SLEEP_SECONDS } from '../constructs/api/api-service';

export { dnsLabel, imageRef, quantity } from './config-fields';
export type { PodConfig } from './pod-config';

// ---------------------------------------------------------------- the schema

/** A field's own message when it is missing (the fix, not just "must be of type string"). */
const required = (message: string) => (issue: { input: unknown }) => (issue.input === undefined ? message : undefined);

/** A path segment of a problem: array indexes as numbers, as zod reports them. */
const segment = (s: string): string | number => (/^\d+$/.test(s) ? Number(s) : s);

const durationString = z.string();
/**
 * monitoring.alerting: receivers, routes and inhibit rules. Names, Secrets, matchers and
 * durations are checked by the construct's own `alertingProblems`, reported here per field.
 */
const alerting = z
  .object({
    receivers: z.array(
      z
        .object({
          name: z.string(),
          type: z.enum(RECEIVER_TYPES),
          secretName: z.string().optional(),
          secretKey: z.string().optional(),
          channel: z.string().optional(),
          to: z.string().optional(),
          from: z.string().optional(),
          smarthost: z.string().optional(),
          authUsername: z.string().optional(),
          port: z.number().optional(),
          sendResolved: z.boolean().optional(),
        })
        .strict(),
    ),
    defaultReceivers: z.object({ page: z.string(), ticket: z.string(), watchdog: z.string() }).strict(),
    routes: z.array(
      z
        .object({
          matchers: z.array(z.string()),
          receiver: z.string(),
          continue: z.boolean().optional(),
          groupBy: z.array(z.string()).optional(),
          groupWait: durationString.optional(),
          groupInterval: durationString.optional(),
          repeatInterval: durationString.optional(),
        })
        .strict(),
    ),
    groupBy: z.array(z.string()),
    groupWait: durationString,
    groupInterval: durationString,
    repeatInterval: durationString,
    watchdogInterval: durationString,
    inhibitRules: z.array(
      z
        .object({
          sourceMatchers: z.array(z.string()),
          targetMatchers: z.array(z.string()),
          equal: z.array(z.string()).optional(),
        })
        .strict(),
    ),
  })
  .strict()
  .superRefine((a, ctx) => {
    for (const p of alertingProblems({
      ...a,
      receivers: a.receivers.map((r) => ({ ...r, secretName: r.secretName ?? '' })),
    })) {
      ctx.addIssue({ code: 'custom', path: p.path, message: p.message });
    }
  });

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
        /** Fault-injection routes for the twin's drills; refused in a production environment. */
        faultInjection: z.boolean(),
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
        /** The cert-reload sidecar's (with tls only). */
        certReloadResources: resources,
        /** Service type in front of nginx. */
        serviceType: z.enum(['LoadBalancer', 'NodePort', 'ClusterIP']),
        /** Annotations of the edge Service (load-balancer settings); the profile's, plus the environment's. */
        serviceAnnotations: z.record(z.string(), z.string()),
        /** 'service': clients reach the edge Service; 'gateway': an HTTPRoute attaches it to `gateway`. */
        expose: z.enum(EDGE_EXPOSE),
        /** The Gateway the HTTPRoute attaches to (expose 'gateway'). */
        gateway: z
          .object({
            name: z.string({ error: required(GATEWAY_NAME_REQUIRED) }),
            namespace: z.string().optional(),
            sectionName: z.string().optional(),
          })
          .strict()
          .optional(),
        /** Host names nginx answers for (server_name; `*.example.com` wildcards allowed); empty = any. */
        hostnames: z.array(serverName),
        rateLimit: z
          .object({
            /** Requests per second per client IP. */
            requestsPerSecond: positiveInt,
            /** Requests queued above the rate before nginx answers 429. */
            burst: z.number().int().min(0),
            /** Client CIDRs no limit applies to (health checks, internal callers). */
            allowlist: z.array(z.string()),
            /** Limits that replace the default for the requests they match. */
            routes: z.array(
              z
                .object({
                  pathPrefix: z.string({ error: required(ROUTE_PATH_REQUIRED) }),
                  methods: z.array(z.enum(HTTP_METHODS)).optional(),
                  requestsPerSecond: z.number(),
                  burst: z.number(),
                })
                .strict(),
            ),
          })
          .strict(),
        /** TLS termination from a kubernetes.io/tls Secret; omitted = plain HTTP. */
        tls: z.object({ secretName: dnsLabel, reloadCheckSeconds: z.number().optional() }).strict().optional(),
        /** HTTP/2 on the TLS listener. */
        http2: z.boolean(),
        /** gzip for JSON responses of at least minLengthBytes. */
        gzip: z
          .object({
            enabled: z.boolean(),
            // Their ranges: edgeProblems (the construct's own rule, one message).
            minLengthBytes: z.number(),
            level: z.number(),
          })
          .strict(),
        /** The client's address from a trusted load balancer; omitted = the connection's peer (off). */
        realIp: z
          .object({
            trustedProxies: z.array(z.string()),
            header: z.enum(['X-Forwarded-For', 'proxy_protocol']),
          })
          .strict()
          .optional(),
        /** Idle keepalive connections per nginx worker to the API upstream. */
        upstreamKeepalive: positiveInt,
        proxyTimeouts: z
          .object({ connectSeconds: positiveInt, readSeconds: positiveInt, sendSeconds: positiveInt })
          .strict(),
        /** DNS server nginx re-resolves the API pods with (`resolve` upstream parameter). */
        resolver: dnsSubdomain,
        pod,
      })
      .strict()
      .superRefine((e, ctx) => {
        for (const p of edgeProblems(e)) {
          ctx.addIssue({
            code: 'custom',
            path: p.path
              .split(/[.[\]]+/)
              .filter(Boolean)
              .map(segment),
            message: p.message,
          });
        }
      }),

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
        /** PostgreSQL parameters over the derived tuning; applied by reload or by a rolling restart with switchover. */
        parameters: z.record(z.string(), z.union([z.string(), z.number()])),
        database: dnsLabel,
        user: dnsLabel,
        /** Secret with `password` and `replication-password`; generated in-cluster when absent. */
        credentialsSecret: dnsLabel,
        /** Secret with the exporter role's `password` (pg_monitor, no superuser); generated in-cluster when absent. */
        exporterCredentialsSecret: dnsLabel,
        /**
         * Credentials from any Secret (External Secrets, Sealed Secrets, SOPS): its name, its key names, and
         * `generate: false` so the generator Job never runs (constructs/postgres/credentials-settings.ts).
         */
        credentials: z
          .object({
            secretName: z.string().optional(),
            exporterSecretName: z.string().optional(),
            migrationSecretName: z.string().optional(),
            keys: z
              .object({
                password: z.string().optional(),
                replicationPassword: z.string().optional(),
                superuserPassword: z.string().optional(),
                exporterPassword: z.string().optional(),
                migrationPassword: z.string().optional(),
                alternatePassword: z.string().optional(),
                activeLogin: z.string().optional(),
              })
              .strict()
              .optional(),
            generate: z.boolean().optional(),
            /** Two application logins, rotated in turn with no failed request (docs/postgres-security.md#rotation). */
            alternateLogin: z.boolean().optional(),
          })
          .strict(),
        /** Networks pg_hba.conf admits (the cluster's pod CIDRs, IPv4 or IPv6); default the RFC 1918 ranges. */
        allowedCidrs: z.array(z.string()),
        /** TLS on every TCP connection: a Secret with tls.crt/tls.key/ca.crt (cert-manager's), or one generated in-cluster. */
        tls: z
          .object({ enabled: z.boolean(), secretName: dnsLabel.optional(), generate: z.boolean().optional() })
          .strict(),
        storage,
        resources,
        exporterResources: resources,
        pod,
        /** pgBackRest: WAL archiving and scheduled backups (constructs/postgres/backup-settings.ts documents each field). */
        backup: z
          .object({
            /** Unset in a production environment is an error: configure a repository or opt out with false. */
            enabled: z.boolean().optional(),
            repository: z
              .object({
                type: z.enum(REPOSITORY_TYPES),
                bucket: z.string().optional(),
                container: z.string().optional(),
                path: z.string().optional(),
                endpoint: z.string().optional(),
                region: z.string().optional(),
                pathStyle: z.boolean().optional(),
                volume: storage.optional(),
              })
              .strict()
              .optional(),
            /** Secret with the repository's credentials (never the credentials themselves). */
            credentialsSecret: dnsLabel.optional(),
            schedule: z.object({ full: z.string(), differential: z.string() }).strict(),
            retention: z.object({ full: z.number() }).strict(),
            archiveTimeoutSeconds: z.number(),
            encryption: z.object({ enabled: z.boolean().optional(), keySecret: dnsLabel.optional() }).strict(),
            jobImage: imageRef,
          })
          .strict()
          .superRefine((b, ctx) => {
            for (const p of backupProblems(b)) ctx.addIssue({ code: 'custom', path: [...p.path], message: p.message });
          }),
        /** Build the cluster from the backup repository (new volumes only): see docs/backup-restore.md. */
        restore: z
          .object({ fromBackup: z.object({ targetTime: z.string().optional() }).strict() })
          .strict()
          .optional(),
        /** Patroni's failover timings: a lost leader is replaced within about ttl + loopWait seconds. */
        patroni: z
          .object({
            ttlSeconds: z.number().int().min(5).max(300),
            loopWaitSeconds: z.number().int().min(1).max(60),
            retryTimeoutSeconds: z.number().int().min(1).max(120),
            /** A replica further behind than this (bytes) is never promoted. */
            maximumLagOnFailoverBytes: positiveInt,
          })
          .strict(),
      })
      .strict()
      .superRefine((p, ctx) => {
        const need = p.patroni.loopWaitSeconds + 2 * p.patroni.retryTimeoutSeconds;
        if (need > p.patroni.ttlSeconds) {
          ctx.addIssue({
            code: 'custom',
            path: ['patroni', 'ttlSeconds'],
            message: `must be >= loopWaitSeconds + 2 x retryTimeoutSeconds (${need}) so a leader renews its key before it expires`,
          });
        }
        if (p.synchronousReplicas > p.replicas) {
          ctx.addIssue({
            code: 'custom',
            path: ['synchronousReplicas'],
            message: `must be <= replicas (${p.replicas})`,
          });
        }
        for (const [name, value] of Object.entries(p.parameters)) {
          const problem = serverParameterProblem(name, value);
          if (problem) ctx.addIssue({ code: 'custom', path: ['parameters', name], message: problem });
        }
        const cidrs = allowedCidrsProblem(p.allowedCidrs);
        if (cidrs) {
          ctx.addIssue({
            code: 'custom',
            path: cidrs.index < 0 ? ['allowedCidrs'] : ['allowedCidrs', cidrs.index],
            message: cidrs.message,
          });
        }
        for (const c of credentialsProblems(p.credentials, p.credentialsSecret, p.exporterCredentialsSecret)) {
          ctx.addIssue({ code: 'custom', path: ['credentials', ...c.path], message: c.message });
        }
        if (p.tls.enabled && p.tls.generate === false && p.tls.secretName === undefined) {
          ctx.addIssue({
            code: 'custom',
            path: ['tls', 'generate'],
            message:
              'leaves TLS without a certificate source: name the Secret holding tls.crt, tls.key and ca.crt in postgres.tls.secretName ' +
              "(e.g. a cert-manager Certificate's secretName), let it be generated (generate: true), or turn TLS off (enabled: false)",
          });
        }
        for (const r of restoreProblems(p.restore, p.backup)) {
          ctx.addIssue({ code: 'custom', path: ['restore', ...r.path], message: r.message });
        }
      }),

    /** PgBouncer (transaction pooling) in front of the primary, and a second pool in front of the replicas. */
    pgbouncer: z
      .object({
        image: imageRef,
        exporterImage: imageRef,
        /** Pods per pool (>= 2 so one can be evicted). */
        replicas: z.number().int().min(2).max(20),
        /** Client connections each pod accepts. */
        maxClientConnections: positiveInt,
        /** Server connections each pod keeps per database. */
        poolSize: positiveInt,
        /** Extra server connections per pod after clients waited reservePoolTimeoutSeconds. */
        reservePoolSize: z.number().int().min(0),
        resources,
        exporterResources: resources,
        pod,
      })
      .strict(),

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
        /** Commands of the `app` ACL user; must include every command the API service sends (default: exactly those). */
        appCommands: z.array(z.string()).readonly(),
        /** Secret with one `<user>-password` key per ACL user; generated in-cluster when absent. */
        passwordSecret: dnsLabel,
        /** TLS on the client port, the bus and replication, from a Secret with tls.crt/tls.key/ca.crt (cert-manager's). */
        tls: z.object({ enabled: z.boolean(), secretName: dnsLabel.optional() }).strict(),
        /**
         * The topology the running cluster has, set while an apply shrinks it (fewer nodes): the
         * StatefulSet then waits for the create Job. Only for a scale-in; remove it once applied.
         */
        scaleFrom: z
          .object({ masters: z.number().int(), replicasPerMaster: z.number().int().optional() })
          .strict()
          .optional(),
        storage,
        resources,
        exporterResources: resources,
        pod,
      })
      .strict()
      .superRefine((r, ctx) => {
        const acl = appCommandsProblem(r.appCommands);
        if (acl) ctx.addIssue({ code: 'custom', path: ['appCommands'], message: acl });
        const tls = redisTlsProblem(r.tls);
        if (tls) ctx.addIssue({ code: 'custom', path: ['tls', 'secretName'], message: tls });
        const scaleFrom = r.scaleFrom && scaleFromProblem(r.scaleFrom, r);
        if (scaleFrom) ctx.addIssue({ code: 'custom', path: ['scaleFrom'], message: scaleFrom });
        if (!REDIS_SIZE.test(r.maxmemory) || quantityProblem(r.resources.limits.memory)) return;
        const problem = redisMemoryProblem(r.maxmemory, r.resources.limits.memory);
        if (problem) ctx.addIssue({ code: 'custom', path: ['maxmemory'], message: problem });
      }),

    monitoring: z
      .object({
        enabled: z.boolean(),
        /** `bundled`: our own Prometheus, Alertmanager, Grafana; `operator`: custom resources for an existing kube-prometheus-stack. */
        mode: z.enum(['bundled', 'operator']),
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
        alertmanager: z
          .object({
            image: imageRef,
            reloaderImage: imageRef,
            /** Replicas clustered over the mesh port (bundled mode). */
            replicas: z.number().int().min(1).max(5),
            storage,
            resources,
            pod,
          })
          .strict(),
        /** kube-state-metrics: bundled mode deploys it; operator mode relies on the stack's (the OOM and crash-loop alerts ship when on). */
        kubeStateMetrics: z.object({ enabled: z.boolean(), image: imageRef, resources, pod }).strict(),
        /** The kubelets' volume stats: bundled mode scrapes them (a ClusterRole); operator mode relies on the stack's scrape (the PVC alerts ship when on). */
        kubelet: z.object({ enabled: z.boolean() }).strict(),
        alerting,
        alerts: z
          .object({
            apiErrorRatio: z.number().gt(0).lt(1),
            apiP95LatencySeconds: z.number().gt(0),
            cacheHitRatio: z.number().gt(0).lt(1),
            replicationLagSeconds: z.number().gt(0),
            postgresConnectionsRatio: z.number().gt(0).lt(1),
            edge429Ratio: z.number().gt(0).lt(1),
            volumeFreeRatio: z.number().gt(0).lt(1),
            volumeFullInHours: positiveInt,
            volumeCriticalFreeRatio: z.number().gt(0).lt(1),
          })
          .strict(),
        /** Base URL every alert's runbook_url starts with (docs/runbooks.md as published). */
        runbookUrl: z.string().url({ message: 'must be an absolute URL (where docs/runbooks.md is published)' }),
        /** Operator mode: the existing stack. */
        operator: z
          .object({
            /** Namespace of the existing Prometheus; the NetworkPolicies admit its pods to every metrics port. */
            prometheusNamespace: dnsLabel.optional(),
            /** Labels of the existing Prometheus' pods. */
            prometheusPodLabels: z.record(z.string(), z.string()),
            /** Labels the stack's podMonitorSelector, ruleSelector and alertmanagerConfigSelector match. */
            resourceLabels: z.record(z.string(), z.string()),
          })
          .strict(),
      })
      .strict()
      .superRefine((m, ctx) => {
        if (m.enabled && m.mode === 'operator' && !m.operator.prometheusNamespace) {
          ctx.addIssue({
            code: 'custom',
            path: ['operator', 'prometheusNamespace'],
            message:
              "is required in operator mode: name the namespace of the existing Prometheus (e.g. 'monitoring'), " +
              'whose pods the NetworkPolicies then admit to the metrics ports',
          });
        }
      }),
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
        ['monitoring', 'alertmanager'],
        ['monitoring', 'kubeStateMetrics'],
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
    if (env.production && env.postgres.backup.enabled === undefined && !env.postgres.backup.repository) {
      ctx.addIssue({
        code: 'custom',
        path: ['postgres', 'backup', 'enabled'],
        message:
          "is not decided in a production environment: add postgres.backup.repository (e.g. { type: 'gcs', bucket: 'my-backups' }) " +
          'with credentialsSecret and encryption.keySecret, or set postgres.backup.enabled: false to run without backups knowingly',
      });
    }
    if (env.production && env.api.faultInjection) {
      ctx.addIssue({
        code: 'custom',
        path: ['api', 'faultInjection'],
        message: 'must be false in a production environment: the fault-injection routes let a token holder block a pod',
      });
    }
    if (env.production && env.api.autoscaling.minReplicas < 2) {
      ctx.addIssue({
        code: 'custom',
        path: ['api', 'autoscaling', 'minReplicas'],
        message: 'must be >= 2 in a production environment so one pod can be evicted without an outage',
      });
    }
    for (const problem of connectionBudgetProblems(env)) ctx.addIssue({ code: 'custom', ...problem });
    const nodes = redisNodeCount(env.redis);
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
  edge: {
    ...EDGE_PROXY_DEFAULTS,
    hostnames: [...EDGE_PROXY_DEFAULTS.hostnames],
    rateLimit: { ...EDGE_PROXY_DEFAULTS.rateLimit, allowlist: [], routes: [] },
    tls: undefined,
    realIp: undefined,
    gateway: undefined,
    pod: NO_POD_OPTIONS,
  },
  postgres: {
    ...POSTGRES_CLUSTER_DEFAULTS,
    allowedCidrs: [...POSTGRES_CLUSTER_DEFAULTS.allowedCidrs],
    credentials: {},
    tls: { enabled: true },
    pod: NO_POD_OPTIONS,
    // No repository and `enabled` unset: production environments must decide (see the schema).
    backup: {
      schedule: { ...BACKUP_DEFAULTS.schedule },
      retention: { ...BACKUP_DEFAULTS.retention },
      archiveTimeoutSeconds: BACKUP_DEFAULTS.archiveTimeoutSeconds,
      encryption: {},
      jobImage: BACKUP_DEFAULTS.jobImage,
    },
    restore: undefined,
  },
  redis: { ...REDIS_CLUSTER_DEFAULTS, pod: NO_POD_OPTIONS },
  pgbouncer: { ...PGBOUNCER_POOL_DEFAULTS, pod: NO_POD_OPTIONS },
  monitoring: {
    enabled: true,
    mode: 'bundled',
    prometheus: { ...PROMETHEUS_DEFAULTS, scrapeIntervalSeconds: 15, pod: NO_POD_OPTIONS },
    grafana: { ...GRAFANA_DEFAULTS, pod: NO_POD_OPTIONS },
    alertmanager: { ...ALERTMANAGER_DEFAULTS, pod: NO_POD_OPTIONS },
    kubeStateMetrics: { enabled: true, ...KUBE_STATE_METRICS_DEFAULTS, pod: NO_POD_OPTIONS },
    kubelet: { enabled: true },
    alerting: {
      ...ALERTING_DEFAULTS,
      receivers: ALERTING_DEFAULTS.receivers.map((r) => ({ ...r })),
      defaultReceivers: { ...ALERTING_DEFAULTS.defaultReceivers },
      routes: [],
      groupBy: [...ALERTING_DEFAULTS.groupBy],
      inhibitRules: [],
    },
    alerts: { ...ALERT_DEFAULTS },
    runbookUrl: RUNBOOK_URL,
    operator: {
      prometheusNamespace: undefined,
      prometheusPodLabels: { 'app.kubernetes.io/name': 'prometheus' },
      resourceLabels: { ...OPERATOR_RESOURCE_LABELS },
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
  const keys = new Set(isPlainObject(v) ? Object.keys(v) : []);
  // Optional fields have no default (e.g. postgres.tls.secretName): the schema names them.
  for (const k of schemaKeysAt(environmentSchema, path)) keys.add(k);
  return [...keys];
}

/** Keys of the object schema at `path` (through optional, nullable and default wrappers); [] if none. */
function schemaKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let s: unknown = schema;
  const unwrap = () => {
    while (s instanceof z.ZodOptional || s instanceof z.ZodNullable || s instanceof z.ZodDefault) s = s.unwrap();
  };
  for (const key of path) {
    unwrap();
    if (!(s instanceof z.ZodObject)) return [];
    s = (s.shape as Record<string, unknown>)[String(key)];
  }
  unwrap();
  return s instanceof z.ZodObject ? Object.keys(s.shape as object) : [];
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
      message = issue.message.startsWith('is required') ? issue.message : `must be of type ${issue.expected}`;
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

/**
 * The API tier: Deployment (no fixed replicas: the HPA owns the count),
 * ClusterIP + headless Services, HPA, PDB, ServiceAccount, NetworkPolicy,
 * the migration init container and the partition-maintenance CronJob.
 */
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { SERVICE_COMMANDS, SERVICE_ENV, SERVICE_PATHS, SERVICE_PORTS } from '../../service/src/contract';
import * as core from '../core';

/** Numeric uid/gid of the service image's non-root user (see service/Dockerfile). */
export const API_UID = 10001;

/**
 * Seconds a terminating API pod sleeps in preStop before SIGTERM, so every
 * edge pod has seen it leave the endpoints before it stops accepting.
 */
export const PRESTOP_SLEEP_SECONDS = 5;

/** The database as the API sees it (a PatroniCluster is one; so is a pooler with its database's names). */
export interface ApiDatabase extends core.ServiceEndpoint {
  /** Read endpoints on `port` of `component`'s pods, each probed for lag (member hosts of a PatroniCluster). */
  readonly replicaHosts: readonly string[];
  /**
   * Read endpoints of their own (a read-only pooler), used instead of `replicaHosts`.
   * @default - `replicaHosts` on this endpoint's pods
   */
  readonly readers?: readonly core.ServiceEndpoint[];
  /**
   * Where session-level work connects: migrations under an advisory lock, partition maintenance.
   * A transaction-pooling pooler cannot hold a session, so it goes to the primary directly.
   * @default - this endpoint
   */
  readonly session?: core.ServiceEndpoint;
  readonly database: string;
  readonly user: string;
  /** Secret with the role's password. */
  readonly credentialsSecret: string;
  /** Its key (`postgres.credentials.keys.password`); mounted as the file `password` either way. @default 'password' */
  readonly passwordKey?: string;
  /**
   * The application's second login: its password (`passwordKey`) and the name of the login in use
   * (`activeLoginKey`, absent = `user`) are mounted beside `password`, and the service reads them for each
   * new connection, so a rotation needs no restart. @default - one login
   */
  readonly alternateLogin?: { readonly user: string; readonly passwordKey: string; readonly activeLoginKey: string };
  /** TLS: every connection verify-full against the CA in this Secret's `caKey`. @default - plaintext */
  readonly tls?: { readonly secretName: string; readonly caKey: string };
  /**
   * The role migrations and partition maintenance log in as (it owns the schema; the runtime `user`
   * may not run DDL). Only the migrate init container and the CronJob mount its password.
   * @default - they run as `user`
   */
  readonly migration?: ApiMigrationRole;
}

/** The database role that runs DDL (a PatroniCluster's `migration`). */
export interface ApiMigrationRole {
  readonly user: string;
  /** Secret with its password, under `passwordKey` (mounted as the file `password`). */
  readonly credentialsSecret: string;
  readonly passwordKey: string;
  /** `Kind/name` of what creates the role (a Job): the Deployment and the CronJob are deployed after it. @default - none */
  readonly runsAfter?: string;
}

/** The cache as the API sees it (a RedisCluster is one). */
export interface ApiCache extends core.ServiceEndpoint {
  /** Every node's DNS name; the client needs one, all make start-up robust. */
  readonly seedHosts: readonly string[];
  /** Secret holding the application user's password under `appPasswordKey`. */
  readonly passwordSecret: string;
  /** The ACL user the service authenticates as. */
  readonly appUsername: string;
  readonly appPasswordKey: string;
  /** TLS: the service verifies every node against the CA in this Secret's `caKey`. @default - plaintext */
  readonly tls?: { readonly secretName: string; readonly caKey: string };
}

/** The service's connection pool to PostgreSQL. */
export interface ApiDbPool {
  readonly poolSize: number;
  readonly maxOverflow: number;
  readonly poolTimeoutSeconds: number;
  readonly poolRecycleSeconds: number;
  /** A replica lagging more than this is skipped for reads. */
  readonly replicaMaxLagSeconds: number;
}

/** The service's cache behaviour. */
export interface ApiCacheSettings {
  readonly enabled: boolean;
  readonly defaultTtlSeconds: number;
  readonly warmOnStart: boolean;
  /**
   * Seconds a value lives in each pod's in-process tier in front of Redis (hot keys skip the
   * Redis round trip); invalidations reach every pod through Redis pub/sub, and this bounds
   * staleness should one be lost. 0 turns the tier off.
   */
  readonly localTtlSeconds: number;
  /** Entries of that tier per pod (least recently used go first). */
  readonly localMaxEntries: number;
}

/** The settings of the API tier that have defaults (what an environment may override). */
export interface ApiServiceSettings extends core.ContainerSettings {
  /** The autoscaler. @default 3–20 pods at CPU 70 % / memory 80 %, scale-down after 300 s */
  readonly autoscaling?: core.AutoscalingProps;
  /** Seconds the pod keeps serving after SIGTERM while readiness fails (preStop drain), 0–300. @default 10 */
  readonly drainSeconds?: number;
  /** Pod grace period; must exceed drainSeconds + the preStop sleep. @default 30 */
  readonly terminationGracePeriodSeconds?: number;
  /** Pods the PDB lets be evicted at once. @default 1 */
  readonly pdbMaxUnavailable?: number;
  /** The connection pool. @default 20 + 40 overflow, 30 s timeout, recycle 3600 s, replica lag 10 s */
  readonly db?: ApiDbPool;
  /** The cache. @default on, TTL 300 s, warmed on start, local tier 2 s / 10000 entries */
  readonly cache?: ApiCacheSettings;
  /** Schedule (5-field cron) of the activity_logs partition maintenance CronJob. @default '17 3 * * *' */
  readonly partitionMaintenanceSchedule?: string;
  /** Secret holding `token` for management endpoints; generated in-cluster when absent. @default 'api-management-token' */
  readonly managementTokenSecret?: string;
  /**
   * Registers the service's fault-injection routes (FAULT_INJECTION=true), which let a holder of the
   * management token block a pod's event loop: for the local twin's drills only. @default false
   */
  readonly faultInjection?: boolean;
}

/** Defaults of every API setting: production values. */
export const API_SERVICE_DEFAULTS: Required<ApiServiceSettings> = {
  image: 'ghcr.io/fastnext/api:0.1.0',
  autoscaling: { minReplicas: 3, maxReplicas: 20, ...core.AUTOSCALING_TARGETS },
  resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } },
  drainSeconds: 10,
  terminationGracePeriodSeconds: 30,
  pdbMaxUnavailable: 1,
  db: { poolSize: 20, maxOverflow: 40, poolTimeoutSeconds: 30, poolRecycleSeconds: 3600, replicaMaxLagSeconds: 10 },
  cache: { enabled: true, defaultTtlSeconds: 300, warmOnStart: true, localTtlSeconds: 2, localMaxEntries: 10000 },
  partitionMaintenanceSchedule: '17 3 * * *',
  managementTokenSecret: 'api-management-token',
  faultInjection: false,
};

export interface ApiServiceProps extends ApiServiceSettings, core.WorkloadProps, core.ScrapedProps {
  /** Name of the Deployment, Services, HPA and component label. @default 'api' */
  readonly name?: string;
  /** The database the service connects to (e.g. a PostgresCluster). */
  readonly postgres: ApiDatabase;
  /** The cache the service connects to (e.g. a RedisCluster). */
  readonly redis: ApiCache;
  /** Pods allowed to call the API port. @default - the edge tier's pods (`podsOf('edge')`) */
  readonly clients?: readonly k8s.NetworkPolicyPeer[];
}

const SECRET_MOUNT = '/var/run/secrets/fastnext';

/** Component of the partition-maintenance CronJob's pods of the API `name`. */
const maintenanceComponentOf = (name: string) => `${name}-maintenance`;

/** The API tier. Its readonly fields are what the edge and monitoring tiers wire to. */
export class ApiService extends Construct implements core.ServiceEndpoint {
  /** Default component name (label `app.kubernetes.io/name`). */
  static readonly COMPONENT = 'api';
  /** Default component of the partition-maintenance CronJob's pods (a database client, not an API pod). */
  static readonly MAINTENANCE_COMPONENT = maintenanceComponentOf(ApiService.COMPONENT);
  /** Component name of the API pods. */
  readonly component: string;
  /** Component name of the partition-maintenance CronJob's pods. */
  readonly maintenanceComponent: string;
  /** In-cluster DNS name of the ClusterIP Service. */
  readonly host: string;
  /** In-cluster DNS name of the headless Service (one A record per ready pod). */
  readonly headlessHost: string;
  readonly port = SERVICE_PORTS.http;
  readonly metricsPort = SERVICE_PORTS.metrics;
  readonly deploymentName: string;
  /** The headless Service as an endpoint: what a proxy balancing over the pods connects to. */
  readonly headless: core.ServiceEndpoint;
  /** The resolved settings (defaults filled in). */
  readonly settings: Required<ApiServiceSettings>;

  constructor(scope: Construct, id: string, props: ApiServiceProps) {
    super(scope, id);
    const { postgres: database, redis: cache } = props;
    const api = core.withDefaults(API_SERVICE_DEFAULTS, props);
    checkApiSettings(api);
    const name = core.workloadName(props.name, ApiService.COMPONENT);
    const c = name;
    this.component = c;
    this.maintenanceComponent = maintenanceComponentOf(name);
    this.settings = api;
    this.deploymentName = name;
    this.host = core.serviceHost(this, name);
    this.headlessHost = core.serviceHost(this, `${name}-headless`);
    this.headless = { host: this.headlessHost, port: this.port, component: c };
    const placement = core.podPlacement(props.pod, props.imagePullSecrets);

    core.serviceAccount(this, 'service-account', c, props.pod?.serviceAccountAnnotations);
    // The bearer token of the management endpoints: generated once in-cluster unless supplied.
    new core.GeneratedSecret(this, 'management-token', {
      dnsResolvers: props.dnsResolvers,
      secretName: api.managementTokenSecret,
      keys: ['token'],
      pod: props.pod,
      imagePullSecrets: props.imagePullSecrets,
    });

    // Each Secret the pod reads is mounted as one file; the env var names that file.
    const secretFiles: { volume: string; secretName: string; key: string; path?: string; dir: string }[] = [
      {
        volume: 'postgres-credentials',
        secretName: database.credentialsSecret,
        key: database.passwordKey ?? 'password',
        path: 'password',
        dir: 'postgres',
      },
      {
        volume: 'redis-password',
        secretName: cache.passwordSecret,
        key: cache.appPasswordKey,
        path: 'password',
        dir: 'redis',
      },
      { volume: 'management-token', secretName: api.managementTokenSecret, key: 'token', dir: 'management' },
      ...(database.tls
        ? [
            {
              volume: 'postgres-tls',
              secretName: database.tls.secretName,
              key: database.tls.caKey,
              dir: 'postgres-tls',
            },
          ]
        : []),
      ...(cache.tls
        ? [{ volume: 'redis-tls', secretName: cache.tls.secretName, key: cache.tls.caKey, dir: 'redis-tls' }]
        : []),
    ];
    const [postgresPassword, redisPassword, managementToken] = secretFiles.map(
      (f) => `${SECRET_MOUNT}/${f.dir}/${f.path ?? f.key}`,
    );
    const env: k8s.EnvVar[] = [
      { name: SERVICE_ENV.port, value: String(SERVICE_PORTS.http) },
      { name: SERVICE_ENV.metricsPort, value: String(SERVICE_PORTS.metrics) },
      { name: SERVICE_ENV.logLevel, value: 'info' },
      { name: SERVICE_ENV.postgresServer, value: `${database.host}:${database.port}` },
      {
        name: SERVICE_ENV.postgresReadReplicas,
        value: (database.readers ?? database.replicaHosts.map((host) => ({ host, port: database.port })))
          .map((r) => `${r.host}:${r.port}`)
          .join(','),
      },
      { name: SERVICE_ENV.postgresDb, value: database.database },
      { name: SERVICE_ENV.postgresUser, value: database.user },
      { name: SERVICE_ENV.postgresPasswordFile, value: postgresPassword },
      ...(database.alternateLogin
        ? [
            { name: SERVICE_ENV.postgresAlternateUser, value: database.alternateLogin.user },
            { name: SERVICE_ENV.postgresAlternatePasswordFile, value: `${SECRET_MOUNT}/postgres/alternate-password` },
            { name: SERVICE_ENV.postgresActiveLoginFile, value: `${SECRET_MOUNT}/postgres/active-login` },
          ]
        : []),
      ...(database.tls
        ? [
            // The pooler and the primary present the PostgreSQL certificate: checked against the CA and the host name.
            { name: SERVICE_ENV.postgresSslMode, value: 'verify-full' },
            { name: SERVICE_ENV.postgresSslRootCert, value: `${SECRET_MOUNT}/postgres-tls/${database.tls.caKey}` },
          ]
        : []),
      { name: SERVICE_ENV.dbPoolSize, value: String(api.db.poolSize) },
      { name: SERVICE_ENV.dbMaxOverflow, value: String(api.db.maxOverflow) },
      { name: SERVICE_ENV.dbPoolTimeout, value: String(api.db.poolTimeoutSeconds) },
      { name: SERVICE_ENV.dbPoolRecycle, value: String(api.db.poolRecycleSeconds) },
      { name: SERVICE_ENV.dbReplicaMaxLag, value: String(api.db.replicaMaxLagSeconds) },
      { name: SERVICE_ENV.redisClusterNodes, value: cache.seedHosts.map((h) => `${h}:${cache.port}`).join(',') },
      { name: SERVICE_ENV.redisUsername, value: cache.appUsername },
      { name: SERVICE_ENV.redisPasswordFile, value: redisPassword },
      ...(cache.tls
        ? [{ name: SERVICE_ENV.redisTlsCaFile, value: `${SECRET_MOUNT}/redis-tls/${cache.tls.caKey}` }]
        : []),
      { name: SERVICE_ENV.cacheEnabled, value: String(api.cache.enabled) },
      { name: SERVICE_ENV.cacheDefaultTtl, value: String(api.cache.defaultTtlSeconds) },
      { name: SERVICE_ENV.cacheWarmOnStart, value: String(api.cache.warmOnStart) },
      { name: SERVICE_ENV.cacheLocalTtl, value: String(api.cache.localTtlSeconds) },
      { name: SERVICE_ENV.cacheLocalMaxEntries, value: String(api.cache.localMaxEntries) },
      { name: SERVICE_ENV.managementTokenFile, value: managementToken },
      { name: SERVICE_ENV.shutdownDrainSeconds, value: String(api.drainSeconds) },
      // Only when asked for (never in production: the config refuses it), so no shipped pod carries it.
      ...(api.faultInjection ? [{ name: SERVICE_ENV.faultInjection, value: 'true' }] : []),
    ];
    const alternate = database.alternateLogin;
    const secretVolumes: k8s.Volume[] = secretFiles.map((f) =>
      alternate && f.volume === 'postgres-credentials'
        ? {
            // Both logins' passwords, and the login in use when the Secret names one (absent: `user`).
            name: f.volume,
            projected: {
              sources: [
                {
                  secret: {
                    name: f.secretName,
                    items: [
                      { key: f.key, path: 'password' },
                      { key: alternate.passwordKey, path: 'alternate-password' },
                    ],
                  },
                },
                {
                  secret: {
                    name: f.secretName,
                    items: [{ key: alternate.activeLoginKey, path: 'active-login' }],
                    optional: true,
                  },
                },
              ],
            },
          }
        : { name: f.volume, secret: { secretName: f.secretName, items: [{ key: f.key, path: f.path ?? f.key }] } },
    );
    const secretMounts: k8s.VolumeMount[] = secretFiles.map((f) => ({
      name: f.volume,
      mountPath: `${SECRET_MOUNT}/${f.dir}`,
      readOnly: true,
    }));
    const tmpMount: k8s.VolumeMount = { name: 'tmp', mountPath: '/tmp' };

    const container: k8s.Container = {
      name: c,
      image: api.image,
      imagePullPolicy: 'IfNotPresent',
      command: [...SERVICE_COMMANDS.entrypoint],
      ports: [
        { name: 'http', containerPort: SERVICE_PORTS.http, protocol: 'TCP' },
        { name: 'metrics', containerPort: SERVICE_PORTS.metrics, protocol: 'TCP' },
      ],
      env,
      resources: core.resourcesOf(api.resources),
      securityContext: core.containerSecurityContext(),
      volumeMounts: [tmpMount, ...secretMounts],
      // Startup gives migrations' aftermath and cache warm-up up to 60 s before liveness applies.
      startupProbe: core.httpProbe(SERVICE_PATHS.startup, 'http', {
        periodSeconds: 2,
        failureThreshold: 30,
        timeoutSeconds: 2,
      }),
      livenessProbe: core.httpProbe(SERVICE_PATHS.liveness, 'http', {
        periodSeconds: 10,
        failureThreshold: 3,
        timeoutSeconds: 2,
      }),
      readinessProbe: core.httpProbe(SERVICE_PATHS.readiness, 'http', {
        periodSeconds: 5,
        failureThreshold: 2,
        timeoutSeconds: 2,
      }),
      // Give every edge pod time to drop this pod from its upstream before SIGTERM starts the drain.
      lifecycle: { preStop: { exec: { command: ['sleep', String(PRESTOP_SLEEP_SECONDS)] } } },
    };
    // Migrations finish before the new version's container starts, so no pod
    // takes traffic against an old schema; the advisory lock makes concurrent
    // init containers safe.
    const session = database.session ?? database;
    // The migration role's password: a volume of the pod, mounted only where migrations run.
    const role = database.migration;
    const migrationVolume: k8s.Volume[] = role
      ? [
          {
            name: 'postgres-migration-credentials',
            secret: { secretName: role.credentialsSecret, items: [{ key: role.passwordKey, path: 'password' }] },
          },
        ]
      : [];
    const migrationDir = `${SECRET_MOUNT}/postgres-migration`;
    const sessionEnv = [
      ...env.map((e) =>
        e.name === SERVICE_ENV.postgresServer ? { ...e, value: `${session.host}:${session.port}` } : e,
      ),
      ...(role
        ? [
            { name: SERVICE_ENV.postgresMigrationUser, value: role.user },
            { name: SERVICE_ENV.postgresMigrationPasswordFile, value: `${migrationDir}/password` },
          ]
        : []),
    ];
    const migrate: k8s.Container = {
      name: 'migrate',
      image: api.image,
      imagePullPolicy: 'IfNotPresent',
      command: [...SERVICE_COMMANDS.migrate],
      env: sessionEnv,
      resources: core.resourcesOf(api.resources),
      securityContext: core.containerSecurityContext(),
      volumeMounts: [
        tmpMount,
        ...secretMounts,
        ...migrationVolume.map((v) => ({ name: v.name, mountPath: migrationDir, readOnly: true })),
      ],
    };
    // Pulumi creates them after the role exists (stacks/deploy-order.ts); with kubectl the migrate
    // step cannot log in until then and is retried by the kubelet.
    const runsAfter: Record<string, string> = role?.runsAfter ? { [core.RUNS_AFTER_ANNOTATION]: role.runsAfter } : {};
    const deploymentMeta = core.workloadMeta(this, c, name, props);
    const podSpec: k8s.PodSpec = {
      serviceAccountName: name,
      automountServiceAccountToken: false,
      securityContext: core.podSecurityContext(API_UID),
      terminationGracePeriodSeconds: api.terminationGracePeriodSeconds,
      topologySpreadConstraints: core.topologySpread(c),
      initContainers: [migrate],
      containers: [container],
      volumes: [core.emptyDir('tmp'), ...secretVolumes, ...migrationVolume],
    };

    new k8s.KubeDeployment(this, 'deployment', {
      metadata: role?.runsAfter
        ? { ...deploymentMeta, annotations: { ...deploymentMeta.annotations, ...runsAfter } }
        : deploymentMeta,
      spec: core.deploymentSpec(c, {
        // No `replicas`: the HPA owns the count; a fixed value would reset it on every apply.
        strategy: core.surgeRollout('25%'),
        template: core.podTemplate(
          this,
          c,
          c,
          props,
          { annotations: core.scrapeAnnotations(SERVICE_PORTS.metrics, SERVICE_PATHS.metrics) },
          podSpec,
        ),
      }),
    });

    new k8s.KubeService(this, 'service', {
      metadata: core.meta(this, c, name),
      spec: {
        type: 'ClusterIP',
        selector: core.selectorLabels(c),
        ports: [
          { name: 'http', port: SERVICE_PORTS.http, targetPort: k8s.IntOrString.fromString('http'), protocol: 'TCP' },
        ],
      },
    });
    new k8s.KubeService(this, 'headless', {
      metadata: core.meta(this, c, `${name}-headless`),
      spec: {
        clusterIp: 'None',
        selector: core.selectorLabels(c),
        ports: [
          { name: 'http', port: SERVICE_PORTS.http, targetPort: k8s.IntOrString.fromString('http'), protocol: 'TCP' },
        ],
      },
    });

    core.horizontalPodAutoscaler(this, 'hpa', c, { kind: 'Deployment', name }, api.autoscaling);
    core.podDisruptionBudget(this, 'pdb', c, api.pdbMaxUnavailable);

    core.networkPolicy(this, 'network-policy', c, {
      ingress: [
        { from: [...(props.clients ?? [core.podsOf('edge')])], ports: core.tcpPorts(SERVICE_PORTS.http) },
        {
          from: [...(props.scrapers ?? [core.podsOf(core.PROMETHEUS_COMPONENT)])],
          ports: core.tcpPorts(SERVICE_PORTS.metrics),
        },
      ],
      egress: [
        core.dnsEgress(props.dnsResolvers),
        { to: [core.podsOf(database.component)], ports: core.tcpPorts(database.port) },
        ...(database.readers ?? []).map((r) => ({ to: [core.podsOf(r.component)], ports: core.tcpPorts(r.port) })),
        // The migrate init container, straight to the primary when a pooler serves the rest.
        ...(database.session ? [{ to: [core.podsOf(session.component)], ports: core.tcpPorts(session.port) }] : []),
        // The cluster bus port (+10000) too: cluster clients follow MOVED redirects by address.
        { to: [core.podsOf(cache.component)], ports: core.tcpPorts(cache.port, cache.port + 10000) },
      ],
    });

    // Monthly activity_logs partitions are created ahead of time; the command
    // is idempotent. Its pods carry their own component label so the API
    // Service, PDB and HPA never count them.
    const jc = this.maintenanceComponent;
    new k8s.KubeCronJob(this, 'partition-maintenance', {
      metadata: core.meta(this, jc, `${name}-partition-maintenance`, { annotations: runsAfter }),
      spec: {
        schedule: api.partitionMaintenanceSchedule,
        concurrencyPolicy: 'Forbid',
        successfulJobsHistoryLimit: 3,
        failedJobsHistoryLimit: 3,
        jobTemplate: {
          spec: {
            backoffLimit: 3,
            activeDeadlineSeconds: 600,
            ttlSecondsAfterFinished: 86400,
            template: {
              metadata: { labels: core.meta(this, jc, name).labels },
              spec: {
                serviceAccountName: name,
                automountServiceAccountToken: false,
                securityContext: core.podSecurityContext(API_UID),
                restartPolicy: 'OnFailure',
                ...placement,
                containers: [
                  { ...migrate, name: 'maintain-partitions', command: [...SERVICE_COMMANDS.maintainPartitions] },
                ],
                volumes: podSpec.volumes,
              },
            },
          },
        },
      },
    });
    core.networkPolicy(this, 'maintenance-network-policy', jc, {
      ingress: [],
      egress: [
        core.dnsEgress(props.dnsResolvers),
        { to: [core.podsOf(session.component)], ports: core.tcpPorts(session.port) },
      ],
    });
  }
}

function checkApiSettings(api: Required<ApiServiceSettings>): void {
  core.checkCommonSettings(api);
  core.checkAutoscaling('autoscaling', api.autoscaling);
  core.checkInt('drainSeconds', api.drainSeconds, 0, 300);
  core.checkInt('terminationGracePeriodSeconds', api.terminationGracePeriodSeconds, 1, 3600);
  if (api.terminationGracePeriodSeconds <= api.drainSeconds + PRESTOP_SLEEP_SECONDS) {
    core.fail(
      'terminationGracePeriodSeconds',
      api.terminationGracePeriodSeconds,
      `must be > 'drainSeconds' + ${PRESTOP_SLEEP_SECONDS} s of preStop (${api.drainSeconds + PRESTOP_SLEEP_SECONDS}) so in-flight requests finish before SIGKILL`,
    );
  }
  core.checkInt('pdbMaxUnavailable', api.pdbMaxUnavailable, 1);
  for (const [key, value] of Object.entries(api.db)) core.checkInt(`db.${key}`, value, key === 'maxOverflow' ? 0 : 1);
  core.checkInt('cache.defaultTtlSeconds', api.cache.defaultTtlSeconds, 1);
  core.checkInt('cache.localTtlSeconds', api.cache.localTtlSeconds, 0, 3600);
  core.checkInt('cache.localMaxEntries', api.cache.localMaxEntries, 1);
  if (!CRON.test(api.partitionMaintenanceSchedule)) {
    core.fail('partitionMaintenanceSchedule', api.partitionMaintenanceSchedule, 'must be a 5-field cron expression');
  }
  core.checkName('managementTokenSecret', api.managementTokenSecret);
}

/** A 5-field cron expression (minute hour day-of-month month day-of-week). */
export const CRON = /^(\S+\s+){4}\S+$/;

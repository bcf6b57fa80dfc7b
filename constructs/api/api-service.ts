/**
 * The API tier: Deployment (no fixed replicas: the HPA owns the count),
 * ClusterIP + headless Services, HPA, PDB, ServiceAccount, NetworkPolicy,
 * the migration init container and the partition-maintenance CronJob.
 */
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { SERVICE_COMMANDS, SERVICE_ENV, SERVICE_PATHS, SERVICE_PORTS } from '../../service/src/contract';
import { type EnvironmentConfig, PRESTOP_SLEEP_SECONDS } from '../../stacks/config';
import { GeneratedSecret } from '../core/generated-secret';
import {
  containerSecurityContext,
  httpProbe,
  dnsEgress,
  emptyDir,
  horizontalPodAutoscaler,
  meta,
  networkPolicy,
  podDisruptionBudget,
  podSecurityContext,
  podsOf,
  PROMETHEUS_COMPONENT,
  resourcesOf,
  scrapeAnnotations,
  selectorLabels,
  serviceAccount,
  tcpPorts,
  topologySpread,
} from '../core/common';

const k8s = kplus.k8s;

/** Numeric uid/gid of the service image's non-root user (see service/Dockerfile). */
export const API_UID = 10001;

/** Where the database endpoints come from (the PostgresCluster construct's readonly fields). */
export interface ApiDatabaseEndpoints {
  readonly primaryHost: string;
  /** One `host` per read replica pod, so the service can skip a lagging one. */
  readonly replicaHosts: readonly string[];
  readonly port: number;
  readonly database: string;
  readonly user: string;
  /** Secret with key `password`. */
  readonly credentialsSecret: string;
  /** Pods the API may open connections to. */
  readonly peers: kplus.k8s.NetworkPolicyPeer[];
}

/** Where the cache endpoints come from (the RedisCluster construct's readonly fields). */
export interface ApiCacheEndpoints {
  readonly seedHosts: readonly string[];
  readonly port: number;
  /** Secret with key `password`. */
  readonly passwordSecret: string;
  readonly peers: kplus.k8s.NetworkPolicyPeer[];
}

export interface ApiServiceProps {
  readonly config: EnvironmentConfig;
  readonly database: ApiDatabaseEndpoints;
  readonly cache: ApiCacheEndpoints;
  /** Component name of the pods allowed to call the API (the edge). */
  readonly clientComponent: string;
  /**
   * Where the pods may send DNS queries (UDP and TCP 53).
   * @default DEFAULT_DNS_RESOLVER_PEERS: kube-dns and node-local-dns pods, 169.254.20.10/32, 169.254.169.254/32
   */
  readonly dnsResolvers?: readonly kplus.k8s.NetworkPolicyPeer[];
}

const SECRET_MOUNT = '/var/run/secrets/fastnext';

/** The API tier. Its readonly fields are what the edge and monitoring tiers wire to. */
export class ApiService extends Construct {
  /** Component name (label `app.kubernetes.io/name`). */
  static readonly COMPONENT = 'api';
  /** Component of the partition-maintenance CronJob's pods (a database client, not an API pod). */
  static readonly MAINTENANCE_COMPONENT = 'api-maintenance';
  readonly component = ApiService.COMPONENT;
  /** In-cluster DNS name of the ClusterIP Service. */
  readonly host: string;
  /** In-cluster DNS name of the headless Service (one A record per ready pod). */
  readonly headlessHost: string;
  readonly port = SERVICE_PORTS.http;
  readonly metricsPort = SERVICE_PORTS.metrics;
  readonly deploymentName: string;

  constructor(scope: Construct, id: string, props: ApiServiceProps) {
    super(scope, id);
    const { config, database, cache } = props;
    const c = ApiService.COMPONENT;
    const name = c;
    const ns = config.namespace;
    this.deploymentName = name;
    this.host = `${name}.${ns}.svc.cluster.local`;
    this.headlessHost = `${name}-headless.${ns}.svc.cluster.local`;
    const api = config.api;

    serviceAccount(this, 'service-account', config, c);
    // The bearer token of the management endpoints: generated once in-cluster unless supplied.
    new GeneratedSecret(this, 'management-token', {
      config,
      dnsResolvers: props.dnsResolvers,
      secretName: api.managementTokenSecret,
      keys: ['token'],
    });

    // Each Secret the pod reads is mounted as one file; the env var names that file.
    const secretFiles = [
      { volume: 'postgres-credentials', secretName: database.credentialsSecret, key: 'password', dir: 'postgres' },
      { volume: 'redis-password', secretName: cache.passwordSecret, key: 'password', dir: 'redis' },
      { volume: 'management-token', secretName: api.managementTokenSecret, key: 'token', dir: 'management' },
    ];
    const [postgresPassword, redisPassword, managementToken] = secretFiles.map(
      (f) => `${SECRET_MOUNT}/${f.dir}/${f.key}`,
    );
    const env: kplus.k8s.EnvVar[] = [
      { name: SERVICE_ENV.port, value: String(SERVICE_PORTS.http) },
      { name: SERVICE_ENV.metricsPort, value: String(SERVICE_PORTS.metrics) },
      { name: SERVICE_ENV.logLevel, value: 'info' },
      { name: SERVICE_ENV.postgresServer, value: `${database.primaryHost}:${database.port}` },
      {
        name: SERVICE_ENV.postgresReadReplicas,
        value: database.replicaHosts.map((h) => `${h}:${database.port}`).join(','),
      },
      { name: SERVICE_ENV.postgresDb, value: database.database },
      { name: SERVICE_ENV.postgresUser, value: database.user },
      { name: SERVICE_ENV.postgresPasswordFile, value: postgresPassword },
      { name: SERVICE_ENV.dbPoolSize, value: String(api.db.poolSize) },
      { name: SERVICE_ENV.dbMaxOverflow, value: String(api.db.maxOverflow) },
      { name: SERVICE_ENV.dbPoolTimeout, value: String(api.db.poolTimeoutSeconds) },
      { name: SERVICE_ENV.dbPoolRecycle, value: String(api.db.poolRecycleSeconds) },
      { name: SERVICE_ENV.dbReplicaMaxLag, value: String(api.db.replicaMaxLagSeconds) },
      { name: SERVICE_ENV.redisClusterNodes, value: cache.seedHosts.map((h) => `${h}:${cache.port}`).join(',') },
      { name: SERVICE_ENV.redisPasswordFile, value: redisPassword },
      { name: SERVICE_ENV.cacheEnabled, value: String(api.cache.enabled) },
      { name: SERVICE_ENV.cacheDefaultTtl, value: String(api.cache.defaultTtlSeconds) },
      { name: SERVICE_ENV.cacheWarmOnStart, value: String(api.cache.warmOnStart) },
      { name: SERVICE_ENV.cacheLocalTtl, value: String(api.cache.localTtlSeconds) },
      { name: SERVICE_ENV.cacheLocalMaxEntries, value: String(api.cache.localMaxEntries) },
      { name: SERVICE_ENV.managementTokenFile, value: managementToken },
      { name: SERVICE_ENV.shutdownDrainSeconds, value: String(api.drainSeconds) },
    ];
    const secretVolumes: kplus.k8s.Volume[] = secretFiles.map((f) => ({
      name: f.volume,
      secret: { secretName: f.secretName, items: [{ key: f.key, path: f.key }] },
    }));
    const secretMounts: kplus.k8s.VolumeMount[] = secretFiles.map((f) => ({
      name: f.volume,
      mountPath: `${SECRET_MOUNT}/${f.dir}`,
      readOnly: true,
    }));
    const tmpMount: kplus.k8s.VolumeMount = { name: 'tmp', mountPath: '/tmp' };

    const container: kplus.k8s.Container = {
      name: c,
      image: api.image,
      imagePullPolicy: 'IfNotPresent',
      command: [...SERVICE_COMMANDS.entrypoint],
      ports: [
        { name: 'http', containerPort: SERVICE_PORTS.http, protocol: 'TCP' },
        { name: 'metrics', containerPort: SERVICE_PORTS.metrics, protocol: 'TCP' },
      ],
      env,
      resources: resourcesOf(api.resources),
      securityContext: containerSecurityContext(),
      volumeMounts: [tmpMount, ...secretMounts],
      // Startup gives migrations' aftermath and cache warm-up up to 60 s before liveness applies.
      startupProbe: httpProbe(SERVICE_PATHS.startup, 'http', {
        periodSeconds: 2,
        failureThreshold: 30,
        timeoutSeconds: 2,
      }),
      livenessProbe: httpProbe(SERVICE_PATHS.liveness, 'http', {
        periodSeconds: 10,
        failureThreshold: 3,
        timeoutSeconds: 2,
      }),
      readinessProbe: httpProbe(SERVICE_PATHS.readiness, 'http', {
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
    const migrate: kplus.k8s.Container = {
      name: 'migrate',
      image: api.image,
      imagePullPolicy: 'IfNotPresent',
      command: [...SERVICE_COMMANDS.migrate],
      env,
      resources: resourcesOf(api.resources),
      securityContext: containerSecurityContext(),
      volumeMounts: [tmpMount, ...secretMounts],
    };
    const podSpec: kplus.k8s.PodSpec = {
      serviceAccountName: name,
      automountServiceAccountToken: false,
      securityContext: podSecurityContext(API_UID),
      terminationGracePeriodSeconds: api.terminationGracePeriodSeconds,
      topologySpreadConstraints: topologySpread(c),
      initContainers: [migrate],
      containers: [container],
      volumes: [emptyDir('tmp'), ...secretVolumes],
    };

    new k8s.KubeDeployment(this, 'deployment', {
      metadata: meta(config, c, name),
      spec: {
        // No `replicas`: the HPA owns the count; a fixed value would reset it on every apply.
        revisionHistoryLimit: 5,
        selector: { matchLabels: selectorLabels(c) },
        strategy: {
          type: 'RollingUpdate',
          rollingUpdate: { maxUnavailable: k8s.IntOrString.fromNumber(0), maxSurge: k8s.IntOrString.fromString('25%') },
        },
        template: {
          metadata: {
            labels: meta(config, c, name).labels,
            annotations: scrapeAnnotations(SERVICE_PORTS.metrics, SERVICE_PATHS.metrics),
          },
          spec: podSpec,
        },
      },
    });

    new k8s.KubeService(this, 'service', {
      metadata: meta(config, c, name),
      spec: {
        type: 'ClusterIP',
        selector: selectorLabels(c),
        ports: [
          { name: 'http', port: SERVICE_PORTS.http, targetPort: k8s.IntOrString.fromString('http'), protocol: 'TCP' },
        ],
      },
    });
    new k8s.KubeService(this, 'headless', {
      metadata: meta(config, c, `${name}-headless`),
      spec: {
        clusterIp: 'None',
        selector: selectorLabels(c),
        ports: [
          { name: 'http', port: SERVICE_PORTS.http, targetPort: k8s.IntOrString.fromString('http'), protocol: 'TCP' },
        ],
      },
    });

    horizontalPodAutoscaler(this, 'hpa', config, c, { kind: 'Deployment', name }, api.autoscaling);
    podDisruptionBudget(this, 'pdb', config, c, api.pdbMaxUnavailable);

    networkPolicy(this, 'network-policy', config, c, {
      ingress: [
        { from: [podsOf(props.clientComponent)], ports: tcpPorts(SERVICE_PORTS.http) },
        { from: [podsOf(PROMETHEUS_COMPONENT)], ports: tcpPorts(SERVICE_PORTS.metrics) },
      ],
      egress: [
        dnsEgress(props.dnsResolvers),
        { to: database.peers, ports: tcpPorts(database.port) },
        { to: cache.peers, ports: tcpPorts(cache.port, cache.port + 10000) },
      ],
    });

    // Monthly activity_logs partitions are created ahead of time; the command
    // is idempotent. Its pods carry their own component label so the API
    // Service, PDB and HPA never count them.
    const jc = ApiService.MAINTENANCE_COMPONENT;
    new k8s.KubeCronJob(this, 'partition-maintenance', {
      metadata: meta(config, jc, `${name}-partition-maintenance`),
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
              metadata: { labels: meta(config, jc, name).labels },
              spec: {
                serviceAccountName: name,
                automountServiceAccountToken: false,
                securityContext: podSecurityContext(API_UID),
                restartPolicy: 'OnFailure',
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
    networkPolicy(this, 'maintenance-network-policy', config, jc, {
      ingress: [],
      egress: [dnsEgress(props.dnsResolvers), { to: database.peers, ports: tcpPorts(database.port) }],
    });
  }
}

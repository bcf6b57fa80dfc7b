/**
 * The composition: one environment config mapped to each construct's props, in
 * one place. The Chart carries the namespace and the environment's labels; the
 * Namespace (Pod Security "restricted") comes first, then each tier, wired to
 * the others through their readonly fields.
 */
import { Chart } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import { ApiService } from '../constructs/api/api-service';
import { PART_OF, PRODUCTION_LABEL, serviceHost } from '../constructs/core/labels';
import { dnsResolverPeers, podsOf, PROMETHEUS_COMPONENT } from '../constructs/core/network';
import type { StorageProps } from '../constructs/core/storage';
import { EdgeProxy } from '../constructs/edge/edge-proxy';
import { EDGE_PORTS } from '../constructs/edge/nginx-conf';
import { type AlertingProps, Monitoring, OperatorMonitoring } from '../constructs/monitoring';
import { PgBouncerPool } from '../constructs/pgbouncer/pgbouncer-pool';
import { PatroniCluster } from '../constructs/postgres/patroni-cluster';
import { DB_STATEMENT_TIMEOUT_MS } from '../service/src/contract';
import { RedisCluster, REDIS_EXPORTER_PORT } from '../constructs/redis/redis-cluster';
import type { PodOptions } from '../constructs/core/pod';
import type { EnvironmentConfig, PodConfig } from './config';

export interface PlatformProps {
  readonly config: EnvironmentConfig;
}

export class Platform extends Chart {
  readonly config: EnvironmentConfig;
  readonly namespace: string;
  readonly api: ApiService;
  readonly edge: EdgeProxy;
  /** PostgreSQL primary + streaming replicas. */
  readonly postgres: PatroniCluster;
  /** PgBouncer in front of the primary Service. */
  readonly pooler: PgBouncerPool;
  /** PgBouncer in front of the read-only Service; undefined without replicas. */
  readonly readOnlyPooler?: PgBouncerPool;
  /** The Redis Cluster. */
  readonly redis: RedisCluster;
  /** Prometheus, Alertmanager, Grafana (bundled mode); undefined in operator mode or when `monitoring.enabled` is false. */
  readonly monitoring?: Monitoring;
  /** PodMonitors, PrometheusRule, AlertmanagerConfig and dashboards (operator mode). */
  readonly operatorMonitoring?: OperatorMonitoring;

  constructor(scope: Construct, id: string, props: PlatformProps) {
    const { config } = props;
    super(scope, id, { namespace: config.namespace, labels: config.labels, disableResourceNameHashes: true });
    this.config = config;
    this.namespace = config.namespace;

    new kplus.k8s.KubeNamespace(this, 'namespace', {
      metadata: {
        name: config.namespace,
        labels: {
          ...config.labels,
          'app.kubernetes.io/part-of': PART_OF,
          [PRODUCTION_LABEL]: String(config.production),
          'pod-security.kubernetes.io/enforce': 'restricted',
          'pod-security.kubernetes.io/enforce-version': 'v1.28',
          'pod-security.kubernetes.io/audit': 'restricted',
          'pod-security.kubernetes.io/warn': 'restricted',
        },
      },
    });

    // A tier's own StorageClass, else the environment's (else the cluster's default).
    const storage = (s: StorageProps): StorageProps => ({ ...s, storageClass: s.storageClass ?? config.storageClass });
    const imagePullSecrets = config.imagePullSecrets;
    // Validated by the config schema; every tier's NetworkPolicy allows DNS to exactly these.
    const dnsResolvers = dnsResolverPeers(config.network.dnsResolvers);
    const apiPods = podsOf(ApiService.COMPONENT);
    // Who may scrape the metrics ports: our Prometheus, or the existing stack's in its namespace.
    const m = config.monitoring;
    const operatorMode = m.enabled && m.mode === 'operator';
    const scrapers: kplus.k8s.NetworkPolicyPeer[] = operatorMode
      ? [
          {
            namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': m.operator.prometheusNamespace! } },
            podSelector: { matchLabels: { ...m.operator.prometheusPodLabels } },
          },
        ]
      : [podsOf(PROMETHEUS_COMPONENT)];

    const poolerNames = ['pgbouncer', ...(config.postgres.replicas > 0 ? ['pgbouncer-readonly'] : [])];
    this.postgres = new PatroniCluster(this, 'postgres', {
      ...config.postgres,
      pod: podOptions(config.postgres.pod),
      storage: storage(config.postgres.storage),
      // The poolers, and the API's session-level work (the migrate init container, the CronJob).
      clients: [...poolerNames.map(podsOf), apiPods, podsOf(ApiService.MAINTENANCE_COMPONENT)],
      statementTimeoutMs: DB_STATEMENT_TIMEOUT_MS,
      scrapers,
      // The poolers present the PostgreSQL certificate to the API too.
      tlsDnsNames: poolerNames.map((n) => serviceHost(this, n)),
      imagePullSecrets,
      dnsResolvers,
    });
    const pooler = (name: string, serverHost: string) =>
      new PgBouncerPool(this, name, {
        ...config.pgbouncer,
        name,
        pod: podOptions(config.pgbouncer.pod),
        database: {
          primaryHost: serverHost,
          port: this.postgres.port,
          database: this.postgres.database,
          user: this.postgres.user,
          credentialsSecret: this.postgres.credentialsSecret,
          passwordKey: this.postgres.credentials.keys.password,
          alternateLogin: this.postgres.alternateLogin,
          peers: this.postgres.peers,
          tls: this.postgres.tls,
        },
        clients: [apiPods],
        scrapers,
        imagePullSecrets,
        dnsResolvers,
      });
    this.pooler = pooler('pgbouncer', this.postgres.primaryHost);
    if (config.postgres.replicas > 0) this.readOnlyPooler = pooler('pgbouncer-readonly', this.postgres.readOnlyHost);
    this.redis = new RedisCluster(this, 'redis', {
      ...config.redis,
      pod: podOptions(config.redis.pod),
      storage: storage(config.redis.storage),
      clients: [apiPods],
      scrapers,
      imagePullSecrets,
      dnsResolvers,
    });
    this.api = new ApiService(this, 'api', {
      ...config.api,
      pod: podOptions(config.api.pod),
      // Served through PgBouncer; reads through the read-only pool; session work straight to the primary.
      postgres: {
        host: this.pooler.host,
        port: this.pooler.port,
        component: this.pooler.component,
        replicaHosts: [],
        readers: this.readOnlyPooler ? [this.readOnlyPooler] : [],
        database: this.postgres.database,
        user: this.postgres.user,
        credentialsSecret: this.postgres.credentialsSecret,
        passwordKey: this.postgres.credentials.keys.password,
        alternateLogin: this.postgres.alternateLogin,
        tls: this.postgres.tls,
        session: this.postgres,
        // Migrations and partition maintenance run DDL as the role that owns the schema.
        migration: this.postgres.migration,
      },
      redis: this.redis,
      clients: [podsOf(EdgeProxy.COMPONENT)],
      scrapers,
      imagePullSecrets,
      dnsResolvers,
    });
    this.edge = new EdgeProxy(this, 'edge', {
      ...config.edge,
      pod: podOptions(config.edge.pod),
      upstream: this.api.headless,
      scrapers,
      imagePullSecrets,
      dnsResolvers,
    });

    const scrapeTargets = [
      { component: this.api.component, port: this.api.metricsPort },
      { component: this.edge.component, port: EDGE_PORTS.metrics },
      { component: this.postgres.component, port: this.postgres.exporterPort },
      { component: this.postgres.component, port: this.postgres.patroniApiPort },
      ...[this.pooler, this.readOnlyPooler].flatMap((p) =>
        p ? [{ component: p.component, port: p.exporterPort }] : [],
      ),
      { component: this.redis.component, port: REDIS_EXPORTER_PORT },
    ];
    if (operatorMode) {
      this.operatorMonitoring = new OperatorMonitoring(this, 'monitoring', {
        monitored: config,
        // Every metrics container port is named 'metrics'; Patroni's REST API (its /metrics too) is 'patroni'.
        scrapeTargets: [
          { component: this.api.component },
          { component: this.edge.component },
          { component: this.postgres.component, portNames: ['metrics', 'patroni'] },
          ...[this.pooler, this.readOnlyPooler].flatMap((p) => (p ? [{ component: p.component }] : [])),
          { component: this.redis.component },
        ],
        alerting: alertingProps(m.alerting),
        resourceLabels: m.operator.resourceLabels,
      });
    } else if (m.enabled) {
      const { prometheus, grafana, alertmanager, kubeStateMetrics } = m;
      this.monitoring = new Monitoring(this, 'monitoring', {
        monitored: config,
        prometheus: { ...prometheus, pod: podOptions(prometheus.pod), storage: storage(prometheus.storage) },
        grafana: { ...grafana, pod: podOptions(grafana.pod) },
        alertmanager: { ...alertmanager, pod: podOptions(alertmanager.pod), storage: storage(alertmanager.storage) },
        kubeStateMetrics: { ...kubeStateMetrics, pod: podOptions(kubeStateMetrics.pod) },
        scrapeKubelets: m.kubelet.enabled,
        alerting: alertingProps(m.alerting),
        imagePullSecrets,
        dnsResolvers,
        scrapeTargets,
      });
    }
  }
}

/** The alerting block as the constructs take it (the schema has already refused a receiver without a Secret). */
function alertingProps(a: EnvironmentConfig['monitoring']['alerting']): AlertingProps {
  return { ...a, receivers: a.receivers.map((r) => ({ ...r, secretName: r.secretName ?? '' })) };
}

/** A tier's pod block as the construct takes it (an emptyDir's sizeLimit becomes a Quantity). */
function podOptions(pod: PodConfig): PodOptions {
  return {
    ...pod,
    extraVolumes: pod.extraVolumes.map(({ emptyDir, ...v }) => ({
      ...v,
      ...(emptyDir
        ? {
            emptyDir: {
              ...emptyDir,
              sizeLimit:
                emptyDir.sizeLimit === undefined ? undefined : kplus.k8s.Quantity.fromString(emptyDir.sizeLimit),
            },
          }
        : {}),
    })),
  };
}

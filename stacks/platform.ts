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
import { PART_OF, PRODUCTION_LABEL } from '../constructs/core/labels';
import { dnsResolverPeers, podsOf, PROMETHEUS_COMPONENT } from '../constructs/core/network';
import type { StorageProps } from '../constructs/core/storage';
import { EdgeProxy } from '../constructs/edge/edge-proxy';
import { EDGE_PORTS } from '../constructs/edge/nginx-conf';
import { Monitoring } from '../constructs/monitoring';
import { PostgresCluster, POSTGRES_EXPORTER_PORT } from '../constructs/postgres/postgres-cluster';
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
  readonly postgres: PostgresCluster;
  /** The Redis Cluster. */
  readonly redis: RedisCluster;
  /** Prometheus + Grafana; undefined when `monitoring.enabled` is false. */
  readonly monitoring?: Monitoring;

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

    this.postgres = new PostgresCluster(this, 'postgres', {
      ...config.postgres,
      pod: podOptions(config.postgres.pod),
      storage: storage(config.postgres.storage),
      clients: [apiPods, podsOf(ApiService.MAINTENANCE_COMPONENT)],
      imagePullSecrets,
      dnsResolvers,
    });
    this.redis = new RedisCluster(this, 'redis', {
      ...config.redis,
      pod: podOptions(config.redis.pod),
      storage: storage(config.redis.storage),
      clients: [apiPods],
      imagePullSecrets,
      dnsResolvers,
    });
    this.api = new ApiService(this, 'api', {
      ...config.api,
      pod: podOptions(config.api.pod),
      postgres: this.postgres,
      redis: this.redis,
      clients: [podsOf(EdgeProxy.COMPONENT)],
      scrapers: [podsOf(PROMETHEUS_COMPONENT)],
      imagePullSecrets,
      dnsResolvers,
    });
    this.edge = new EdgeProxy(this, 'edge', {
      ...config.edge,
      pod: podOptions(config.edge.pod),
      upstream: this.api.headless,
      imagePullSecrets,
      dnsResolvers,
    });

    if (config.monitoring.enabled) {
      const { prometheus, grafana } = config.monitoring;
      this.monitoring = new Monitoring(this, 'monitoring', {
        monitored: config,
        prometheus: { ...prometheus, pod: podOptions(prometheus.pod), storage: storage(prometheus.storage) },
        grafana: { ...grafana, pod: podOptions(grafana.pod) },
        imagePullSecrets,
        dnsResolvers,
        scrapeTargets: [
          { component: this.api.component, port: this.api.metricsPort },
          { component: this.edge.component, port: EDGE_PORTS.metrics },
          { component: this.postgres.component, port: POSTGRES_EXPORTER_PORT },
          { component: this.redis.component, port: REDIS_EXPORTER_PORT },
        ],
      });
    }
  }
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

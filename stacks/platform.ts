/**
 * The whole topology of one environment, composed from its config: the
 * Namespace (Pod Security "restricted"), then each tier wired to the others
 * through their readonly fields.
 */
import { Chart } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from './config';
import { ApiService } from '../constructs/api/api-service';
import { dnsResolverPeers, PART_OF, PRODUCTION_LABEL } from '../constructs/core/common';
import { EdgeProxy } from '../constructs/edge/edge-proxy';
import { EDGE_PORTS } from '../constructs/edge/nginx-conf';
import { Monitoring } from '../constructs/monitoring';
import { PostgresCluster, POSTGRES_EXPORTER_PORT } from '../constructs/postgres/postgres-cluster';
import { RedisCluster, REDIS_EXPORTER_PORT } from '../constructs/redis/redis-cluster';

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
    super(scope, id, { namespace: config.namespace, disableResourceNameHashes: true });
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

    // Validated by the config schema; every tier's NetworkPolicy allows DNS to exactly these.
    const dnsResolvers = dnsResolverPeers(config.network.dnsResolvers);
    const dbClients = [ApiService.COMPONENT, ApiService.MAINTENANCE_COMPONENT];
    this.postgres = new PostgresCluster(this, 'postgres', { config, clients: dbClients, dnsResolvers });
    this.redis = new RedisCluster(this, 'redis', { config, clients: [ApiService.COMPONENT], dnsResolvers });
    const database = {
      primaryHost: this.postgres.primaryHost,
      replicaHosts: this.postgres.replicaHosts,
      port: this.postgres.port,
      database: this.postgres.database,
      user: this.postgres.user,
      credentialsSecret: this.postgres.credentialsSecret,
      peers: this.postgres.peers,
    };
    const cache = {
      seedHosts: this.redis.seedHosts,
      port: this.redis.port,
      passwordSecret: this.redis.passwordSecret,
      peers: this.redis.peers,
    };

    this.api = new ApiService(this, 'api', {
      config,
      database,
      cache,
      clientComponent: EdgeProxy.COMPONENT,
      dnsResolvers,
    });
    this.edge = new EdgeProxy(this, 'edge', {
      config,
      dnsResolvers,
      upstream: { headlessHost: this.api.headlessHost, port: this.api.port, component: this.api.component },
    });

    if (config.monitoring.enabled) {
      this.monitoring = new Monitoring(this, 'monitoring', {
        config,
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

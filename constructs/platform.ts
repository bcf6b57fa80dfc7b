/**
 * The whole topology of one environment, composed from its config: the
 * Namespace (Pod Security "restricted"), then each tier wired to the others
 * through their readonly fields.
 */
import { Chart } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import type { EnvironmentConfig } from '../stacks/config';
import { ApiService } from './api-service';
import { PART_OF, podsOf } from './common';
import { EdgeProxy } from './edge-proxy';
import { EDGE_PORTS } from './config-files/nginx-conf';
import { Monitoring } from './monitoring';

export interface PlatformProps {
  readonly config: EnvironmentConfig;
}

export class Platform extends Chart {
  readonly config: EnvironmentConfig;
  readonly namespace: string;
  readonly api: ApiService;
  readonly edge: EdgeProxy;
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
          'pod-security.kubernetes.io/enforce': 'restricted',
          'pod-security.kubernetes.io/enforce-version': 'v1.28',
          'pod-security.kubernetes.io/audit': 'restricted',
          'pod-security.kubernetes.io/warn': 'restricted',
        },
      },
    });

    // Placeholder endpoints until the data tier's constructs land: same names they will expose.
    const ns = config.namespace;
    const database = {
      primaryHost: `postgres-primary.${ns}.svc.cluster.local`,
      replicaHosts: Array.from(
        { length: config.postgres.replicas },
        (_, i) => `postgres-replica-${i}.postgres-replica-headless.${ns}.svc.cluster.local`,
      ),
      port: 5432,
      database: config.postgres.database,
      user: config.postgres.user,
      credentialsSecret: config.postgres.credentialsSecret,
      peers: [podsOf('postgres')],
    };
    const cache = {
      seedHosts: Array.from(
        { length: config.redis.masters * (1 + config.redis.replicasPerMaster) },
        (_, i) => `redis-${i}.redis-headless.${ns}.svc.cluster.local`,
      ),
      port: 6379,
      passwordSecret: config.redis.passwordSecret,
      peers: [podsOf('redis')],
    };

    this.api = new ApiService(this, 'api', { config, database, cache, clientComponent: EdgeProxy.COMPONENT });
    this.edge = new EdgeProxy(this, 'edge', {
      config,
      upstream: { headlessHost: this.api.headlessHost, port: this.api.port, component: this.api.component },
    });

    if (config.monitoring.enabled) {
      this.monitoring = new Monitoring(this, 'monitoring', {
        config,
        scrapeTargets: [
          { component: this.api.component, port: this.api.metricsPort },
          { component: this.edge.component, port: EDGE_PORTS.metrics },
          // The data tier's exporter sidecars (postgres_exporter, redis_exporter default ports).
          { component: 'postgres', port: 9187 },
          { component: 'redis', port: 9121 },
        ],
      });
    }
  }
}

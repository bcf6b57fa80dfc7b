/**
 * What the rules and dashboards say about the tiers they watch: bounds and
 * thresholds. The shape follows the platform's settings, so a resolved
 * environment is one as it stands; a chart of your own writes just these fields.
 */
import type { AutoscalingProps } from '../core/workload';

/** Alert thresholds. */
export interface AlertThresholds {
  /** 5xx share of API responses above which ApiErrorRatioHigh fires. */
  readonly apiErrorRatio: number;
  readonly apiP95LatencySeconds: number;
  /** Cache hit ratio below which CacheHitRatioLow fires. */
  readonly cacheHitRatio: number;
  readonly replicationLagSeconds: number;
  /** Share of max_connections in use above which PostgresConnectionsHigh fires. */
  readonly postgresConnectionsRatio: number;
  /** Share of edge responses answered 429. */
  readonly edge429Ratio: number;
}

/** Defaults of the alert thresholds. */
export const ALERT_DEFAULTS: AlertThresholds = {
  apiErrorRatio: 0.01,
  apiP95LatencySeconds: 0.1,
  cacheHitRatio: 0.85,
  replicationLagSeconds: 10,
  postgresConnectionsRatio: 0.8,
  edge429Ratio: 0.05,
};

type Bounds = Pick<AutoscalingProps, 'minReplicas' | 'maxReplicas'>;

/** The watched platform: each tier's bounds, the thresholds, the scrape interval and the environment name. */
export interface MonitoredPlatform {
  /** Environment name, Prometheus' `environment` external label. */
  readonly name: string;
  readonly api: { readonly autoscaling: Bounds };
  readonly edge: { readonly autoscaling: Bounds };
  readonly postgres: { readonly replicas: number };
  readonly redis: { readonly masters: number; readonly replicasPerMaster: number };
  readonly monitoring: {
    readonly alerts: AlertThresholds;
    readonly prometheus: { readonly scrapeIntervalSeconds: number };
  };
}

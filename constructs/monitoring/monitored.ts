import * as core from '../core';
import type { MonitoredBackup } from '../postgres/backup-alerts';

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
  /** Free share of a PVC below which a predicted fill-up (PersistentVolumeFillingUp) is reported. */
  readonly volumeFreeRatio: number;
  /** How far ahead PersistentVolumeFillingUp projects the fill rate, in hours. */
  readonly volumeFullInHours: number;
  /** Free share of a PVC below which PersistentVolumeAlmostFull pages. */
  readonly volumeCriticalFreeRatio: number;
}

/** Defaults of the alert thresholds. */
export const ALERT_DEFAULTS: AlertThresholds = {
  apiErrorRatio: 0.01,
  apiP95LatencySeconds: 0.1,
  cacheHitRatio: 0.85,
  replicationLagSeconds: 10,
  postgresConnectionsRatio: 0.8,
  edge429Ratio: 0.05,
  volumeFreeRatio: 0.15,
  volumeFullInHours: 96,
  volumeCriticalFreeRatio: 0.03,
};

/** Where every alert's `runbook_url` points (a section per alert, anchored by its lowercased name). */
export const RUNBOOK_URL = 'https://github.com/fastnext/fastnext-platform/blob/main/docs/runbooks.md';

type Bounds = Pick<core.AutoscalingProps, 'minReplicas' | 'maxReplicas'>;

/** The watched platform: each tier's bounds, the thresholds, the scrape interval and the environment name. */
export interface MonitoredPlatform {
  /** Environment name, Prometheus' `environment` external label. */
  readonly name: string;
  readonly api: { readonly autoscaling: Bounds };
  readonly edge: { readonly autoscaling: Bounds };
  readonly postgres: { readonly replicas: number; readonly backup?: MonitoredBackup };
  readonly redis: { readonly masters: number; readonly replicasPerMaster: number };
  readonly monitoring: {
    readonly alerts: AlertThresholds;
    readonly prometheus: { readonly scrapeIntervalSeconds: number };
    /** Which Prometheus evaluates the rules: our own, or an existing prometheus-operator stack's. @default 'bundled' */
    readonly mode?: MonitoringMode;
    /** The bundled Alertmanager's replicas (its cluster-size alert). @default 1 */
    readonly alertmanager?: { readonly replicas: number };
    /** Whether kube-state-metrics runs (its OOM and crash-loop alerts ship). @default false */
    readonly kubeStateMetrics?: { readonly enabled: boolean };
    /** Whether the kubelets are scraped for volume stats (the PVC alerts ship). @default false */
    readonly kubelet?: { readonly enabled: boolean };
    /** Base URL of the runbook each alert links to. @default RUNBOOK_URL */
    readonly runbookUrl?: string;
  };
}

/** `bundled`: our own Prometheus, Alertmanager and Grafana; `operator`: custom resources for an existing kube-prometheus-stack. */
export type MonitoringMode = 'bundled' | 'operator';

/**
 * Which metric names the shipped rules and dashboards use, and which of them
 * nothing produces. Recording rules count as producers of their own names.
 */
import { recordingRules, shippedAlertRules } from '../../../constructs/monitoring/alert-rules';
import { dashboardExpressions, dashboards } from '../../../constructs/monitoring/dashboards';
import type { EnvironmentConfig } from '../../../stacks/config';
import { metricNamesOf } from './promql-names';

export interface Use {
  readonly metric: string;
  /** Where it is used, e.g. `alert ApiErrorRatioHigh` or `dashboard fastnext-edge / Connections`. */
  readonly where: string;
}

/** Every PromQL expression that ships for an environment, with where it sits. */
export function shippedExpressions(config: EnvironmentConfig): { where: string; expr: string }[] {
  return [
    ...recordingRules().map((r) => ({ where: `record ${r.record}`, expr: r.expr })),
    ...shippedAlertRules(config).map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })),
    ...Object.values(dashboards(config)).flatMap((d) =>
      dashboardExpressions(d).map((e) => ({ where: `dashboard ${d.uid} / ${e.panel}`, expr: e.expr })),
    ),
  ];
}

export function metricUses(config: EnvironmentConfig): Use[] {
  return shippedExpressions(config).flatMap(({ where, expr }) =>
    metricNamesOf(expr).map((metric) => ({ metric, where })),
  );
}

/** Uses whose metric is neither in `available` nor recorded by a shipped recording rule. */
export function missingMetrics(uses: readonly Use[], available: ReadonlySet<string>): Use[] {
  const recorded = new Set(recordingRules().map((r) => r.record));
  return uses.filter((u) => !available.has(u.metric) && !recorded.has(u.metric));
}

/** The alert rule as written by every tier's rules (a leaf module: the tiers and alert-rules.ts import it). */

/**
 * How an alert is routed (constructs/monitoring/alerting.ts): `page` to the paging receiver,
 * `ticket` to the chat one, `none` only for the Watchdog (its own route, the dead man's switch).
 */
export type Severity = 'page' | 'ticket' | 'none';

/** An alert rule as written; `shippedRuleGroups` adds the runbook link (and, in operator mode, the namespace). */
export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: { readonly severity: Severity };
  readonly annotations: { readonly summary: string; readonly description: string };
}

/** One Prometheus alerting rule; `severity` routes it (page: a person now, ticket: working hours). */
export function alertRule(
  alert: string,
  expr: string,
  forDuration: string,
  severity: 'page' | 'ticket',
  summary: string,
  description: string,
): AlertRule {
  return { alert, expr, for: forDuration, labels: { severity }, annotations: { summary, description } };
}

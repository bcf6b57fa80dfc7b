/**
 * The two renderings of alerting.ts' route tree, receivers and inhibit rules:
 * - `renderAlertmanagerConfig`: alertmanager.yml for the bundled Alertmanager, the bytes of
 *   its Secret, of `amtool check-config` and of the real Alertmanager in the tests;
 *   credentials are `*_file` paths under ALERTMANAGER_SECRETS_DIR;
 * - `alertmanagerConfigSpec`: the spec of a prometheus-operator AlertmanagerConfig
 *   (operator mode); credentials are SecretKeySelectors.
 */
import { stringify } from 'yaml';
import {
  ALERTING_DEFAULTS,
  ALERTMANAGER_SECRETS_DIR,
  type AlertingProps,
  type ChildRoute,
  childRoutes,
  inhibitRulesOf,
  type Matcher,
  type ReceiverProps,
  receiverSecret,
} from './alerting';
import type { Inhibition } from './health-alerts';

const matcherText = (m: Matcher) => `${m.name}${m.matchType}${JSON.stringify(m.value)}`;

/** Notification texts: what a person reads, with the runbook one click away. */
const TITLE =
  '[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .CommonLabels.alertname }}';
const TEXT =
  '{{ range .Alerts }}*{{ .Annotations.summary }}*\n{{ .Annotations.description }}\nRunbook: {{ .Annotations.runbook_url }}\n{{ end }}';

// ---------------------------------------------------------------- renderings

/**
 * alertmanager.yml: the one rendering of the routes and receivers that the bundled
 * Alertmanager runs. Credentials are `*_file` paths under ALERTMANAGER_SECRETS_DIR.
 */
export function renderAlertmanagerConfig(
  a: AlertingProps,
  inhibitions: readonly Inhibition[],
  watchdogAlert: string,
): string {
  const file = (r: ReceiverProps) => {
    const s = receiverSecret(r);
    return `${ALERTMANAGER_SECRETS_DIR}/${s.name}/${s.key}`;
  };
  const resolved = (r: ReceiverProps) => r.sendResolved ?? true;
  const receiver = (r: ReceiverProps): Record<string, unknown> => {
    switch (r.type) {
      case 'webhook':
        return { name: r.name, webhook_configs: [{ url_file: file(r), send_resolved: resolved(r) }] };
      case 'slack':
        return {
          name: r.name,
          slack_configs: [
            {
              api_url_file: file(r),
              ...(r.channel ? { channel: r.channel } : {}),
              send_resolved: resolved(r),
              title: TITLE,
              text: TEXT,
            },
          ],
        };
      case 'pagerduty':
        return {
          name: r.name,
          pagerduty_configs: [{ routing_key_file: file(r), send_resolved: resolved(r) }],
        };
      case 'email':
        return {
          name: r.name,
          email_configs: [
            {
              to: r.to,
              from: r.from,
              smarthost: r.smarthost,
              auth_username: r.authUsername ?? r.from,
              auth_password_file: file(r),
              require_tls: true,
              send_resolved: resolved(r),
              headers: { Subject: TITLE },
            },
          ],
        };
    }
  };
  const d = ALERTING_DEFAULTS;
  const timing = (r: Partial<ChildRoute>) => ({
    ...(r.groupBy ? { group_by: [...r.groupBy] } : {}),
    ...(r.groupWait ? { group_wait: r.groupWait } : {}),
    ...(r.groupInterval ? { group_interval: r.groupInterval } : {}),
    ...(r.repeatInterval ? { repeat_interval: r.repeatInterval } : {}),
  });
  const doc = {
    route: {
      receiver: a.defaultReceivers.ticket,
      group_by: [...(a.groupBy ?? d.groupBy)],
      group_wait: a.groupWait ?? d.groupWait,
      group_interval: a.groupInterval ?? d.groupInterval,
      repeat_interval: a.repeatInterval ?? d.repeatInterval,
      routes: childRoutes(a, watchdogAlert).map((r) => ({
        receiver: r.receiver,
        matchers: r.matchers.map(matcherText),
        ...(r.continue ? { continue: true } : {}),
        ...timing(r),
      })),
    },
    receivers: a.receivers.map(receiver),
    inhibit_rules: inhibitRulesOf(a, inhibitions).map((i) => ({
      source_matchers: i.source.map(matcherText),
      target_matchers: i.target.map(matcherText),
      ...(i.equal.length ? { equal: [...i.equal] } : {}),
    })),
  };
  return `# Rendered by constructs/monitoring/alerting.ts; credentials are read from the mounted Secrets (*_file).\n${stringify(doc)}`;
}

/**
 * The spec of a prometheus-operator `AlertmanagerConfig` (monitoring.coreos.com/v1alpha1) with
 * the same route tree, receivers and inhibit rules; credentials as SecretKeySelectors. The
 * operator confines it to alerts carrying this namespace's `namespace` label.
 */
export function alertmanagerConfigSpec(
  a: AlertingProps,
  inhibitions: readonly Inhibition[],
  watchdogAlert: string,
): Record<string, unknown> {
  const secret = (r: ReceiverProps) => receiverSecret(r);
  const resolved = (r: ReceiverProps) => r.sendResolved ?? true;
  const receiver = (r: ReceiverProps): Record<string, unknown> => {
    switch (r.type) {
      case 'webhook':
        return { name: r.name, webhookConfigs: [{ urlSecret: secret(r), sendResolved: resolved(r) }] };
      case 'slack':
        return {
          name: r.name,
          slackConfigs: [
            {
              apiURL: secret(r),
              ...(r.channel ? { channel: r.channel } : {}),
              sendResolved: resolved(r),
              title: TITLE,
              text: TEXT,
            },
          ],
        };
      case 'pagerduty':
        return {
          name: r.name,
          pagerdutyConfigs: [{ routingKey: secret(r), sendResolved: resolved(r) }],
        };
      case 'email':
        return {
          name: r.name,
          emailConfigs: [
            {
              to: r.to,
              from: r.from,
              smarthost: r.smarthost,
              authUsername: r.authUsername ?? r.from,
              authPassword: secret(r),
              requireTLS: true,
              sendResolved: resolved(r),
              headers: [{ key: 'Subject', value: TITLE }],
            },
          ],
        };
    }
  };
  const d = ALERTING_DEFAULTS;
  const crdMatcher = (m: Matcher) => ({ name: m.name, value: m.value, matchType: m.matchType });
  const timing = (r: Partial<ChildRoute>) => ({
    ...(r.groupBy ? { groupBy: [...r.groupBy] } : {}),
    ...(r.groupWait ? { groupWait: r.groupWait } : {}),
    ...(r.groupInterval ? { groupInterval: r.groupInterval } : {}),
    ...(r.repeatInterval ? { repeatInterval: r.repeatInterval } : {}),
  });
  return {
    route: {
      receiver: a.defaultReceivers.ticket,
      groupBy: [...(a.groupBy ?? d.groupBy)],
      groupWait: a.groupWait ?? d.groupWait,
      groupInterval: a.groupInterval ?? d.groupInterval,
      repeatInterval: a.repeatInterval ?? d.repeatInterval,
      routes: childRoutes(a, watchdogAlert).map((r) => ({
        receiver: r.receiver,
        matchers: r.matchers.map(crdMatcher),
        ...(r.continue ? { continue: true } : {}),
        ...timing(r),
      })),
    },
    receivers: a.receivers.map(receiver),
    inhibitRules: inhibitRulesOf(a, inhibitions).map((i) => ({
      sourceMatch: i.source.map(crdMatcher),
      targetMatch: i.target.map(crdMatcher),
      ...(i.equal.length ? { equal: [...i.equal] } : {}),
    })),
  };
}

/**
 * Who is told about an alert: receivers (webhook, Slack, PagerDuty, email), the routes
 * to them and the inhibit rules, as props; their checks; and the one route tree that
 * alertmanager-config.ts renders twice: alertmanager.yml for the bundled Alertmanager and
 * the spec of a prometheus-operator AlertmanagerConfig.
 *
 * No credential is ever written here: each receiver names a Secret (and key) that you
 * create; the bundled Alertmanager mounts it and reads it through a `*_file` field, the
 * operator's Alertmanager through a SecretKeySelector.
 */
import type { Inhibition } from './health-alerts';

export const RECEIVER_TYPES = ['webhook', 'slack', 'pagerduty', 'email'] as const;
export type ReceiverType = (typeof RECEIVER_TYPES)[number];

/** The Secret key a receiver reads when `secretKey` is not given. */
export const DEFAULT_SECRET_KEYS: Readonly<Record<ReceiverType, string>> = {
  webhook: 'url',
  slack: 'api-url',
  pagerduty: 'routing-key',
  email: 'password',
};

/** What each receiver type's Secret key holds (for error messages and docs). */
const SECRET_HOLDS: Readonly<Record<ReceiverType, string>> = {
  webhook: 'the webhook URL',
  slack: 'the Slack incoming-webhook URL',
  pagerduty: 'the PagerDuty Events v2 routing key',
  email: 'the SMTP password',
};

export interface ReceiverProps {
  /** Name routes refer to. */
  readonly name: string;
  readonly type: ReceiverType;
  /** Secret holding the credential (webhook URL, Slack URL, PagerDuty routing key, SMTP password); you create it. */
  readonly secretName: string;
  /** Key of that Secret. @default DEFAULT_SECRET_KEYS[type] */
  readonly secretKey?: string;
  /** Slack channel, e.g. `#alerts` (slack). @default - the incoming webhook's own channel */
  readonly channel?: string;
  /** Recipient address (email). */
  readonly to?: string;
  /** Sender address (email). */
  readonly from?: string;
  /** SMTP server as `host:port` (email); the port is opened in Alertmanager's egress policy. */
  readonly smarthost?: string;
  /** SMTP user (email). @default - the `from` address */
  readonly authUsername?: string;
  /** TCP port the webhook URL uses, opened in Alertmanager's egress policy (webhook). @default 443 */
  readonly port?: number;
  /** Also notify when the alert resolves. @default true */
  readonly sendResolved?: boolean;
}

export interface RouteProps {
  /** Alertmanager matchers, e.g. `team="db"`, `alertname=~"Postgres.*"`; all must match. */
  readonly matchers: readonly string[];
  readonly receiver: string;
  /** Keep matching later routes after this one. @default false */
  readonly continue?: boolean;
  /** @default - the top-level value */
  readonly groupBy?: readonly string[];
  readonly groupWait?: string;
  readonly groupInterval?: string;
  readonly repeatInterval?: string;
}

export interface InhibitRuleProps {
  readonly sourceMatchers: readonly string[];
  readonly targetMatchers: readonly string[];
  /** Labels that must be equal in source and target. @default [] */
  readonly equal?: readonly string[];
}

export interface AlertingProps {
  readonly receivers: readonly ReceiverProps[];
  /**
   * The default routes: `severity="page"` to `page`, `severity="ticket"` (and anything
   * unmatched) to `ticket`, the always-firing Watchdog to `watchdog` (a dead man's switch).
   */
  readonly defaultReceivers: { readonly page: string; readonly ticket: string; readonly watchdog: string };
  /** Routes tried before the default ones, in order. @default [] */
  readonly routes?: readonly RouteProps[];
  /** Labels alerts are grouped by into one notification. @default ['alertname', 'namespace'] */
  readonly groupBy?: readonly string[];
  /** How long a new group waits for more alerts before its first notification. @default '30s' */
  readonly groupWait?: string;
  /** How long before a group's notification about new alerts. @default '5m' */
  readonly groupInterval?: string;
  /** How long before a still-firing group is notified again. @default '4h' */
  readonly repeatInterval?: string;
  /** How often the Watchdog reaches the dead man's switch. @default '1m' */
  readonly watchdogInterval?: string;
  /** Inhibit rules beside the ones the shipped alerts declare. @default [] */
  readonly inhibitRules?: readonly InhibitRuleProps[];
}

/**
 * Conventional defaults: a PagerDuty pager, a Slack chat and a webhook dead man's switch,
 * each reading a Secret you create (`kubectl create secret generic alertmanager-pagerduty
 * --from-literal=routing-key=...`). Until a Secret exists, its receiver's notifications fail
 * (AlertmanagerNotificationsFailing) and the pod still starts.
 */
export const ALERTING_DEFAULTS: Required<AlertingProps> = {
  receivers: [
    { name: 'pager', type: 'pagerduty', secretName: 'alertmanager-pagerduty' },
    { name: 'chat', type: 'slack', secretName: 'alertmanager-slack', channel: '#fastnext-alerts' },
    { name: 'deadmans-switch', type: 'webhook', secretName: 'alertmanager-deadmans-switch', sendResolved: false },
  ],
  defaultReceivers: { page: 'pager', ticket: 'chat', watchdog: 'deadmans-switch' },
  routes: [],
  groupBy: ['alertname', 'namespace'],
  groupWait: '30s',
  groupInterval: '5m',
  repeatInterval: '4h',
  watchdogInterval: '1m',
  inhibitRules: [],
};

// ---------------------------------------------------------------- checks

/** An Alertmanager duration: `30s`, `5m`, `1h30m`. */
export const DURATION = /^([0-9]+(ms|s|m|h|d|w|y))+$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const MATCHER = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$/;
const EMAIL = /^[^\s@]+@[^\s@]+$/;
const HOST_PORT = /^[A-Za-z0-9.-]+:([0-9]{1,5})$/;
const SECRET_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;

export type MatchType = '=' | '!=' | '=~' | '!~';
export interface Matcher {
  readonly name: string;
  readonly matchType: MatchType;
  readonly value: string;
}

/** `name="value"` (or `!=`, `=~`, `!~`) as a Matcher; undefined when it is not one. */
export function parseMatcher(text: string): Matcher | undefined {
  const m = MATCHER.exec(text);
  if (!m) return undefined;
  return { name: m[1], matchType: m[2] as MatchType, value: JSON.parse(`"${m[3]}"`) as string };
}

const MATCHER_FORMAT = 'must be an Alertmanager matcher such as \'severity="page"\' or \'alertname=~"Redis.*"\'';

/** One problem: where (a path under the alerting props), the bad value, and what is wrong and how to fix it. */
export interface AlertingProblem {
  readonly path: (string | number)[];
  readonly value: unknown;
  readonly message: string;
}

const show = (v: unknown) => (v === undefined ? '(missing)' : typeof v === 'string' ? v : JSON.stringify(v));

/** Every problem of the alerting props (empty when they are valid): names, Secrets, matchers, durations. */
export function alertingProblems(a: AlertingProps): AlertingProblem[] {
  const problems: AlertingProblem[] = [];
  const add = (path: (string | number)[], value: unknown, message: string) => problems.push({ path, value, message });
  const names = a.receivers.map((r) => r.name);
  const known = `receivers are: ${names.join(', ') || '(none)'}`;
  if (a.receivers.length === 0) add(['receivers'], [], 'must name at least one receiver, or no alert reaches anyone');
  a.receivers.forEach((r, i) => {
    if (!SECRET_NAME.test(r.name ?? '')) add(['receivers', i, 'name'], r.name, 'must be a DNS-1123 label');
    if (names.indexOf(r.name) !== i)
      add(['receivers', i, 'name'], r.name, 'is used by an earlier receiver: rename one');
    if (!RECEIVER_TYPES.includes(r.type)) {
      add(['receivers', i, 'type'], r.type, `must be one of ${RECEIVER_TYPES.join(', ')}`);
      return;
    }
    const key = r.secretKey ?? DEFAULT_SECRET_KEYS[r.type];
    if (!r.secretName) {
      add(
        ['receivers', i, 'secretName'],
        r.secretName,
        `is required: name the Secret that holds ${SECRET_HOLDS[r.type]} under key '${key}' ` +
          `(kubectl create secret generic <name> --from-literal=${key}=...); credentials are never written in config`,
      );
    } else if (!SECRET_NAME.test(r.secretName) || r.secretName.length > 63) {
      add(['receivers', i, 'secretName'], r.secretName, 'must be a DNS-1123 label (a Secret name)');
    }
    if (!SECRET_KEY.test(key))
      add(['receivers', i, 'secretKey'], key, "must be a Secret key: letters, digits, '-', '_', '.'");
    if (r.type === 'email') {
      for (const field of ['to', 'from'] as const) {
        if (!EMAIL.test(r[field] ?? ''))
          add(['receivers', i, field], r[field], 'must be an email address (email receivers)');
      }
      if (!HOST_PORT.test(r.smarthost ?? '')) {
        add(
          ['receivers', i, 'smarthost'],
          r.smarthost,
          "must be the SMTP server as 'host:port', e.g. 'smtp.example.com:587'",
        );
      }
    }
    const foreign = (['to', 'from', 'smarthost', 'authUsername', 'channel', 'port'] as const).filter(
      (f) => r[f] !== undefined && !(FIELDS_OF[r.type] as readonly string[]).includes(f),
    );
    for (const f of foreign) add(['receivers', i, f], r[f], `does not apply to a ${r.type} receiver; remove it`);
    if (r.port !== undefined && (!Number.isInteger(r.port) || r.port < 1 || r.port > 65535)) {
      add(['receivers', i, 'port'], r.port, 'must be an integer in 1..65535');
    }
  });
  for (const [role, name] of Object.entries(a.defaultReceivers)) {
    if (!names.includes(name)) add(['defaultReceivers', role], name, `names no receiver; ${known}`);
  }
  (a.routes ?? []).forEach((route, i) => {
    if (!names.includes(route.receiver)) {
      add(
        ['routes', i, 'receiver'],
        route.receiver,
        `names no receiver; ${known} (add it to receivers or fix the name)`,
      );
    }
    if (route.matchers.length === 0)
      add(['routes', i, 'matchers'], [], 'must have at least one matcher, or it catches every alert');
    route.matchers.forEach((m, j) => {
      if (!parseMatcher(m)) add(['routes', i, 'matchers', j], m, MATCHER_FORMAT);
    });
    checkDurations(route, ['routes', i], add);
    (route.groupBy ?? []).forEach((l, j) => {
      if (!LABEL_NAME.test(l)) add(['routes', i, 'groupBy', j], l, 'must be a label name');
    });
  });
  checkDurations(a, [], add);
  if (a.watchdogInterval !== undefined && !DURATION.test(a.watchdogInterval)) {
    add(['watchdogInterval'], a.watchdogInterval, "must be a duration such as '1m'");
  }
  (a.groupBy ?? []).forEach((l, j) => {
    if (!LABEL_NAME.test(l)) add(['groupBy', j], l, 'must be a label name');
  });
  (a.inhibitRules ?? []).forEach((r, i) => {
    for (const side of ['sourceMatchers', 'targetMatchers'] as const) {
      if (r[side].length === 0) add(['inhibitRules', i, side], [], 'must have at least one matcher');
      r[side].forEach((m, j) => {
        if (!parseMatcher(m)) add(['inhibitRules', i, side, j], m, MATCHER_FORMAT);
      });
    }
  });
  return problems;
}

const FIELDS_OF: Readonly<Record<ReceiverType, readonly string[]>> = {
  webhook: ['port'],
  slack: ['channel'],
  pagerduty: [],
  email: ['to', 'from', 'smarthost', 'authUsername'],
};

function checkDurations(
  o: Pick<AlertingProps, 'groupWait' | 'groupInterval' | 'repeatInterval'>,
  at: (string | number)[],
  add: (path: (string | number)[], value: unknown, message: string) => void,
): void {
  for (const f of ['groupWait', 'groupInterval', 'repeatInterval'] as const) {
    const v = o[f];
    if (v !== undefined && !DURATION.test(v)) add([...at, f], v, "must be a duration such as '30s', '5m' or '4h'");
  }
}

/** Throws naming every problem (construct-level check; the environment schema reports the same problems per field). */
export function checkAlerting(prop: string, a: AlertingProps): void {
  const problems = alertingProblems(a);
  if (problems.length) {
    const path = (p: AlertingProblem) =>
      [prop, ...p.path].map((s, i) => (typeof s === 'number' ? `[${s}]` : i ? `.${s}` : s)).join('');
    const line = (p: AlertingProblem) => `'${path(p)}' (${show(p.value)}) ${p.message}`;
    throw new Error(problems.map(line).join('\n'));
  }
}

// ---------------------------------------------------------------- the route tree

/** Where the bundled Alertmanager mounts receiver Secrets: `<dir>/<secretName>/<key>`. */
export const ALERTMANAGER_SECRETS_DIR = '/etc/alertmanager/secrets';

/** The Secret and key a receiver reads. */
export function receiverSecret(r: ReceiverProps): { readonly name: string; readonly key: string } {
  return { name: r.secretName, key: r.secretKey ?? DEFAULT_SECRET_KEYS[r.type] };
}

/** The TCP ports a receiver connects to (Alertmanager's egress policy): HTTPS, the webhook's port, the SMTP port. */
export function receiverPorts(r: ReceiverProps): number[] {
  if (r.type === 'webhook') return [r.port ?? 443];
  if (r.type === 'email') return [Number(HOST_PORT.exec(r.smarthost ?? '')?.[1] ?? 587)];
  return [443];
}

export interface ChildRoute {
  readonly receiver: string;
  readonly matchers: readonly Matcher[];
  readonly continue?: boolean;
  readonly groupBy?: readonly string[];
  readonly groupWait?: string;
  readonly groupInterval?: string;
  readonly repeatInterval?: string;
}

const matchers = (texts: readonly string[]) => texts.map((t) => parseMatcher(t)!);

/**
 * The routes under the top level, in the order Alertmanager tries them: the Watchdog to
 * the dead man's switch (sent at once and every `watchdogInterval`), your routes, then
 * `severity="page"` and `severity="ticket"`.
 */
export function childRoutes(a: AlertingProps, watchdogAlert: string): ChildRoute[] {
  const interval = a.watchdogInterval ?? ALERTING_DEFAULTS.watchdogInterval;
  return [
    {
      receiver: a.defaultReceivers.watchdog,
      matchers: [{ name: 'alertname', matchType: '=', value: watchdogAlert }],
      groupWait: '0s',
      groupInterval: interval,
      repeatInterval: interval,
    },
    ...(a.routes ?? []).map((r) => ({ ...r, matchers: matchers(r.matchers) })),
    { receiver: a.defaultReceivers.page, matchers: [{ name: 'severity', matchType: '=', value: 'page' }] },
    { receiver: a.defaultReceivers.ticket, matchers: [{ name: 'severity', matchType: '=', value: 'ticket' }] },
  ];
}

/** Every inhibit rule: those the shipped alerts declare, then the configured ones. */
export function inhibitRulesOf(a: AlertingProps, inhibitions: readonly Inhibition[]) {
  return [
    ...inhibitions.map((i) => ({
      source: [{ name: 'alertname', matchType: '=' as const, value: i.source }],
      target: [
        i.targets.length === 1
          ? { name: 'alertname', matchType: '=' as const, value: i.targets[0] }
          : { name: 'alertname', matchType: '=~' as const, value: i.targets.join('|') },
      ],
      equal: i.equal,
    })),
    ...(a.inhibitRules ?? []).map((r) => ({
      source: matchers(r.sourceMatchers),
      target: matchers(r.targetMatchers),
      equal: r.equal ?? [],
    })),
  ];
}

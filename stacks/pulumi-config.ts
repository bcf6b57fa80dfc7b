/**
 * The Pulumi stack config, read once and typed (the pulumi/examples `config.ts`
 * pattern). Everything else in the Pulumi program takes a `PulumiSettings`.
 *
 * Overrides of the environment go through `loadEnvironment(name, overrides)`,
 * i.e. the same zod schema and the same ConfigError messages as `npm run synth`.
 * Secrets are read with `getSecret`/`requireSecret` only (never inside
 * `getObject`, which would return them as plaintext).
 */
import * as pulumi from '@pulumi/pulumi';

import type { EnvironmentConfig } from './config';
import { loadEnvironment } from './environments';

/** The config namespace (`pulumi config set fastnext:<key>`); equals the project name in Pulumi.yaml. */
export const CONFIG_NAMESPACE = 'fastnext';

/** How stateful objects (Namespace, StatefulSets, PVCs, Secrets) are shielded from deletion. */
export const STATEFUL_PROTECTIONS = ['protect', 'retainOnDelete', 'none'] as const;
export type StatefulProtection = (typeof STATEFUL_PROTECTIONS)[number];

/** Every key the program reads, with what it does (also the `docs/pulumi.md` table). */
export const CONFIG_KEYS = {
  environment: 'Environment to deploy (stacks/<name>.ts); default: the stack name',
  apiImageTag: "Tag of the API image; the repository stays the environment's (e.g. 1.4.2)",
  apiMinReplicas: 'API HPA lower bound',
  apiMaxReplicas: 'API HPA upper bound',
  hostnames: 'Host names nginx answers for (YAML list)',
  storageClass: 'StorageClass of every PVC that does not name its own',
  redisMasters: 'Redis Cluster masters (redis.masters); the create Job reshards to them (docs/redis-scaling.md)',
  redisScaleFromMasters:
    'Masters the running Redis Cluster has, set during a scale-in (redis.scaleFrom.masters): the StatefulSet then waits for the create Job',
  monitoringMode:
    "Monitoring mode: 'bundled' (our Prometheus, Alertmanager, Grafana) or 'operator' (custom resources for an existing kube-prometheus-stack)",
  prometheusNamespace: 'Operator mode: namespace of the existing Prometheus, admitted to every metrics port',
  kubeconfig: 'Kubeconfig contents or path; default: $KUBECONFIG / ~/.kube/config',
  kubeContext: 'Kubeconfig context to deploy to; default: the current context',
  statefulProtection: `One of ${STATEFUL_PROTECTIONS.join(', ')}; default: protect`,
  postgresPassword: 'Secret: PostgreSQL application user password',
  postgresReplicationPassword: 'Secret: PostgreSQL replication user password',
  postgresSuperuserPassword: 'Secret: PostgreSQL superuser password',
  postgresExporterPassword: "Secret: the PostgreSQL exporter role's password",
  postgresMigrationPassword: "Secret: the PostgreSQL migration role's password",
  postgresAlternatePassword:
    "Secret: the application's second login's password (postgres.credentials.alternateLogin; docs/postgres-security.md#rotation)",
  postgresActiveLogin:
    'With postgres.credentials.alternateLogin: the login the API uses, `<user>` or `<user>_b` (the `active-login` key)',
  redisAppPassword: 'Secret: Redis `app` ACL user password (the API service)',
  redisExporterPassword: 'Secret: Redis `exporter` ACL user password (redis_exporter, probes)',
  redisAdminPassword: 'Secret: Redis `admin` ACL user password (the cluster Jobs)',
  redisReplicationPassword: 'Secret: Redis `replication` ACL user password (replicas to masters)',
  redisAppPasswordNext: 'Secret: a second `app` password during a rotation (`app-password-next`; docs/redis-acl.md)',
  redisAppPasswordPrevious: 'Secret: the old `app` password during a rotation (`app-password-previous`)',
  redisExporterPasswordNext:
    'Secret: a second `exporter` password during a rotation (`exporter-password-next`; docs/redis-acl.md)',
  redisExporterPasswordPrevious: 'Secret: the old `exporter` password during a rotation (`exporter-password-previous`)',
  redisAdminPasswordNext:
    'Secret: a second `admin` password during a rotation (`admin-password-next`; docs/redis-acl.md)',
  redisAdminPasswordPrevious: 'Secret: the old `admin` password during a rotation (`admin-password-previous`)',
  redisReplicationPasswordNext:
    'Secret: a second `replication` password during a rotation (`replication-password-next`; docs/redis-acl.md)',
  redisReplicationPasswordPrevious:
    'Secret: the old `replication` password during a rotation (`replication-password-previous`)',
  grafanaAdminPassword: 'Secret: Grafana admin password',
  managementToken: 'Secret: token of the API management endpoints',
} as const;

/** The keys read with `getSecret`: each fills one key of one Kubernetes Secret (see pulumi-stack.ts). */
export const SECRET_CONFIG_KEYS = [
  'postgresPassword',
  'postgresReplicationPassword',
  'postgresSuperuserPassword',
  'postgresExporterPassword',
  'postgresMigrationPassword',
  'postgresAlternatePassword',
  'redisAppPassword',
  'redisExporterPassword',
  'redisAdminPassword',
  'redisReplicationPassword',
  'redisAppPasswordNext',
  'redisAppPasswordPrevious',
  'redisExporterPasswordNext',
  'redisExporterPasswordPrevious',
  'redisAdminPasswordNext',
  'redisAdminPasswordPrevious',
  'redisReplicationPasswordNext',
  'redisReplicationPasswordPrevious',
  'grafanaAdminPassword',
  'managementToken',
] as const satisfies readonly (keyof typeof CONFIG_KEYS)[];
export type SecretConfigKey = (typeof SECRET_CONFIG_KEYS)[number];

/** Credentials supplied through `pulumi config set --secret`; unset ones are generated in-cluster. */
export type SuppliedSecrets = Readonly<Partial<Record<SecretConfigKey, pulumi.Output<string>>>>;

export interface PulumiSettings {
  /** Registered environment this stack deploys. */
  readonly environment: string;
  /** The documented override subset, shaped as environment overrides. */
  readonly overrides: EnvironmentOverridesSubset;
  /** Tag replacing the API image's tag, applied by `resolveStackEnvironment`. */
  readonly apiImageTag?: string;
  /** Read as a secret: a kubeconfig usually embeds a token or client key. */
  readonly kubeconfig?: pulumi.Output<string>;
  readonly kubeContext?: string;
  readonly statefulProtection: StatefulProtection;
  readonly secrets: SuppliedSecrets;
  /** `postgresActiveLogin`: not a secret (a role name), checked against the logins when the environment is known. */
  readonly postgresActiveLogin?: string;
}

export interface EnvironmentOverridesSubset {
  readonly storageClass?: string;
  readonly monitoring?: { readonly mode?: string; readonly operator?: { readonly prometheusNamespace?: string } };
  readonly api?: { readonly autoscaling?: { readonly minReplicas?: number; readonly maxReplicas?: number } };
  readonly edge?: { readonly hostnames?: unknown };
  readonly redis?: { readonly masters?: number; readonly scaleFrom?: { readonly masters: number } };
}

/** Fails on a `fastnext:` key the program does not read: a typo would otherwise be ignored silently. */
function rejectUnknownKeys(): void {
  const prefix = `${CONFIG_NAMESPACE}:`;
  const unknown = Object.keys(pulumi.runtime.allConfig())
    .filter((key) => key.startsWith(prefix))
    .map((key) => key.slice(prefix.length))
    .filter((key) => !(key in CONFIG_KEYS));
  if (unknown.length > 0) {
    throw new Error(
      `Unknown Pulumi config key(s) ${unknown.map((k) => `'${prefix}${k}'`).join(', ')} (a typo?); ` +
        `known keys: ${Object.keys(CONFIG_KEYS).join(', ')} (see docs/pulumi.md)`,
    );
  }
}

/** Reads the stack config once. Call inside a Pulumi program (or after `pulumi.runtime.setMocks`). */
export function readPulumiSettings(): PulumiSettings {
  rejectUnknownKeys();
  const config = new pulumi.Config(CONFIG_NAMESPACE);
  const minReplicas = config.getNumber('apiMinReplicas');
  const maxReplicas = config.getNumber('apiMaxReplicas');
  const hostnames = config.getObject<unknown>('hostnames');
  const monitoringMode = config.get('monitoringMode');
  const prometheusNamespace = config.get('prometheusNamespace');
  const redisMasters = config.getNumber('redisMasters');
  const redisScaleFromMasters = config.getNumber('redisScaleFromMasters');

  const secrets: Partial<Record<SecretConfigKey, pulumi.Output<string>>> = {};
  for (const key of SECRET_CONFIG_KEYS) {
    const value = config.getSecret(key);
    if (value !== undefined) secrets[key] = value;
  }

  return {
    environment: config.get('environment') ?? pulumi.getStack(),
    overrides: {
      storageClass: config.get('storageClass'),
      api:
        minReplicas !== undefined || maxReplicas !== undefined
          ? { autoscaling: { minReplicas, maxReplicas } }
          : undefined,
      edge: hostnames !== undefined ? { hostnames } : undefined,
      redis:
        redisMasters !== undefined || redisScaleFromMasters !== undefined
          ? {
              masters: redisMasters,
              scaleFrom: redisScaleFromMasters !== undefined ? { masters: redisScaleFromMasters } : undefined,
            }
          : undefined,
      // Checked by the environment schema (mode one of bundled/operator; operator needs the namespace).
      monitoring:
        monitoringMode !== undefined || prometheusNamespace !== undefined
          ? { mode: monitoringMode, operator: prometheusNamespace !== undefined ? { prometheusNamespace } : undefined }
          : undefined,
    },
    apiImageTag: config.get('apiImageTag'),
    kubeconfig: config.getSecret('kubeconfig'),
    kubeContext: config.get('kubeContext'),
    statefulProtection: config.get('statefulProtection', { allowedValues: [...STATEFUL_PROTECTIONS] }) ?? 'protect',
    secrets,
    postgresActiveLogin: config.get('postgresActiveLogin'),
  };
}

/** `repo/name:tag` or `repo/name@sha256:…` -> `repo/name` (a registry port's ':' is kept). */
export function imageRepository(image: string): string {
  const withoutDigest = image.split('@')[0];
  const slash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.lastIndexOf(':');
  return colon > slash ? withoutDigest.slice(0, colon) : withoutDigest;
}

/**
 * The environment this stack deploys: the registered environment plus the
 * Pulumi overrides, validated by the same schema as the cdk8s path (so a bad
 * override throws the same ConfigError the synth would).
 */
export function resolveStackEnvironment(settings: PulumiSettings): EnvironmentConfig {
  const { apiImageTag, overrides } = settings;
  if (apiImageTag === undefined) return loadEnvironment(settings.environment, overrides);
  const base = loadEnvironment(settings.environment);
  const image = `${imageRepository(base.api.image)}:${apiImageTag}`;
  return loadEnvironment(settings.environment, { ...overrides, api: { ...overrides.api, image } });
}

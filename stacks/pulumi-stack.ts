/**
 * `fastnext:platform:Stack`: one environment's synthesized objects registered
 * with Pulumi, plus the Secrets supplied through `pulumi config set --secret`.
 *
 * The objects are exactly `synthObjects(config)` (the same list `npm run synth`
 * writes); nothing here describes the topology again. The Namespace is a typed
 * resource registered first; the other objects go through two v1
 * `k8s.yaml.ConfigGroup`s (prerequisites, then pod controllers) whose
 * transformation gives each object its options (provider, dependsOn,
 * protection of stateful kinds). v1 is used because its children are typed
 * resources the program (and Pulumi's mocks) see; a v2 ConfigGroup's children
 * exist only inside the provider plugin.
 */
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';

import { standardLabels } from '../constructs/core/labels';
import { GeneratedSecret } from '../constructs/core/generated-secret';
import { GRAFANA_ADMIN_KEYS } from '../constructs/monitoring';
import { alternateLoginOf, resolveCredentials, secretOf } from '../constructs/postgres/credentials-settings';
import { type RedisUserRole, redisPasswordKey } from '../constructs/redis/acl';
import type { Platform } from './platform';
import type { EnvironmentConfig } from './config';
import type { SecretConfigKey, StatefulProtection, SuppliedSecrets } from './pulumi-config';
import {
  claimPatchesOf,
  customTimeoutsOf,
  dependencyLayers,
  deployDependencies,
  objectKey,
  POD_CONTROLLER_KINDS,
} from './deploy-order';
import { buildPlatform, type KubeObject, platformObjects } from './synth';

/** Kinds holding data or identity: deleting them loses state (a PVC template lives in its StatefulSet). */
export const STATEFUL_KINDS: ReadonlySet<string> = new Set([
  'Namespace',
  'StatefulSet',
  'PersistentVolumeClaim',
  'Secret',
]);

export interface PlatformStackArgs {
  /** The resolved, validated environment. */
  readonly config: EnvironmentConfig;
  /** Kubeconfig contents or path. @default - $KUBECONFIG, then ~/.kube/config */
  readonly kubeconfig?: pulumi.Input<string>;
  /** Kubeconfig context. @default - the current context */
  readonly kubeContext?: string;
  /** How stateful objects are shielded from deletion. */
  readonly statefulProtection: StatefulProtection;
  /** Credentials from stack secrets; each one unset is generated in-cluster instead. */
  readonly secrets: SuppliedSecrets;
  /** `fastnext:postgresActiveLogin`: the `active-login` key of the credentials Secret (alternateLogin). */
  readonly postgresActiveLogin?: string;
}

/** A stack-config key that fills a key of a Secret: every secret one, and `postgresActiveLogin` (a role name). */
export type TargetConfigKey = SecretConfigKey | 'postgresActiveLogin';

/** Where one stack-config key goes: a key of a Secret the workloads read. */
interface SecretTarget {
  readonly secretName: string;
  readonly key: string;
  readonly component: string;
  /** Set with `pulumi config set --secret` (read with `getSecret`); false: plain config. */
  readonly secret: boolean;
  /** Read only with postgres.credentials.alternateLogin (the rotation keys): set without it, it is refused. */
  readonly alternateLogin?: true;
}

/** Each stack-config key's Secret and key: the names the constructs read (config fields, exported key constants). */
export function secretTargets(config: EnvironmentConfig): Record<TargetConfigKey, SecretTarget> {
  const creds = resolveCredentials(
    config.postgres.credentials,
    config.postgres.credentialsSecret,
    config.postgres.exporterCredentialsSecret,
  );
  const postgres = (
    field: keyof typeof creds.keys,
    flags: Partial<Pick<SecretTarget, 'secret' | 'alternateLogin'>> = {},
  ): SecretTarget => ({
    secretName: secretOf(creds, field),
    key: creds.keys[field],
    component: 'postgres',
    secret: true,
    ...flags,
  });
  /** A Redis user's password key; `suffix`: a second one during a rotation (`<user>-password-next`). */
  const redis = (role: RedisUserRole, suffix = ''): SecretTarget => ({
    secretName: config.redis.passwordSecret,
    key: `${redisPasswordKey(role)}${suffix}`,
    component: 'redis',
    secret: true,
  });
  return {
    postgresPassword: postgres('password'),
    postgresReplicationPassword: postgres('replicationPassword'),
    postgresSuperuserPassword: postgres('superuserPassword'),
    postgresExporterPassword: postgres('exporterPassword'),
    postgresMigrationPassword: postgres('migrationPassword'),
    postgresAlternatePassword: postgres('alternatePassword', { alternateLogin: true }),
    // Not a secret, but it lives in the credentials Secret, which stack config then supplies whole.
    postgresActiveLogin: postgres('activeLogin', { secret: false, alternateLogin: true }),
    redisAppPassword: redis('app'),
    redisExporterPassword: redis('exporter'),
    redisAdminPassword: redis('admin'),
    redisReplicationPassword: redis('replication'),
    redisAppPasswordNext: redis('app', '-next'),
    redisAppPasswordPrevious: redis('app', '-previous'),
    redisExporterPasswordNext: redis('exporter', '-next'),
    redisExporterPasswordPrevious: redis('exporter', '-previous'),
    redisAdminPasswordNext: redis('admin', '-next'),
    redisAdminPasswordPrevious: redis('admin', '-previous'),
    redisReplicationPasswordNext: redis('replication', '-next'),
    redisReplicationPasswordPrevious: redis('replication', '-previous'),
    grafanaAdminPassword: {
      secretName: config.monitoring.grafana.adminSecret,
      key: GRAFANA_ADMIN_KEYS.password,
      component: 'grafana',
      secret: true,
    },
    managementToken: { secretName: config.api.managementTokenSecret, key: 'token', component: 'api', secret: true },
  };
}

/** Keys a supplied Secret carries that are not secret (Grafana's admin user name). */
function fixedKeys(config: EnvironmentConfig): Record<string, Record<string, string>> {
  return { [config.monitoring.grafana.adminSecret]: { [GRAFANA_ADMIN_KEYS.user]: 'admin' } };
}

interface SecretSpec {
  readonly name: string;
  readonly component: string;
  readonly stringData: Record<string, pulumi.Input<string>>;
}

/**
 * The Secrets to create from stack secrets, one per Secret name. A Secret the
 * platform would generate in-cluster must then be supplied whole: the generator
 * skips an existing Secret, so a missing key would never be filled.
 */
export function suppliedSecretSpecs(
  platform: Platform,
  secrets: SuppliedSecrets,
  postgresActiveLogin?: string,
): SecretSpec[] {
  const targets = secretTargets(platform.config);
  const creds = platform.postgres.credentials;
  const supplied = Object.entries({
    ...secrets,
    ...(postgresActiveLogin !== undefined ? { postgresActiveLogin } : {}),
  }) as [TargetConfigKey, pulumi.Input<string>][];
  // The rotation keys mean nothing without alternateLogin: nothing would read them.
  const stray = supplied.map(([k]) => k).filter((k) => targets[k].alternateLogin);
  if (!creds.alternateLogin && stray.length > 0) {
    throw new Error(
      `${stray.map((k) => `fastnext:${k}`).join(', ')} set, but postgres.credentials.alternateLogin is off: nothing reads ` +
        'it; turn alternateLogin on in the environment (docs/postgres-security.md#rotation), or unset it',
    );
  }
  if (postgresActiveLogin !== undefined) {
    const logins = [platform.postgres.user, alternateLoginOf(platform.postgres.user)];
    if (!logins.includes(postgresActiveLogin)) {
      throw new Error(
        `fastnext:postgresActiveLogin (${JSON.stringify(postgresActiveLogin)}) must be one of the application's logins: ` +
          `${logins.join(' or ')}`,
      );
    }
  }
  const specs = new Map<string, { component: string; stringData: Record<string, pulumi.Input<string>> }>();
  for (const [configKey, value] of supplied) {
    const { secretName, key, component } = targets[configKey];
    const spec = specs.get(secretName) ?? {
      component,
      stringData: { ...fixedKeys(platform.config)[secretName] },
    };
    spec.stringData[key] = value;
    specs.set(secretName, spec);
  }
  const generated = platform.node.findAll().filter((c): c is GeneratedSecret => c instanceof GeneratedSecret);
  // postgres.credentials.generate: false has no generator to compare with: the Secret must carry every mapped key.
  const externalKeys = (name: string): string[] =>
    creds.generate
      ? []
      : [
          ...(name === creds.secretName
            ? [creds.keys.password, creds.keys.replicationPassword, creds.keys.superuserPassword]
            : []),
          ...(name === creds.exporterSecretName ? [creds.keys.exporterPassword] : []),
          ...(name === creds.migrationSecretName ? [creds.keys.migrationPassword] : []),
        ];
  for (const [name, spec] of specs) {
    const required = generated.find((g) => g.secretName === name)?.keys ?? externalKeys(name);
    const missing = required.filter((k) => !(k in spec.stringData));
    if (missing.length === 0) continue;
    const configKeyOf = (k: string) =>
      Object.entries(targets).find(([, t]) => t.secret && t.secretName === name && t.key === k)?.[0];
    const settable = missing.map(configKeyOf).filter((k): k is string => k !== undefined);
    const fix =
      settable.length === missing.length
        ? `also set ${settable.map((k) => `fastnext:${k}`).join(', ')} (pulumi config set --secret), or unset`
        : `keys ${missing.join(', ')} have no config key, so unset`;
    const rest = creds.generate
      ? 'so the whole Secret is generated in-cluster'
      : "and let the Secret come from postgres.credentials' source (generate: false)";
    throw new Error(`Secret '${name}' is partly supplied by stack config; ${fix} its keys ${rest}`);
  }
  return [...specs].map(([name, spec]) => ({ name, ...spec }));
}

function protectionOptions(protection: StatefulProtection): pulumi.CustomResourceOptions {
  if (protection === 'protect') return { protect: true };
  if (protection === 'retainOnDelete') return { retainOnDelete: true };
  return {};
}

export class PlatformStack extends pulumi.ComponentResource {
  static readonly TYPE = 'fastnext:platform:Stack';

  readonly namespace: pulumi.Output<string>;
  /** External address of the edge Service (load balancer IP or host name), else its in-cluster DNS name. */
  readonly edgeAddress: pulumi.Output<string>;
  /** Undefined when the environment disables monitoring. */
  readonly grafanaUrl: pulumi.Output<string | undefined>;
  readonly prometheusUrl: pulumi.Output<string | undefined>;
  readonly postgresPrimaryHost: pulumi.Output<string>;
  readonly postgresReadOnlyHost: pulumi.Output<string>;
  readonly redisSeedHosts: pulumi.Output<string[]>;

  constructor(name: string, args: PlatformStackArgs, opts: pulumi.ComponentResourceOptions = {}) {
    // Only the environment name is recorded as the component's input: never config or secrets.
    super(PlatformStack.TYPE, name, { environment: args.config.name }, opts);
    const { config } = args;
    // Everything that can fail is checked before the first resource is registered.
    // One construct tree serves both the registered objects and the outputs.
    const { platform } = buildPlatform(config);
    const [namespaceObject, ...rest] = platformObjects(platform);
    if (namespaceObject?.kind !== 'Namespace' || namespaceObject.metadata.name !== config.namespace) {
      throw new Error(`synthObjects(${config.name}) must start with Namespace '${config.namespace}'`);
    }
    const endpoints = endpointsOf(platform);
    const secretSpecs = suppliedSecretSpecs(platform, args.secrets, args.postgresActiveLogin);
    for (const spec of secretSpecs) {
      if (rest.some((o) => o.kind === 'Secret' && o.metadata.name === spec.name)) {
        throw new Error(
          `Secret '${spec.name}' is both synthesized and supplied by stack config; supply it in one place`,
        );
      }
    }
    const protection = protectionOptions(args.statefulProtection);

    const provider = new k8s.Provider(
      `${name}-kubernetes`,
      { kubeconfig: args.kubeconfig, context: args.kubeContext, enableServerSideApply: true },
      { parent: this },
    );
    const namespace = new k8s.core.v1.Namespace(
      namespaceObject.metadata.name,
      namespaceObject as k8s.core.v1.NamespaceArgs,
      { parent: this, provider, ...protection },
    );
    const supplied = secretSpecs.map(
      (spec) =>
        new k8s.core.v1.Secret(
          `${config.namespace}/${spec.name}`,
          {
            metadata: {
              name: spec.name,
              namespace: config.namespace,
              labels: standardLabels(platform, spec.component),
            },
            type: 'Opaque',
            stringData: pulumi.secret(spec.stringData),
          },
          {
            parent: this,
            provider,
            dependsOn: [namespace],
            additionalSecretOutputs: ['data', 'stringData'],
            ...protection,
          },
        ),
    );

    // Each object waits for exactly what it needs (stacks/deploy-order.ts): pod
    // prerequisites first, then each controller after its prerequisites, the
    // generator Jobs of its Secrets and the Services it reaches, then the
    // cluster-IP Services after the pods they select. No controller waits for a
    // Service that waits for its pods. Objects go through one v1 ConfigGroup per
    // layer; a child's URN does not depend on its group, so regrouping replaces nothing.
    const deps = deployDependencies(
      rest,
      secretSpecs.map((s) => s.name),
    );
    const objectByKey = new Map(rest.map((o) => [objectKey(o), o]));
    const groupOf = new Map<string, k8s.yaml.ConfigGroup>();
    const resourceOf = (key: string) => {
      const o = objectByKey.get(key)!;
      const group = groupOf.get(key)!;
      const gvk = `${o.apiVersion}/${o.kind}`;
      return o.metadata.namespace
        ? group.getCustomResource(gvk, o.metadata.namespace, o.metadata.name)
        : group.getCustomResource(gvk, o.metadata.name);
    };
    // Dependencies are passed as the resources themselves (a promise of each, once per object), not as
    // Outputs: for every Output in `dependsOn` the SDK walks the resource's whole object graph looking
    // for unknowns, once per edge: about half the program's CPU. The registered dependencies are the same.
    const created = new Map<string, Promise<pulumi.CustomResource>>();
    const createdResource = (key: string) => {
      let resource = created.get(key);
      if (!resource) {
        const output = resourceOf(key);
        resource = new Promise((resolve) => output.apply((r) => void resolve(r)));
        created.set(key, resource);
      }
      return resource;
    };
    dependencyLayers(deps).forEach((layer, depth) => {
      const group = new k8s.yaml.ConfigGroup(
        `${name}-layer-${depth}`,
        {
          objs: layer.map((key) => objectByKey.get(key)!),
          transformations: [
            (obj: KubeObject, childOpts: pulumi.CustomResourceOptions) => {
              const key = objectKey(obj);
              childOpts.provider = provider;
              const controllerExtras = POD_CONTROLLER_KINDS.has(obj.kind) ? supplied : [];
              childOpts.dependsOn = [namespace, ...controllerExtras, ...(deps.get(key) ?? []).map(createdResource)];
              const timeouts = customTimeoutsOf(obj);
              if (timeouts) childOpts.customTimeouts = timeouts;
              if (STATEFUL_KINDS.has(obj.kind)) Object.assign(childOpts, protection);
              // A claim template cannot change in place; growing it is done on the live claims (below).
              if (claimPatchesOf(obj).length) childOpts.ignoreChanges = ['spec.volumeClaimTemplates'];
            },
          ],
        },
        { parent: this, provider },
      );
      for (const key of layer) groupOf.set(key, group);
    });

    // Growing a volume from config: each live claim of a StatefulSet is patched to its template's size
    // (server-side apply). On a first deploy the StatefulSet made the claims at that size already.
    // The StatefulSet controller owns the field, hence patchForce; a deleted patch leaves the claim be.
    for (const o of rest) {
      for (const claim of claimPatchesOf(o)) {
        new k8s.core.v1.PersistentVolumeClaimPatch(
          `${config.namespace}/${claim.name}`,
          {
            metadata: {
              name: claim.name,
              namespace: config.namespace,
              annotations: { 'pulumi.com/patchForce': 'true' },
            },
            spec: { resources: { requests: { storage: claim.storage } } },
          },
          { parent: this, provider, dependsOn: [namespace, createdResource(objectKey(o))], retainOnDelete: true },
        );
      }
    }

    const edgeService = resourceOf(`Service/${endpoints.edgeServiceName}`) as pulumi.Output<k8s.core.v1.Service>;
    this.namespace = namespace.metadata.name;
    this.edgeAddress = edgeService
      .apply((service) => service.status)
      .apply((status) => {
        const first = status?.loadBalancer?.ingress?.[0];
        return first?.ip || first?.hostname || endpoints.edgeHost;
      });
    this.grafanaUrl = pulumi.output(endpoints.grafanaUrl);
    this.prometheusUrl = pulumi.output(endpoints.prometheusUrl);
    this.postgresPrimaryHost = pulumi.output(endpoints.postgresPrimaryHost);
    this.postgresReadOnlyHost = pulumi.output(endpoints.postgresReadOnlyHost);
    this.redisSeedHosts = pulumi.output([...endpoints.redisSeedHosts]);

    this.registerOutputs({
      namespace: this.namespace,
      edgeAddress: this.edgeAddress,
      grafanaUrl: this.grafanaUrl,
      prometheusUrl: this.prometheusUrl,
      postgresPrimaryHost: this.postgresPrimaryHost,
      postgresReadOnlyHost: this.postgresReadOnlyHost,
      redisSeedHosts: this.redisSeedHosts,
    });
  }
}

/** The stack outputs, read from the constructs' readonly fields (never rebuilt from names). */
export interface PlatformEndpoints {
  readonly edgeServiceName: string;
  readonly edgeHost: string;
  /** Undefined when the environment disables monitoring. */
  readonly grafanaUrl?: string;
  readonly prometheusUrl?: string;
  readonly postgresPrimaryHost: string;
  readonly postgresReadOnlyHost: string;
  readonly redisSeedHosts: readonly string[];
}

/** In-cluster URL of a Service the monitoring constructs describe by name and port. */
const serviceUrl = (namespace: string, service: { serviceName: string; port: number }) =>
  `http://${service.serviceName}.${namespace}.svc.cluster.local:${service.port}`;

export function endpointsOf(platform: Platform): PlatformEndpoints {
  const { monitoring } = platform;
  return {
    edgeServiceName: platform.edge.serviceName,
    edgeHost: platform.edge.host,
    grafanaUrl: monitoring && serviceUrl(platform.namespace, monitoring.grafana),
    prometheusUrl: monitoring && serviceUrl(platform.namespace, monitoring.prometheus),
    postgresPrimaryHost: platform.postgres.primaryHost,
    postgresReadOnlyHost: platform.postgres.readOnlyHost,
    redisSeedHosts: platform.redis.seedHosts,
  };
}

/**
 * The pod block every workload tier takes (`<tier>.pod` + top-level
 * `imagePullSecrets`): what an environment writes shows up in the pod specs,
 * the result stays valid under the policy checks, and what would break Pod
 * Security "restricted" or replace our own settings is refused by name.
 * Also the config semantics of issue 12: wildcard hostnames, Redis sizes.
 */
import { Testing } from 'cdk8s';
import { podsOf, RedisCluster } from '../constructs';
import { ConfigError, type EnvironmentOverrides } from '../stacks/config';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { runPolicy } from '../tools/manifests/policy/engine';
import { checkObjects } from '../tools/manifests/schema-check';
import { find, type Obj, podTemplates } from './helpers/objects';

/** An environment file as a team would write it: placement and a private registry for the API. */
const qa: EnvironmentOverrides = {
  name: 'qa',
  production: false,
  imagePullSecrets: ['registry-credentials'],
  api: {
    pod: {
      nodeSelector: { 'node.kubernetes.io/pool': 'apps' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'apps', effect: 'NoSchedule' }],
      priorityClassName: 'business-critical',
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: {
            nodeSelectorTerms: [
              { matchExpressions: [{ key: 'kubernetes.io/arch', operator: 'In', values: ['amd64'] }] },
            ],
          },
        },
      },
      annotations: { 'team.example.com/owner': 'payments' },
      labels: { 'team.example.com/cost-center': 'cc-42' },
      extraEnv: [{ name: 'HTTPS_PROXY', value: 'http://proxy.internal:3128' }],
      extraVolumes: [{ name: 'ca-bundle', secret: { secretName: 'corporate-ca' } }],
      extraVolumeMounts: [{ name: 'ca-bundle', mountPath: '/etc/ssl/corporate', readOnly: true }],
      serviceAccountAnnotations: { 'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/api' },
    },
  },
};
const registry = { qa };
const objectsOfQa = () => synthObjects(loadEnvironment('qa', {}, registry)) as Obj[];

/** The message of the ConfigError `extra` causes on top of dev. */
function errorFor(extra: object): string {
  try {
    loadEnvironment('dev', extra);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('no ConfigError');
}

describe('the api pod block from an environment file', () => {
  const objects = objectsOfQa();
  const deployment = find(objects, 'Deployment', 'api');
  const spec = deployment.spec.template.spec;

  test('nodeSelector, tolerations and imagePullSecrets show up in the Deployment', () => {
    expect(spec.nodeSelector).toEqual({ 'node.kubernetes.io/pool': 'apps' });
    expect(spec.tolerations).toEqual([{ key: 'dedicated', operator: 'Equal', value: 'apps', effect: 'NoSchedule' }]);
    expect(spec.imagePullSecrets).toEqual([{ name: 'registry-credentials' }]);
  });

  test('the rest of the block is merged in; topology spread and security context stay ours', () => {
    expect(spec.priorityClassName).toBe('business-critical');
    expect(spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms).toHaveLength(1);
    expect(deployment.spec.template.metadata.annotations['team.example.com/owner']).toBe('payments');
    expect(deployment.spec.template.metadata.labels['team.example.com/cost-center']).toBe('cc-42');
    const api = spec.containers.find((c: Obj) => c.name === 'api');
    expect(api.env.at(-1)).toEqual({ name: 'HTTPS_PROXY', value: 'http://proxy.internal:3128' });
    expect(api.volumeMounts.at(-1)).toEqual({ name: 'ca-bundle', mountPath: '/etc/ssl/corporate', readOnly: true });
    expect(spec.volumes.at(-1)).toEqual({ name: 'ca-bundle', secret: { secretName: 'corporate-ca' } });
    expect(deployment.metadata.annotations!['fastnext.io/external-secrets']).toBe('registry-credentials,corporate-ca');
    expect(find(objects, 'ServiceAccount', 'api').metadata.annotations).toEqual({
      'eks.amazonaws.com/role-arn': 'arn:aws:iam::123456789012:role/api',
    });
    expect(spec.topologySpreadConstraints).toHaveLength(2);
    expect(spec.securityContext.runAsNonRoot).toBe(true);
  });

  test('the API’s CronJob gets placement and pull secrets, not affinity; other tiers are untouched', () => {
    const cron = find(objects, 'CronJob', 'api-partition-maintenance').spec.jobTemplate.spec.template.spec;
    expect([cron.nodeSelector, cron.tolerations?.length, cron.affinity]).toEqual([spec.nodeSelector, 1, undefined]);
    expect(find(objects, 'StatefulSet', 'redis').spec.template.spec.nodeSelector).toBeUndefined();
  });

  test('imagePullSecrets reach every pod template', () => {
    for (const t of podTemplates(objects)) {
      expect([t.owner.metadata.name, t.spec.imagePullSecrets]).toEqual([
        t.owner.metadata.name,
        [{ name: 'registry-credentials' }],
      ]);
    }
  });

  test('the objects still pass strict validation and the policy checks', () => {
    expect(checkObjects(objects)).toEqual([]);
    expect(runPolicy(objects).findings).toEqual([]);
  });
});

describe.each([
  ['api', 'Deployment', 'api'],
  ['edge', 'Deployment', 'edge'],
  ['postgres', 'StatefulSet', 'postgres'],
  ['pgbouncer', 'Deployment', 'pgbouncer'],
  ['redis', 'StatefulSet', 'redis'],
  ['monitoring.prometheus', 'StatefulSet', 'prometheus'],
  ['monitoring.grafana', 'Deployment', 'grafana'],
])('%s.pod', (tier, kind, name) => {
  test('nodeSelector lands in its workload', () => {
    const block = { pod: { nodeSelector: { pool: tier.replace('.', '-') } } };
    const extra = tier.startsWith('monitoring.') ? { monitoring: { [tier.split('.')[1]]: block } } : { [tier]: block };
    const sts = find(synthObjects(loadEnvironment('dev', extra)) as Obj[], kind, name);
    expect(sts.spec.template.spec.nodeSelector).toEqual({ pool: tier.replace('.', '-') });
  });
});

describe('bad pod blocks', () => {
  test('fails when an extra volume is a hostPath', () => {
    expect(errorFor({ api: { pod: { extraVolumes: [{ name: 'host', hostPath: { path: '/var/run' } }] } } })).toBe(
      "Invalid config for environment 'dev':\n" +
        '  - api.pod.extraVolumes.0: {"name":"host","hostPath":{"path":"/var/run"}} uses hostPath, which Pod Security "restricted" refuses; ' +
        'use one of: configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret',
    );
  });

  test('fails when a toleration has an unknown operator', () => {
    expect(errorFor({ api: { pod: { tolerations: [{ key: 'dedicated', operator: 'Matches' }] } } })).toBe(
      'Invalid config for environment \'dev\':\n  - api.pod.tolerations.0.operator: "Matches" must be one of "Exists", "Equal"',
    );
  });

  test('fails when a pod block field is unknown (a typo), listing the allowed ones', () => {
    expect(errorFor({ redis: { pod: { nodeSelectors: {} } } })).toBe(
      "Invalid config for environment 'dev':\n  - redis.pod.nodeSelectors: unknown field (a typo?); allowed here: " +
        'nodeSelector, tolerations, affinity, priorityClassName, annotations, labels, extraEnv, extraVolumes, extraVolumeMounts, serviceAccountAnnotations',
    );
  });

  test('fails when a mount names a volume the pod does not have', () => {
    expect(() =>
      loadEnvironment('dev', { edge: { pod: { extraVolumeMounts: [{ name: 'certs', mountPath: '/certs' }] } } }),
    ).not.toThrow();
    expect(() =>
      synthObjects(
        loadEnvironment('dev', { edge: { pod: { extraVolumeMounts: [{ name: 'certs', mountPath: '/certs' }] } } }),
      ),
    ).toThrow("'pod.extraVolumeMounts[0].name' (certs) names no volume of the pod; volumes: nginx-conf, scratch");
  });

  test('fails when a pod label would replace a selector label', () => {
    expect(() =>
      synthObjects(loadEnvironment('dev', { api: { pod: { labels: { 'app.kubernetes.io/name': 'web' } } } })),
    ).toThrow(
      "'pod.labels.app.kubernetes.io/name' (web) would replace the construct's own value (api): choose another key",
    );
  });

  test('fails when extraEnv redefines a variable the construct sets', () => {
    expect(() =>
      synthObjects(loadEnvironment('dev', { redis: { pod: { extraEnv: [{ name: 'REDIS_PORT', value: '1' }] } } })),
    ).toThrow("'pod.extraEnv[0].name' (REDIS_PORT) is set by the construct: choose another name");
  });

  test('fails when a construct is given a hostPath volume directly (no schema in between)', () => {
    expect(
      () =>
        new RedisCluster(Testing.chart(), 'r', {
          clients: [podsOf('shop')],
          pod: { extraVolumes: [{ name: 'host', hostPath: { path: '/' } }] },
        }),
    ).toThrow(
      '\'pod.extraVolumes[0]\' (host) uses hostPath, which Pod Security "restricted" refuses; use one of: configMap, csi, downwardAPI, emptyDir, ephemeral, persistentVolumeClaim, projected, secret',
    );
  });

  test('fails when an environment spells a restricted-safe volume type it cannot express', () => {
    expect(errorFor({ api: { pod: { extraVolumes: [{ name: 'info', downwardAPI: { items: [] } }] } } })).toContain(
      'uses downwardAPI, which an environment cannot spell; use one of: configMap, secret, emptyDir, persistentVolumeClaim, csi (or pass it to the construct as a prop)',
    );
  });
});

describe('config semantics', () => {
  test('edge.hostnames accepts a wildcard, and nginx gets it as server_name', () => {
    const objects = synthObjects(
      loadEnvironment('dev', { edge: { hostnames: ['*.example.com', 'example.com'] } }),
    ) as Obj[];
    expect(find(objects, 'ConfigMap', 'edge-nginx-conf').data['nginx.conf']).toContain(
      'server_name *.example.com example.com;',
    );
  });

  test('fails when a hostname puts the wildcard anywhere but the first label', () => {
    expect(errorFor({ edge: { hostnames: ['api.*.example.com'] } })).toBe(
      'Invalid config for environment \'dev\':\n  - edge.hostnames.0: "api.*.example.com" must be a lowercase DNS name such as api.example.com, or a wildcard such as *.example.com',
    );
  });

  test.each(['1GB', '1gb', '1Gb', '1073741824', '1024MB', '900m'])(
    'redis.maxmemory %s is accepted (units as Redis takes them)',
    (maxmemory) => {
      const config = loadEnvironment('prod', { redis: { maxmemory } });
      const objects = synthObjects(config) as Obj[];
      expect(find(objects, 'ConfigMap', 'redis-config').data['redis.conf']).toContain(`\nmaxmemory ${maxmemory}\n`);
    },
  );

  test('fails when redis.maxmemory is not a Redis size', () => {
    expect(errorFor({ redis: { maxmemory: '1GiB' } })).toBe(
      "Invalid config for environment 'dev':\n  - redis.maxmemory: \"1GiB\" must be a Redis size such as '256mb', '2gb' or '1GB' (k, kb, m, mb, g, gb; any case)",
    );
  });

  test('fails when redis.maxmemory does not fit under the memory limit, suggesting a value that does', () => {
    // GIVEN dev's 256Mi limit: 256Mi - 65mb of replication buffers, over 1.25 for copy-on-write = 152mb
    expect(errorFor({ redis: { maxmemory: '200mb' } })).toBe(
      "Invalid config for environment 'dev':\n  - redis.maxmemory: \"200mb\" does not fit under the container's memory limit (256Mi): " +
        'a node needs maxmemory + 25 % for fork copy-on-write + 65mb of replication buffers = 315mb; set maxmemory to at most 152mb or raise the limit',
    );
    // THEN the suggested value fits
    expect(() => loadEnvironment('dev', { redis: { maxmemory: '152mb' } })).not.toThrow();
    expect(() => loadEnvironment('dev', { redis: { maxmemory: '153mb' } })).toThrow('does not fit');
  });
});

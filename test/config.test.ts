import { ConfigError, DEFAULTS, type EnvironmentOverrides, parseQuantity, resolveEnvironment } from '../stacks/config';
import { ENVIRONMENTS, loadEnvironment } from '../stacks/environments';

/** Resolves `prod` with extra overrides and returns the error message (or fails the test). */
function errorFor(extra: object): string {
  try {
    loadEnvironment('prod', extra);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('environment config', () => {
  test('every registered environment resolves and is named like its registry key', () => {
    for (const name of Object.keys(ENVIRONMENTS)) {
      const env = loadEnvironment(name);
      expect(env.name).toBe(name);
      expect(env.namespace).toBe(`fastnext-${name}`);
    }
  });

  test('prod autoscales the API 3-20 at CPU 70 % / memory 80 %', () => {
    const a = loadEnvironment('prod').api.autoscaling;
    expect([a.minReplicas, a.maxReplicas, a.cpuTargetPercent, a.memoryTargetPercent]).toEqual([3, 20, 70, 80]);
  });

  test('dev is smaller than prod but keeps the shape (2 replicas, 6 Redis nodes)', () => {
    const dev = loadEnvironment('dev');
    const prod = loadEnvironment('prod');
    expect(dev.api.autoscaling.maxReplicas).toBeLessThan(prod.api.autoscaling.maxReplicas);
    expect(parseQuantity(dev.postgres.storage.size)).toBeLessThan(parseQuantity(prod.postgres.storage.size));
    expect(dev.postgres.replicas).toBe(2);
    expect(dev.redis.masters * (1 + dev.redis.replicasPerMaster)).toBe(6);
  });

  test('an environment overrides only what it names; the rest comes from DEFAULTS', () => {
    const staging = loadEnvironment('staging');
    expect(staging.api.autoscaling.maxReplicas).toBe(6);
    expect(staging.api.autoscaling.cpuTargetPercent).toBe(DEFAULTS.api.autoscaling.cpuTargetPercent);
    expect(staging.edge.rateLimit).toEqual(DEFAULTS.edge.rateLimit);
  });

  test('a new environment needs only a name', () => {
    const qa = resolveEnvironment({ name: 'qa' });
    expect(qa.namespace).toBe('fastnext-qa');
    expect(qa.api.autoscaling.minReplicas).toBe(DEFAULTS.api.autoscaling.minReplicas);
  });

  test('fails when min replicas exceed max', () => {
    expect(errorFor({ api: { autoscaling: { minReplicas: 30 } } })).toBe(
      "Invalid config for environment 'prod':\n  - api.autoscaling.minReplicas: 30 must be <= maxReplicas (20)",
    );
  });

  test('fails when an image has no tag', () => {
    expect(errorFor({ api: { image: 'ghcr.io/fastnext/api' } })).toContain(
      'api.image: "ghcr.io/fastnext/api" must carry a tag or digest (e.g. repo/name:1.2.3 or repo/name@sha256:…)',
    );
  });

  test("fails when an image uses 'latest'", () => {
    expect(errorFor({ edge: { image: 'nginx:latest' } })).toContain(
      `edge.image: "nginx:latest" must not use the 'latest' tag: pin a version (e.g. repo/name:1.2.3)`,
    );
  });

  test('accepts an image pinned by digest, and a registry with a port', () => {
    expect(() =>
      loadEnvironment('prod', { api: { image: `registry:5000/api@sha256:${'a'.repeat(64)}` } }),
    ).not.toThrow();
    expect(() => loadEnvironment('prod', { api: { image: 'registry:5000/team/api:1.0.0' } })).not.toThrow();
  });

  test('fails when a registry with a port is given but no tag', () => {
    expect(errorFor({ api: { image: 'registry:5000/team/api' } })).toContain(
      'api.image: "registry:5000/team/api" must carry a tag',
    );
  });

  test('fails when a size is negative', () => {
    expect(errorFor({ postgres: { storage: { size: '-10Gi' } } })).toContain(
      `postgres.storage.size: "-10Gi" must be a positive Kubernetes quantity such as '250m', '512Mi' or '10Gi'`,
    );
  });

  test('fails when a field is unknown (a typo), listing the allowed ones', () => {
    expect(errorFor({ api: { autoscaling: { maxReplica: 5 } } })).toBe(
      "Invalid config for environment 'prod':\n  - api.autoscaling.maxReplica: unknown field (a typo?); allowed here: " +
        'minReplicas, maxReplicas, cpuTargetPercent, memoryTargetPercent, scaleDownStabilizationSeconds',
    );
  });

  test('fails when the local cache TTL is negative', () => {
    expect(errorFor({ api: { cache: { localTtlSeconds: -1 } } })).toBe(
      "Invalid config for environment 'prod':\n  - api.cache.localTtlSeconds: -1 must be >= 0",
    );
  });

  test('fails when the rate limit is 0', () => {
    expect(errorFor({ edge: { rateLimit: { requestsPerSecond: 0 } } })).toBe(
      "Invalid config for environment 'prod':\n  - edge.rateLimit.requestsPerSecond: 0 must be >= 1",
    );
  });

  test('fails when a name is not DNS-1123', () => {
    expect(errorFor({ namespace: 'Team_Prod' })).toBe(
      "Invalid config for environment 'prod':\n  - namespace: \"Team_Prod\" must be a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit",
    );
  });

  test('fails when requests exceed limits', () => {
    expect(errorFor({ api: { resources: { requests: { cpu: '2' } } } })).toContain(
      'api.resources.requests.cpu: "2" must be <= limits.cpu (1)',
    );
  });

  test('fails when the grace period does not cover preStop + drain', () => {
    expect(errorFor({ api: { drainSeconds: 30 } })).toContain(
      'api.terminationGracePeriodSeconds: 30 must be > drainSeconds + 5 s of preStop (35)',
    );
  });

  test('fails when a production environment runs a single API pod', () => {
    expect(errorFor({ api: { autoscaling: { minReplicas: 1 } } })).toContain(
      'api.autoscaling.minReplicas: 1 must be >= 2 in a production environment',
    );
  });

  test('reports every problem at once, not just the first', () => {
    const message = errorFor({ edge: { rateLimit: { requestsPerSecond: 0 } }, api: { image: 'x:latest' } });
    expect(message.split('\n')).toHaveLength(3);
  });

  test('fails when an environment file is registered under another name', () => {
    const registry: Record<string, EnvironmentOverrides> = { qa: { name: 'qa2' } };
    expect(() => loadEnvironment('qa', {}, registry)).toThrow(
      "Environment registered as 'qa' declares name 'qa2'; make them equal",
    );
  });

  test('fails when the environment is unknown', () => {
    expect(() => loadEnvironment('nope')).toThrow(
      "Unknown environment 'nope'; registered: dev, staging, prod (add it in stacks/environments.ts)",
    );
  });

  test('parseQuantity understands binary and decimal suffixes', () => {
    expect(parseQuantity('250m')).toBeCloseTo(0.25);
    expect(parseQuantity('512Mi')).toBe(512 * 1024 * 1024);
    expect(parseQuantity('1G')).toBe(1e9);
    expect(parseQuantity('-1')).toBeNaN();
  });
});

import { EnvError, loadConfig, parseHostPort } from '../../src/config';

const BASE = {
  POSTGRES_SERVER: 'postgres-primary:5432',
  POSTGRES_PASSWORD: 'pw',
  MANAGEMENT_TOKEN: '0123456789abcdef',
  REDIS_CLUSTER_NODES: 'redis-0:6379,redis-1',
};

describe('loadConfig', () => {
  test('applies the documented defaults', () => {
    const c = loadConfig(BASE);
    expect(c.port).toBe(8000);
    expect(c.metricsPort).toBe(9464);
    expect(c.postgres).toMatchObject({
      primary: { host: 'postgres-primary', port: 5432 },
      replicas: [],
      poolSize: 20,
      maxOverflow: 40,
      poolTimeoutSeconds: 30,
      poolRecycleSeconds: 3600,
      replicaMaxLagSeconds: 10,
    });
    expect(c.redis.nodes).toEqual([
      { host: 'redis-0', port: 6379 },
      { host: 'redis-1', port: 6379 },
    ]);
    // The ACL user the platform renders for the service (constructs/redis/acl.ts).
    expect(c.redis.username).toBe('app');
    expect(c.cache).toEqual({
      enabled: true,
      defaultTtlSeconds: 300,
      warmOnStart: true,
      localTtlSeconds: 2,
      localMaxEntries: 10000,
    });
    expect(c.shutdownDrainSeconds).toBe(10);
  });

  test('REDIS_USERNAME names another ACL user', () => {
    expect(loadConfig({ ...BASE, REDIS_USERNAME: 'sessions' }).redis.username).toBe('sessions');
  });

  test('reads replicas, pool sizes and booleans', () => {
    const c = loadConfig({
      ...BASE,
      POSTGRES_READ_REPLICAS: 'r0:5433, r1',
      DB_POOL_SIZE: '5',
      DB_MAX_OVERFLOW: '0',
      CACHE_ENABLED: 'false',
      REDIS_CLUSTER_NODES: '',
    });
    expect(c.postgres.replicas).toEqual([
      { host: 'r0', port: 5433 },
      { host: 'r1', port: 5432 },
    ]);
    expect(c.postgres.poolSize).toBe(5);
    expect(c.postgres.maxOverflow).toBe(0);
    expect(c.cache.enabled).toBe(false);
  });

  test('a password file wins over the variable and loses its trailing newline', () => {
    const c = loadConfig({ ...BASE, POSTGRES_PASSWORD_FILE: '/secrets/pg' }, (p) => `from ${p}\n`);
    expect(c.postgres.password).toBe('from /secrets/pg');
  });

  test('the migration role: only where POSTGRES_MIGRATION_USER is set, its password from its own file', () => {
    expect(loadConfig(BASE).postgres.migration).toBeUndefined();
    const c = loadConfig(
      { ...BASE, POSTGRES_MIGRATION_USER: 'fastnext_migrator', POSTGRES_MIGRATION_PASSWORD_FILE: '/secrets/migration' },
      (p) => `from ${p}\n`,
    );
    expect(c.postgres.migration).toEqual({ user: 'fastnext_migrator', password: 'from /secrets/migration' });
    // The runtime role stays what the serving process uses.
    expect([c.postgres.user, c.postgres.password]).toEqual(['fastnext', 'pw']);
  });

  test('fails when the migration role has a name and no password, or a password and no name', () => {
    expect(() => loadConfig({ ...BASE, POSTGRES_MIGRATION_USER: 'fastnext_migrator' })).toThrow(
      new EnvError(
        'POSTGRES_MIGRATION_PASSWORD or POSTGRES_MIGRATION_PASSWORD_FILE is required with POSTGRES_MIGRATION_USER ' +
          '("fastnext_migrator"): the migration role\'s password',
      ),
    );
    expect(() => loadConfig({ ...BASE, POSTGRES_MIGRATION_PASSWORD: 'x' })).toThrow(
      new EnvError(
        "POSTGRES_MIGRATION_USER is required with POSTGRES_MIGRATION_PASSWORD or POSTGRES_MIGRATION_PASSWORD_FILE (the migration role's name)",
      ),
    );
  });

  test('parses IPv6 addresses in brackets', () => {
    expect(parseHostPort('[::1]:6380', 'X', 6379)).toEqual({ host: '::1', port: 6380 });
  });

  test('fails when POSTGRES_SERVER is missing', () => {
    const env: Record<string, string> = { ...BASE };
    delete env.POSTGRES_SERVER;
    expect(() => loadConfig(env)).toThrow(
      new EnvError('POSTGRES_SERVER is required (for example POSTGRES_SERVER=postgres-primary:5432)'),
    );
  });

  test('fails when DB_POOL_SIZE is not an integer', () => {
    expect(() => loadConfig({ ...BASE, DB_POOL_SIZE: 'twenty' })).toThrow(
      'DB_POOL_SIZE ("twenty") must be an integer from 1 to 1000',
    );
  });

  test('fails when CACHE_ENABLED is not a boolean', () => {
    expect(() => loadConfig({ ...BASE, CACHE_ENABLED: 'maybe' })).toThrow(
      'CACHE_ENABLED ("maybe") must be true or false',
    );
  });

  test('fails when CACHE_LOCAL_TTL_SECONDS is negative (0 is how the local tier is turned off)', () => {
    expect(() => loadConfig({ ...BASE, CACHE_LOCAL_TTL_SECONDS: '-1' })).toThrow(
      'CACHE_LOCAL_TTL_SECONDS ("-1") must be an integer from 0 to 3600',
    );
    expect(loadConfig({ ...BASE, CACHE_LOCAL_TTL_SECONDS: '0' }).cache.localTtlSeconds).toBe(0);
  });

  test('fails when a replica address has a bad port', () => {
    expect(() => loadConfig({ ...BASE, POSTGRES_READ_REPLICAS: 'r0:99999' })).toThrow(
      'POSTGRES_READ_REPLICAS ("r0:99999") must be host:port, for example postgres-primary:5432',
    );
  });

  test('fails when the management token is too short', () => {
    expect(() => loadConfig({ ...BASE, MANAGEMENT_TOKEN: 'short' })).toThrow(
      'MANAGEMENT_TOKEN or MANAGEMENT_TOKEN_FILE is required and must hold at least 16 characters (the bearer token of the management endpoints)',
    );
  });

  test('fails when the cache is on and REDIS_CLUSTER_NODES is empty', () => {
    expect(() => loadConfig({ ...BASE, REDIS_CLUSTER_NODES: '' })).toThrow(
      'REDIS_CLUSTER_NODES is required when CACHE_ENABLED is true (for example redis-0:6379)',
    );
  });

  test('fails when the password file cannot be read', () => {
    const read = () => {
      throw new Error('ENOENT');
    };
    expect(() => loadConfig({ ...BASE, POSTGRES_PASSWORD_FILE: '/nope' }, read)).toThrow(
      'POSTGRES_PASSWORD_FILE ("/nope") cannot be read: ENOENT',
    );
  });

  test('Redis TLS: plaintext by default; REDIS_TLS_CA_FILE holds the CA every node is checked against', () => {
    expect(loadConfig(BASE).redis.tlsCa).toBeUndefined();
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const read = (p: string) => {
      if (p === '/secrets/redis-tls/ca.crt') return pem;
      throw new Error(`ENOENT: ${p}`);
    };
    expect(loadConfig({ ...BASE, REDIS_TLS_CA_FILE: '/secrets/redis-tls/ca.crt' }, read).redis.tlsCa).toBe(pem);
    expect(() => loadConfig({ ...BASE, REDIS_TLS_CA_FILE: '/nope' }, read)).toThrow(
      new EnvError('REDIS_TLS_CA_FILE ("/nope") cannot be read: ENOENT: /nope'),
    );
    expect(() => loadConfig({ ...BASE, REDIS_TLS_CA_FILE: '/secrets/key' }, () => 'not a certificate')).toThrow(
      new EnvError('REDIS_TLS_CA_FILE ("/secrets/key") must hold a PEM certificate (the CA)'),
    );
  });

  test('TLS: plaintext by default; verify-full reads the CA from POSTGRES_SSL_ROOT_CERT', () => {
    expect(loadConfig(BASE).postgres.sslCa).toBeUndefined();
    const c = loadConfig(
      { ...BASE, POSTGRES_SSL_MODE: 'verify-full', POSTGRES_SSL_ROOT_CERT: '/secrets/postgres-tls/ca.crt' },
      (p) => `PEM of ${p}`,
    );
    expect(c.postgres.sslCa).toBe('PEM of /secrets/postgres-tls/ca.crt');
    expect(
      loadConfig({ ...BASE, POSTGRES_SSL_MODE: 'disable', POSTGRES_SSL_ROOT_CERT: '/x' }).postgres.sslCa,
    ).toBeUndefined();
  });

  test('fails when POSTGRES_SSL_MODE is neither verify-full nor disable, naming the value and the choices', () => {
    expect(() => loadConfig({ ...BASE, POSTGRES_SSL_MODE: 'require' })).toThrow(
      new EnvError('POSTGRES_SSL_MODE ("require") must be verify-full or disable'),
    );
  });

  test('fails when verify-full has no CA file, or the CA file cannot be read', () => {
    expect(() => loadConfig({ ...BASE, POSTGRES_SSL_MODE: 'verify-full' })).toThrow(
      new EnvError('POSTGRES_SSL_ROOT_CERT is required when POSTGRES_SSL_MODE is verify-full (the CA file)'),
    );
    const read = () => {
      throw new Error('ENOENT');
    };
    expect(() =>
      loadConfig({ ...BASE, POSTGRES_SSL_MODE: 'verify-full', POSTGRES_SSL_ROOT_CERT: '/nope/ca.crt' }, read),
    ).toThrow('POSTGRES_SSL_ROOT_CERT ("/nope/ca.crt") cannot be read: ENOENT');
  });

  test('fails when LOG_LEVEL is unknown', () => {
    expect(() => loadConfig({ ...BASE, LOG_LEVEL: 'loud' })).toThrow(
      'LOG_LEVEL ("loud") must be one of fatal, error, warn, info, debug, trace, silent',
    );
  });
});

/**
 * The service's configuration, read once from the environment at start.
 *
 * Every variable name comes from the contract (SERVICE_ENV), so the Deployment
 * and the service cannot drift. A bad or missing variable stops the process
 * with a message naming the variable, the value and the fix.
 */
import { readFileSync } from 'node:fs';
import type { LoginFiles } from './db/login';
import { DEFAULT_DRAIN_SECONDS, REDIS_APP_ACL, SERVICE_ENV, SERVICE_PORTS } from './contract';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface ServiceConfig {
  readonly port: number;
  readonly metricsPort: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly postgres: {
    readonly primary: HostPort;
    readonly replicas: readonly HostPort[];
    readonly database: string;
    readonly user: string;
    readonly password: string;
    /**
     * Two logins (POSTGRES_ALTERNATE_USER): each new connection reads which one is in use and its password
     * from these files (db/login.ts). undefined: `user` and `password`, read once at start.
     */
    readonly logins: LoginFiles | undefined;
    /** The migration role (DDL), only where migrations run; undefined: they run as `user`. */
    readonly migration: { readonly user: string; readonly password: string } | undefined;
    /** TLS with verify-full: the CA (PEM) the servers chain to; undefined: plaintext (sslmode=disable). */
    readonly sslCa: string | undefined;
    /** Connections kept open per pool (SQLAlchemy's pool_size). */
    readonly poolSize: number;
    /** Extra connections allowed under load, closed when idle (max_overflow). */
    readonly maxOverflow: number;
    readonly poolTimeoutSeconds: number;
    readonly poolRecycleSeconds: number;
    readonly replicaMaxLagSeconds: number;
  };
  readonly redis: {
    readonly nodes: readonly HostPort[];
    /** ACL user (REDIS_USERNAME, default `app`). */
    readonly username: string;
    readonly password: string | undefined;
    /** TLS: the CA (PEM) the nodes' certificates chain to; undefined: plaintext. */
    readonly tlsCa: string | undefined;
  };
  readonly cache: {
    readonly enabled: boolean;
    readonly defaultTtlSeconds: number;
    readonly warmOnStart: boolean;
    /** 0 = no in-process tier. */
    readonly localTtlSeconds: number;
    readonly localMaxEntries: number;
  };
  readonly managementToken: string;
  readonly shutdownDrainSeconds: number;
  /** Fault-injection routes on (drills only). */
  readonly faultInjection: boolean;
}

export class EnvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;
type ReadFile = (path: string) => string;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

function raw(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function required(env: Env, name: string, example: string): string {
  const v = raw(env, name);
  if (v === undefined) throw new EnvError(`${name} is required (for example ${name}=${example})`);
  return v;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const v = raw(env, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) {
    throw new EnvError(`${name} (${JSON.stringify(v)}) must be an integer from ${min} to ${max}`);
  }
  return n;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const v = raw(env, name);
  if (v === undefined) return fallback;
  if (/^(true|1|yes)$/i.test(v)) return true;
  if (/^(false|0|no)$/i.test(v)) return false;
  throw new EnvError(`${name} (${JSON.stringify(v)}) must be true or false`);
}

/** Parses `host:port` (IPv6 as `[::1]:5432`); `defaultPort` applies when the port is left out. */
export function parseHostPort(value: string, name: string, defaultPort: number): HostPort {
  const m = /^(\[[^\]]+\]|[^:\s]+)(?::(\d+))?$/.exec(value.trim());
  const port = m?.[2] === undefined ? defaultPort : Number(m[2]);
  if (!m || port < 1 || port > 65535) {
    throw new EnvError(`${name} (${JSON.stringify(value)}) must be host:port, for example postgres-primary:5432`);
  }
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

function hostList(env: Env, name: string, defaultPort: number): HostPort[] {
  const v = raw(env, name);
  if (v === undefined) return [];
  return v
    .split(',')
    .filter((s) => s.trim() !== '')
    .map((s) => parseHostPort(s, name, defaultPort));
}

/** The file the variable `name` points at (`file`, its value), or an error naming both. */
function fileOf(name: string, file: string, readFile: ReadFile): string {
  try {
    return readFile(file);
  } catch (e) {
    throw new EnvError(`${name} (${JSON.stringify(file)}) cannot be read: ${(e as Error).message}`);
  }
}

/** A secret from `<NAME>_FILE` (a mounted Secret; wins) or from `<NAME>`. */
function secret(env: Env, name: string, fileName: string, readFile: ReadFile): string | undefined {
  const file = raw(env, fileName);
  if (file !== undefined) return fileOf(fileName, file, readFile).replace(/\r?\n$/, '');
  return env[name] === undefined || env[name] === '' ? undefined : env[name];
}

/** The two logins' files when POSTGRES_ALTERNATE_USER is set: the passwords and the active login come from files only. */
function alternateLogins(env: Env, user: string): LoginFiles | undefined {
  const E = SERVICE_ENV;
  const alternateUser = raw(env, E.postgresAlternateUser);
  if (alternateUser === undefined) return undefined;
  if (alternateUser === user) {
    throw new EnvError(
      `${E.postgresAlternateUser} (${JSON.stringify(alternateUser)}) must differ from ${E.postgresUser}: name the second login`,
    );
  }
  const file = (name: string, what: string) => {
    const v = raw(env, name);
    if (v === undefined) throw new EnvError(`${name} is required with ${E.postgresAlternateUser} (${what})`);
    return v;
  };
  return {
    user,
    passwordFile: file(E.postgresPasswordFile, `the file holding ${user}'s password`),
    alternateUser,
    alternatePasswordFile: file(E.postgresAlternatePasswordFile, `the file holding ${alternateUser}'s password`),
    activeLoginFile: file(E.postgresActiveLoginFile, 'the file naming the login in use'),
  };
}

/** Reads and validates the configuration; throws EnvError naming the first bad variable. */
export function loadConfig(env: Env, readFile: ReadFile = (p) => readFileSync(p, 'utf8')): ServiceConfig {
  const E = SERVICE_ENV;
  const logLevel = raw(env, E.logLevel) ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new EnvError(`${E.logLevel} (${JSON.stringify(logLevel)}) must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const password = secret(env, E.postgresPassword, E.postgresPasswordFile, readFile);
  if (password === undefined) {
    throw new EnvError(`${E.postgresPassword} or ${E.postgresPasswordFile} is required (the database password)`);
  }
  const migrationUser = raw(env, E.postgresMigrationUser);
  const migrationPassword = secret(env, E.postgresMigrationPassword, E.postgresMigrationPasswordFile, readFile);
  if ((migrationUser === undefined) !== (migrationPassword === undefined)) {
    throw new EnvError(
      migrationUser === undefined
        ? `${E.postgresMigrationUser} is required with ${E.postgresMigrationPassword} or ${E.postgresMigrationPasswordFile} ` +
            "(the migration role's name)"
        : `${E.postgresMigrationPassword} or ${E.postgresMigrationPasswordFile} is required with ${E.postgresMigrationUser} ` +
            `(${JSON.stringify(migrationUser)}): the migration role's password`,
    );
  }
  const logins = alternateLogins(env, raw(env, E.postgresUser) ?? 'fastnext');
  const sslMode = raw(env, E.postgresSslMode) ?? 'disable';
  if (sslMode !== 'disable' && sslMode !== 'verify-full') {
    throw new EnvError(`${E.postgresSslMode} (${JSON.stringify(sslMode)}) must be verify-full or disable`);
  }
  const sslRootCert = raw(env, E.postgresSslRootCert);
  if (sslMode === 'verify-full' && sslRootCert === undefined) {
    throw new EnvError(`${E.postgresSslRootCert} is required when ${E.postgresSslMode} is verify-full (the CA file)`);
  }
  const sslCa =
    sslMode === 'verify-full' && sslRootCert ? fileOf(E.postgresSslRootCert, sslRootCert, readFile) : undefined;
  const managementToken = secret(env, E.managementToken, E.managementTokenFile, readFile);
  if (managementToken === undefined || managementToken.length < 16) {
    throw new EnvError(
      `${E.managementToken} or ${E.managementTokenFile} is required and must hold at least 16 characters ` +
        '(the bearer token of the management endpoints)',
    );
  }
  const redisNodes = hostList(env, E.redisClusterNodes, 6379);
  const cacheEnabled = bool(env, E.cacheEnabled, true);
  if (cacheEnabled && redisNodes.length === 0) {
    throw new EnvError(`${E.redisClusterNodes} is required when ${E.cacheEnabled} is true (for example redis-0:6379)`);
  }
  const redisTlsCaFile = raw(env, E.redisTlsCaFile);
  const redisTlsCa = redisTlsCaFile === undefined ? undefined : fileOf(E.redisTlsCaFile, redisTlsCaFile, readFile);
  if (redisTlsCa !== undefined && !redisTlsCa.includes('-----BEGIN CERTIFICATE-----')) {
    throw new EnvError(`${E.redisTlsCaFile} (${JSON.stringify(redisTlsCaFile)}) must hold a PEM certificate (the CA)`);
  }
  return {
    port: int(env, E.port, SERVICE_PORTS.http, 0, 65535),
    metricsPort: int(env, E.metricsPort, SERVICE_PORTS.metrics, 0, 65535),
    logLevel: logLevel as ServiceConfig['logLevel'],
    postgres: {
      primary: parseHostPort(required(env, E.postgresServer, 'postgres-primary:5432'), E.postgresServer, 5432),
      replicas: hostList(env, E.postgresReadReplicas, 5432),
      database: raw(env, E.postgresDb) ?? 'fastnext',
      user: raw(env, E.postgresUser) ?? 'fastnext',
      password,
      logins,
      migration:
        migrationUser !== undefined && migrationPassword !== undefined
          ? { user: migrationUser, password: migrationPassword }
          : undefined,
      sslCa,
      poolSize: int(env, E.dbPoolSize, 20, 1, 1000),
      maxOverflow: int(env, E.dbMaxOverflow, 40, 0, 1000),
      poolTimeoutSeconds: int(env, E.dbPoolTimeout, 30, 1, 3600),
      poolRecycleSeconds: int(env, E.dbPoolRecycle, 3600, 1, 86400),
      replicaMaxLagSeconds: int(env, E.dbReplicaMaxLag, 10, 0, 86400),
    },
    redis: {
      nodes: redisNodes,
      username: raw(env, E.redisUsername) ?? REDIS_APP_ACL.user,
      password: secret(env, E.redisPassword, E.redisPasswordFile, readFile),
      tlsCa: redisTlsCa,
    },
    cache: {
      enabled: cacheEnabled,
      defaultTtlSeconds: int(env, E.cacheDefaultTtl, 300, 1, 86400 * 30),
      warmOnStart: bool(env, E.cacheWarmOnStart, true),
      localTtlSeconds: int(env, E.cacheLocalTtl, 2, 0, 3600),
      localMaxEntries: int(env, E.cacheLocalMaxEntries, 10000, 1, 10_000_000),
    },
    managementToken,
    shutdownDrainSeconds: int(env, E.shutdownDrainSeconds, DEFAULT_DRAIN_SECONDS, 0, 300),
    faultInjection: bool(env, E.faultInjection, false),
  };
}

import * as core from '../core';

/** Key of each PostgreSQL credential in its Secret. */
export interface PostgresCredentialKeys {
  /** The application role's password. @default 'password' */
  readonly password?: string;
  /** The replication role's password (also the rewind role's). @default 'replication-password' */
  readonly replicationPassword?: string;
  /** The superuser's (`postgres`) password. @default 'superuser-password' */
  readonly superuserPassword?: string;
  /** The metrics exporter role's password, in `exporterSecretName`. @default 'password' */
  readonly exporterPassword?: string;
  /** The migration role's password (it owns the schema and runs DDL), in `migrationSecretName`. @default 'migration-password' */
  readonly migrationPassword?: string;
  /** With `alternateLogin`: the password of the application's second login (`<user>_b`). @default 'alternate-password' */
  readonly alternatePassword?: string;
  /**
   * With `alternateLogin`: which login the API uses for new connections, `<user>` or `<user>_b`. An absent
   * key means `<user>`. @default 'active-login'
   */
  readonly activeLogin?: string;
}

/** `postgres.credentials`: the Secrets and key names every workload reads the passwords from. */
export interface PostgresCredentialsSettings {
  /** Secret holding the app, replication and superuser passwords. @default - `credentialsSecret` ('postgres-credentials') */
  readonly secretName?: string;
  /**
   * Secret holding the exporter's password. @default - with `generate: false` the same Secret as
   * `secretName` (one external Secret with every key), else `exporterCredentialsSecret`
   * ('postgres-exporter-credentials')
   */
  readonly exporterSecretName?: string;
  /**
   * Secret holding the migration role's password. @default - with `generate: false` the same Secret as
   * `secretName`, else 'postgres-migration-credentials' (its own Secret, like the exporter's: a
   * credentials Secret generated before the role existed lacks the key, and is never regenerated)
   */
  readonly migrationSecretName?: string;
  /** Key names in those Secrets. @default - password, replication-password, superuser-password; exporter: password; migration: migration-password */
  readonly keys?: PostgresCredentialKeys;
  /**
   * Generate the Secrets in-cluster when absent (a Job POSTs them once). `false`: no generator Job,
   * ServiceAccount, Role, RoleBinding or NetworkPolicy is emitted; the Secrets come from elsewhere
   * and the pods wait for them. Requires `secretName`. @default true
   */
  readonly generate?: boolean;
  /**
   * Two logins for the application, `<user>` and `<user>_b` (a member of `<user>`: the same rights), so its
   * password is rotated with no failed request (docs/postgres-security.md#rotation): the new password is set
   * on the login not in use, then `activeLogin` names it. PgBouncer and the API re-read the Secret's files,
   * nothing restarts. @default false
   */
  readonly alternateLogin?: boolean;
}

/** The application's second login (`alternateLogin`): a member of `user`, so it has the same rights. */
export function alternateLoginOf(user: string): string {
  return `${user}_b`;
}

/** Default key names: today's Secret layout (the generated `postgres-credentials`). */
export const DEFAULT_CREDENTIAL_KEYS: Required<PostgresCredentialKeys> = {
  password: 'password',
  replicationPassword: 'replication-password',
  superuserPassword: 'superuser-password',
  exporterPassword: 'password',
  migrationPassword: 'migration-password',
  alternatePassword: 'alternate-password',
  activeLogin: 'active-login',
};

/** The migration role's Secret when the platform generates it. */
export const DEFAULT_MIGRATION_SECRET = 'postgres-migration-credentials';

/** What the workloads read: both Secret names, every key, whether the platform generates them. */
export interface ResolvedPostgresCredentials {
  readonly secretName: string;
  readonly exporterSecretName: string;
  readonly migrationSecretName: string;
  readonly keys: Required<PostgresCredentialKeys>;
  readonly generate: boolean;
  /** The application's two logins (`alternateLogin`). */
  readonly alternateLogin: boolean;
}

/** A Secret data key: letters, digits, '-', '_' and '.' (Kubernetes' rule), at most 253 characters. */
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;

const KEY_WHAT: Record<keyof PostgresCredentialKeys, string> = {
  password: "the application role's password",
  replicationPassword: "the replication role's password",
  superuserPassword: "the superuser's password",
  exporterPassword: "the exporter role's password",
  migrationPassword: "the migration role's password",
  alternatePassword: "the application's second login's password",
  activeLogin: 'the name of the login the application uses',
};

/** The Secret each credential is read from. */
export function secretOf(r: ResolvedPostgresCredentials, field: keyof PostgresCredentialKeys): string {
  if (field === 'exporterPassword') return r.exporterSecretName;
  if (field === 'migrationPassword') return r.migrationSecretName;
  return r.secretName;
}

/** Resolve `postgres.credentials` against the Secret names it defaults to. */
export function resolveCredentials(
  c: PostgresCredentialsSettings | undefined,
  credentialsSecret: string,
  exporterCredentialsSecret: string,
): ResolvedPostgresCredentials {
  const generate = c?.generate !== false;
  const secretName = c?.secretName ?? credentialsSecret;
  return {
    secretName,
    exporterSecretName: c?.exporterSecretName ?? (generate ? exporterCredentialsSecret : secretName),
    migrationSecretName: c?.migrationSecretName ?? (generate ? DEFAULT_MIGRATION_SECRET : secretName),
    keys: { ...DEFAULT_CREDENTIAL_KEYS, ...definedOnly(c?.keys ?? {}) },
    generate,
    alternateLogin: c?.alternateLogin === true,
  };
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** One problem: the path below `credentials` and what is wrong, with the fix. */
export interface CredentialsProblem {
  readonly path: readonly string[];
  readonly message: string;
}

/** Why `postgres.credentials` cannot work (empty when it can). */
export function credentialsProblems(
  c: PostgresCredentialsSettings | undefined,
  credentialsSecret: string,
  exporterCredentialsSecret: string,
): CredentialsProblem[] {
  const problems: CredentialsProblem[] = [];
  if (c?.generate === false && c.secretName === undefined) {
    problems.push({
      path: ['generate'],
      message:
        'leaves PostgreSQL without credentials: name the Secret your controller writes (ExternalSecret target, ' +
        'SealedSecret, SOPS) in postgres.credentials.secretName, or let it be generated (generate: true)',
    });
  }
  for (const field of ['secretName', 'exporterSecretName', 'migrationSecretName'] as const) {
    const v = c?.[field];
    if (v !== undefined && (v.length > 63 || !core.DNS1123_LABEL.test(v))) {
      problems.push({
        path: [field],
        message: "must be a Secret name (DNS-1123 label): lowercase letters, digits and '-', at most 63 characters",
      });
    }
  }
  for (const [field, key] of Object.entries(c?.keys ?? {}) as [keyof PostgresCredentialKeys, string | undefined][]) {
    if (key === undefined) continue;
    if (key === '') {
      problems.push({
        path: ['keys', field],
        message:
          `names an empty key: write the key your Secret holds ${KEY_WHAT[field]} under, ` +
          `or remove it for the default '${DEFAULT_CREDENTIAL_KEYS[field]}'`,
      });
    } else if (key.length > 253 || !SECRET_KEY.test(key)) {
      problems.push({
        path: ['keys', field],
        message: "is not a Secret key: letters, digits, '-', '_' and '.' only (e.g. 'db-password')",
      });
    }
  }
  if (problems.length) return problems;
  const r = resolveCredentials(c, credentialsSecret, exporterCredentialsSecret);
  for (const field of ['exporterSecretName', 'migrationSecretName'] as const) {
    const others = [r.secretName, ...(field === 'migrationSecretName' ? [r.exporterSecretName] : [])];
    if (r.generate && others.includes(r[field])) {
      problems.push({
        path: [field],
        message:
          `must differ from the credentials' ${others.length > 1 ? 'secretName and exporterSecretName' : 'secretName'} ` +
          'while the platform generates them (each Secret is generated ' +
          'with its own keys): name another Secret, or set generate: false when one external Secret holds every key',
      });
    }
  }
  // Two credentials read from one key of one Secret would share a password.
  const rotationKeys: (keyof PostgresCredentialKeys)[] = ['alternatePassword', 'activeLogin'];
  const used = (Object.keys(r.keys) as (keyof PostgresCredentialKeys)[]).filter(
    (field) => r.alternateLogin || !rotationKeys.includes(field),
  );
  const where = used.map((field) => ({
    field,
    at: `${secretOf(r, field)}/${r.keys[field]}`,
  }));
  for (const [i, a] of where.entries()) {
    const b = where.slice(0, i).find((w) => w.at === a.at);
    if (b) {
      problems.push({
        path: ['keys', a.field],
        message:
          `is also the key of ${b.field} in Secret '${a.at.split('/')[0]}': each credential needs its own key ` +
          '(a shared password would give one role the rights of the other)',
      });
    }
  }
  return problems;
}

/**
 * The database roles and who owns what: one script (`roles.sh` in the `postgres-files` ConfigMap)
 * that post-bootstrap.sh runs on a new cluster and the roles Job runs against the primary of a
 * running one, so an environment bootstrapped before a role existed gets it on the next deploy
 * (Patroni's post_bootstrap runs only when a cluster is initialised).
 *
 * Least privilege, as CloudNativePG and the Bitnami charts separate them:
 * - the migration role (`<user>_migrator`) owns the application's database and its `public`
 *   schema and everything in it, and is the only one that runs DDL (the migrate init container,
 *   the partition-maintenance CronJob);
 * - the runtime role (`<user>`, the API through PgBouncer) may only read and write rows:
 *   SELECT/INSERT/UPDATE/DELETE on the tables, USAGE/SELECT on the sequences, and pg_read_all_stats
 *   for its health endpoints. It cannot CREATE, ALTER or DROP in the schema.
 *
 * The runtime grants are derived, not listed: `ALTER DEFAULT PRIVILEGES FOR ROLE <migrator>` gives
 * the runtime role DML on every table and sequence the migration role creates from now on (a newly
 * appended migration, a new monthly partition), and the script grants the same on what the
 * migration role already owns (after taking over what an older release let the runtime role create).
 *
 * The Job, like the reconfigure Job (patroni-reconfigure.ts), is named by a hash of its spec and of
 * the script, so a change is a new Job and an unchanged one is left alone; the script is idempotent.
 */
import type { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import { memberJob, type MemberJobCluster } from './member-job';

/** What the roles script sets beyond the roles' names and passwords (which come from the environment). */
export interface RolesInput {
  /** The runtime role's default statement_timeout (PgBouncer drops the clients'). */
  readonly statementTimeoutMs: number;
  /** The metrics exporter's role: LOGIN, pg_monitor, nothing else (password from POSTGRES_EXPORTER_PASSWORD). */
  readonly exporterUser: string;
  /**
   * The application's second login `<user>_b` (postgres.credentials.alternateLogin), a member of `<user>`,
   * from POSTGRES_ALTERNATE_PASSWORD: the roles Job sets it; post-bootstrap (no such env) leaves it to the
   * Job. @default false
   */
  readonly alternateLogin?: boolean;
}

/** The application's second login: a member of the runtime role (its rights, through the role), its own password. */
function alternateLoginSql(i: RolesInput): string {
  return `# The application's second login (rotation: docs/postgres-security.md#rotation). Only where
# POSTGRES_ALTERNATE_PASSWORD is set (the roles Job); post-bootstrap on a new cluster leaves it to the Job.
if [ -n "\${POSTGRES_ALTERNATE_PASSWORD:-}" ]; then
PGOPTIONS='-c client_min_messages=warning -c synchronous_commit=local' \\
psql -X -q -v ON_ERROR_STOP=1 -d "$1" \\
  -v app_user="$POSTGRES_USER" -v alt_user="\${POSTGRES_USER}_b" -v alt_password="$POSTGRES_ALTERNATE_PASSWORD" <<'SQL'
-- A member of the runtime role: its grants (rows, pg_read_all_stats) through the role, nothing of its own.
SELECT format('CREATE ROLE %I LOGIN IN ROLE %I', :'alt_user', :'app_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'alt_user') \\gexec
GRANT :"app_user" TO :"alt_user";
ALTER ROLE :"alt_user" WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'alt_password';
-- Role settings are not inherited: the same default as the runtime role's.
ALTER ROLE :"alt_user" SET statement_timeout = '${i.statementTimeoutMs}ms';
SQL
fi
`;
}

/** The migration role of a runtime role: it owns the schema the runtime role reads and writes. */
export function migrationUserOf(user: string): string {
  return `${user}_migrator`;
}

/**
 * roles.sh `<superuser connection string>`. Inputs (env): POSTGRES_USER, POSTGRES_DB and
 * POSTGRES_PASSWORD (the runtime role), POSTGRES_MIGRATION_USER and POSTGRES_MIGRATION_PASSWORD,
 * POSTGRES_EXPORTER_PASSWORD; libpq's PG* variables complete the connection string. Safe to run again:
 * it converges the roles, the passwords (to the Secrets' values), ownership and grants.
 *
 * The migration role is created without LOGIN and may log in only at the end, in the same transaction
 * that gives it the schema: a migrate init container started before this ran cannot log in (it
 * retries) and never migrates into a schema it does not own yet.
 */
export function rolesScript(i: RolesInput): string {
  return `#!/bin/sh
# Rendered by constructs/postgres/roles-job.ts: post-bootstrap.sh and the roles Job run it.
set -eu
: "\${1:?a superuser connection string}"
: "\${POSTGRES_USER:?}" "\${POSTGRES_DB:?}" "\${POSTGRES_PASSWORD:?}" "\${POSTGRES_EXPORTER_PASSWORD:?}"
: "\${POSTGRES_MIGRATION_USER:?}" "\${POSTGRES_MIGRATION_PASSWORD:?}"
# client_min_messages: a re-run's "already exists, skipping" notices are not news.
PGOPTIONS='-c client_min_messages=warning -c synchronous_commit=local' \\
psql -X -q -v ON_ERROR_STOP=1 -d "$1" \\
  -v app_user="$POSTGRES_USER" -v app_db="$POSTGRES_DB" -v app_password="$POSTGRES_PASSWORD" \\
  -v migration_user="$POSTGRES_MIGRATION_USER" -v migration_password="$POSTGRES_MIGRATION_PASSWORD" \\
  -v exporter_user='${i.exporterUser}' -v exporter_password="$POSTGRES_EXPORTER_PASSWORD" <<'SQL'
-- The runtime role: rows only (the grants below), never DDL.
SELECT format('CREATE ROLE %I LOGIN', :'app_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'app_user') \\gexec
ALTER ROLE :"app_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'app_password';
-- PgBouncer drops the statement_timeout clients send at connect: the role's default applies instead.
ALTER ROLE :"app_user" SET statement_timeout = '${i.statementTimeoutMs}ms';
-- The migration role: LOGIN only once it owns the schema (the transaction below).
SELECT format('CREATE ROLE %I NOLOGIN', :'migration_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'migration_user') \\gexec
ALTER ROLE :"migration_user" WITH NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
-- The metrics exporter: pg_monitor (statistics and settings, read-only), never superuser.
SELECT format('CREATE ROLE %I LOGIN', :'exporter_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'exporter_user') \\gexec
ALTER ROLE :"exporter_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION CONNECTION LIMIT 5 PASSWORD :'exporter_password';
GRANT pg_monitor TO :"exporter_user";
SELECT format('CREATE DATABASE %I OWNER %I', :'app_db', :'migration_user')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'app_db') \\gexec
\\connect :"app_db"
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
BEGIN;
-- An older release made the runtime role own the database, the schema and what its migrations
-- created: the migration role takes all of it over (nothing, once done).
REASSIGN OWNED BY :"app_user" TO :"migration_user";
ALTER DATABASE :"app_db" OWNER TO :"migration_user";
ALTER SCHEMA public OWNER TO :"migration_user";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE CREATE ON DATABASE :"app_db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"app_db" TO :"app_user";
GRANT USAGE ON SCHEMA public TO :"app_user";
-- The application reads its own query statistics and replica lag (health endpoints).
GRANT pg_read_all_stats TO :"app_user";
-- Rows of what the migration role owns now (tables, partitions, views; their sequences) ...
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO %I', c.oid::regclass, :'app_user')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = :'migration_user') \\gexec
SELECT format('GRANT USAGE, SELECT ON SEQUENCE %s TO %I', c.oid::regclass, :'app_user')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'public' AND c.relkind = 'S'
   AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = :'migration_user') \\gexec
-- ... and of everything it creates from now on: every later migration and partition.
ALTER DEFAULT PRIVILEGES FOR ROLE :"migration_user" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"migration_user" IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO :"app_user";
ALTER ROLE :"migration_user" WITH LOGIN PASSWORD :'migration_password';
COMMIT;
SQL
${i.alternateLogin ? alternateLoginSql(i) : ''}`;
}

/** What the roles Job needs from its cluster. */
export interface RolesJobProps extends MemberJobCluster {
  /** The script's file name in the ConfigMap. */
  readonly scriptFile: string;
  /** The script the Job runs (its bytes are in the ConfigMap): the Job's name changes with it. */
  readonly script: string;
  /** The primary Service the Job connects to. */
  readonly primaryHost: string;
  readonly port: number;
  readonly superuser: string;
  /** The script's inputs, as the members' env has them (names as values, passwords as secretKeyRefs). */
  readonly env: readonly k8s.EnvVar[];
  /** The superuser's password. */
  readonly superuserPassword: k8s.EnvVarSource;
  /** TLS: verify-full against the CA in this Secret's `caKey`. @default - plaintext */
  readonly tls?: { readonly secretName: string; readonly caKey: string };
}

/** The roles Job (`<component>-roles-<hash>`), its ServiceAccount (no token) and NetworkPolicy. */
export function rolesJob(scope: Construct, p: RolesJobProps): { name: string; component: string } {
  const tlsDir = '/etc/postgres-tls';
  // Egress to the database port of the members only: no API server, no REST API.
  return memberJob(scope, {
    ...p,
    suffix: 'roles',
    ports: [p.port],
    container: {
      name: 'roles',
      command: ['sh', `${p.configDir}/${p.scriptFile}`, 'dbname=postgres'],
      env: [
        { name: 'PGHOST', value: p.primaryHost },
        { name: 'PGPORT', value: String(p.port) },
        { name: 'PGUSER', value: p.superuser },
        { name: 'PGPASSWORD', valueFrom: p.superuserPassword },
        { name: 'PGCONNECT_TIMEOUT', value: '10' },
        // The primary Service's name is in the certificate: verify-full, as every client.
        ...(p.tls
          ? [
              { name: 'PGSSLMODE', value: 'verify-full' },
              { name: 'PGSSLROOTCERT', value: `${tlsDir}/${p.tls.caKey}` },
            ]
          : [{ name: 'PGSSLMODE', value: 'disable' }]),
        ...p.env,
      ],
    },
    volumes: p.tls
      ? [
          {
            volume: {
              name: 'tls',
              secret: { secretName: p.tls.secretName, items: [{ key: p.tls.caKey, path: p.tls.caKey }] },
            },
            mountPath: tlsDir,
          },
        ]
      : [],
    inputs: [p.script],
  });
}

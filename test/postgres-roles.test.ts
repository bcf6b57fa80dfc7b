/**
 * The migration role and the runtime role on real servers: Patroni 3.0.2 + PostgreSQL 15 (Debian)
 * from prod's shipped `postgres-files` (post-bootstrap.sh and roles.sh), the roles Job's own command
 * and env, and the service's `migrate` / `maintain-partitions` commands with the migrate init
 * container's env from the synthesized Deployment.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { type PatroniLaunch, startPatroni } from '../tools/runtime/launcher';
import { makeTempDir } from '../tools/runtime/launcher/processes';
import { main } from '../service/src/server';
import { SERVICE_ENV } from '../service/src/contract';
import { MIGRATIONS } from '../service/src/migrations/migrations';
import { find, type Obj } from './helpers/objects';

jest.setTimeout(240000);

const objects = synthObjects(loadEnvironment('prod')) as Obj[];
let pg: PatroniLaunch;
let secrets: string;

beforeAll(async () => {
  pg = await startPatroni(objects, { members: 1 });
  secrets = makeTempDir('fastnext-roles-');
});
afterAll(async () => {
  await pg?.stop();
});

/**
 * `node dist/server.js <command>` with the env of the synthesized container that runs it (the migrate
 * init container, the CronJob's): its Service address, Secret files and CA swapped for the twin's.
 */
async function runAsShipped(container: Obj, command: 'migrate' | 'maintain-partitions'): Promise<number> {
  const files: Record<string, string> = {
    [SERVICE_ENV.postgresPasswordFile]: pg.password,
    [SERVICE_ENV.postgresMigrationPasswordFile]: pg.migration.password,
    [SERVICE_ENV.redisPasswordFile]: 'unused',
    [SERVICE_ENV.managementTokenFile]: 'management-token-of-the-test',
  };
  const env: Record<string, string> = {};
  for (const e of container.env as { name: string; value: string }[]) {
    if (e.name in files) {
      const path = join(secrets, e.name);
      writeFileSync(path, `${files[e.name]}\n`, { mode: 0o600 });
      env[e.name] = path;
    } else env[e.name] = e.value;
  }
  env[SERVICE_ENV.postgresServer] = `${pg.primary.host}:${pg.primary.port}`;
  env[SERVICE_ENV.postgresSslRootCert] = pg.tls!.caFile;
  env[SERVICE_ENV.logLevel] = 'warn';
  return main([command], env);
}

const migrateContainer = () =>
  find(objects, 'Deployment', 'api').spec.template.spec.initContainers.find((c: Obj) => c.name === 'migrate');
const cronContainer = () =>
  find(objects, 'CronJob', 'api-partition-maintenance').spec.jobTemplate.spec.template.spec.containers[0];

/** Every table, partition and sequence in `public` as the catalog has them after migrating. */
async function relations(): Promise<{ name: string; kind: string; owner: string }[]> {
  return pg.query(
    pg.primary,
    `SELECT c.oid::regclass::text AS name, c.relkind::text AS kind, pg_get_userbyid(c.relowner) AS owner
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S') AND c.oid NOT IN (
        SELECT objid FROM pg_depend WHERE deptype = 'e')
      ORDER BY 1`,
  );
}

/** As `as`: one statement in a transaction that is rolled back; the error's message, or undefined. */
async function attempt(as: 'app' | 'migration', sql: string): Promise<string | undefined> {
  const c = await pg.connect(pg.primary, as);
  try {
    await c.query('BEGIN');
    await c.query(sql);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await c.query('ROLLBACK').catch(() => undefined);
    await c.end();
  }
}

/** Each table's DML as the runtime role (zero rows, so the privilege checks run on any table): the failures. */
async function runtimeDmlFailures(): Promise<Record<string, string>> {
  const tables = (await relations()).filter((r) => r.kind !== 'S');
  const failures: Record<string, string> = {};
  for (const { name } of tables) {
    const cols = await pg.query<{ name: string }>(
      pg.primary,
      `SELECT quote_ident(attname) AS name FROM pg_attribute
        WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`,
      [name],
    );
    const list = cols.map((c) => c.name).join(', ');
    for (const sql of [
      `SELECT * FROM ${name} LIMIT 1`,
      `INSERT INTO ${name} (${list}) SELECT ${list} FROM ${name} WHERE false`,
      `UPDATE ${name} SET ${cols[0].name} = ${cols[0].name} WHERE false`,
      `DELETE FROM ${name} WHERE false`,
    ]) {
      const error = await attempt('app', sql);
      if (error) failures[sql] = error;
    }
  }
  return failures;
}

/** What the roles step decides: the roles' attributes, ownership, grants and default privileges. */
async function rolesState(): Promise<unknown> {
  return {
    roles: await pg.query(
      pg.primary,
      `SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolconnlimit, rolconfig
         FROM pg_roles WHERE rolname = ANY($1) ORDER BY 1`,
      [[pg.user, pg.migration.user, pg.exporter.user]],
    ),
    members: await pg.query(
      pg.primary,
      `SELECT r.rolname AS role, m.rolname AS member FROM pg_auth_members a
         JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member ORDER BY 1, 2`,
    ),
    database: await pg.query(
      pg.primary,
      `SELECT pg_get_userbyid(datdba) AS owner, datacl::text AS acl FROM pg_database WHERE datname = current_database()`,
    ),
    schema: await pg.query(
      pg.primary,
      `SELECT pg_get_userbyid(nspowner) AS owner, nspacl::text AS acl FROM pg_namespace WHERE nspname = 'public'`,
    ),
    relations: await pg.query(
      pg.primary,
      `SELECT c.oid::regclass::text AS name, pg_get_userbyid(c.relowner) AS owner, c.relacl::text AS acl
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'S', 'v') ORDER BY 1`,
    ),
    defaults: await pg.query(pg.primary, `SELECT defaclacl::text AS acl FROM pg_default_acl ORDER BY 1`),
  };
}

describe('a new cluster: post-bootstrap.sh runs roles.sh', () => {
  test('the migration role owns the database and the schema; neither role has more than LOGIN', async () => {
    const [db] = await pg.query<{ owner: string }>(
      pg.primary,
      'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()',
    );
    const [schema] = await pg.query<{ owner: string }>(
      pg.primary,
      `SELECT pg_get_userbyid(nspowner) AS owner FROM pg_namespace WHERE nspname = 'public'`,
    );
    expect([db.owner, schema.owner]).toEqual([pg.migration.user, pg.migration.user]);
    expect(pg.migration.user).not.toBe(pg.user);
    const roles = await pg.query(
      pg.primary,
      `SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolcanlogin FROM pg_roles
        WHERE rolname = ANY($1) ORDER BY rolname`,
      [[pg.user, pg.migration.user]],
    );
    const plain = {
      rolsuper: false,
      rolcreaterole: false,
      rolcreatedb: false,
      rolreplication: false,
      rolcanlogin: true,
    };
    expect(roles).toEqual([pg.user, pg.migration.user].sort().map((rolname) => ({ rolname, ...plain })));
  });

  test('the init container and the CronJob carry the migration role; the serving container does not', () => {
    const names = (c: Obj) => (c.env as { name: string }[]).map((e) => e.name);
    const value = (c: Obj, name: string) =>
      (c.env as { name: string; value?: string }[]).find((e) => e.name === name)?.value;
    for (const c of [migrateContainer(), cronContainer()]) {
      expect(value(c, SERVICE_ENV.postgresMigrationUser)).toBe(pg.migration.user);
      expect(names(c)).toContain(SERVICE_ENV.postgresMigrationPasswordFile);
    }
    const api = find(objects, 'Deployment', 'api').spec.template.spec.containers[0];
    expect(names(api)).not.toContain(SERVICE_ENV.postgresMigrationUser);
    expect(names(api)).not.toContain(SERVICE_ENV.postgresMigrationPasswordFile);
    expect(api.volumeMounts.map((m: Obj) => m.name)).not.toContain('postgres-migration-credentials');
  });

  test('migrate, with the init container env, applies every migration on the empty database as the migration role', async () => {
    expect(await relations()).toEqual([]);
    expect(await runAsShipped(migrateContainer(), 'migrate')).toBe(0);
    const applied = await pg.query<{ id: string }>(pg.primary, 'SELECT id FROM schema_migrations ORDER BY id');
    expect(applied.map((r) => r.id)).toEqual(MIGRATIONS.map((m) => m.id));
    const rels = await relations();
    expect(rels.map((r) => r.name)).toEqual(
      expect.arrayContaining(['users', 'projects', 'activity_logs', 'schema_migrations']),
    );
    expect(rels.filter((r) => r.owner !== pg.migration.user)).toEqual([]);
  });

  test('the runtime role reads and writes every table the migrations made (from the catalog) and runs no DDL', async () => {
    expect(await runtimeDmlFailures()).toEqual({});
    // Real rows through the sequences and into this month's partition.
    const app = await pg.connect(pg.primary, 'app');
    try {
      const { rows } = await app.query(
        `INSERT INTO users (email, username) VALUES ('a@example.com', 'a') RETURNING id`,
      );
      await app.query(`INSERT INTO activity_logs (user_id, action) VALUES ($1, 'create')`, [rows[0].id]);
      await app.query(`INSERT INTO projects (owner_id, name) VALUES ($1, 'p')`, [rows[0].id]);
      await app.query(`UPDATE projects SET name = 'q'`);
      await app.query(`DELETE FROM projects`);
    } finally {
      await app.end();
    }
    expect(await attempt('app', 'CREATE TABLE public.intruder (i int)')).toMatch(/permission denied for schema public/);
    expect(await attempt('app', 'CREATE TABLE intruder (i int)')).toMatch(/permission denied for schema public/);
    expect(await attempt('app', 'ALTER TABLE users ADD COLUMN intruder int')).toMatch(/must be owner of table users/);
    expect(await attempt('app', 'DROP TABLE projects')).toMatch(/must be owner of table projects/);
    expect(await attempt('app', 'CREATE INDEX intruder ON users (email)')).toMatch(/must be owner of table users/);
    expect(await attempt('app', 'TRUNCATE activity_logs')).toMatch(/permission denied for table activity_logs/);
    expect(await attempt('app', 'CREATE SCHEMA intruder')).toMatch(/permission denied for database/);
    // The health endpoints' statistics stay with the runtime role.
    const [stats] = await pg.query<{ ok: boolean }>(
      pg.primary,
      `SELECT pg_has_role($1, 'pg_read_all_stats', 'MEMBER') AS ok`,
      [pg.user],
    );
    expect(stats.ok).toBe(true);
  });

  test("a newly appended migration's table and the CronJob's new partitions are the runtime role's without a grant", async () => {
    const extra = {
      id: '9001_appended',
      sql: 'CREATE TABLE IF NOT EXISTS appended_things (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, note text)',
    };
    const migrator = await pg.connect(pg.primary, 'migration');
    try {
      const { migrate } = await import('../service/src/migrations/migrate');
      expect((await migrate(migrator, [...MIGRATIONS, extra])).applied).toEqual([extra.id]);
      // The CronJob's command a year ahead: partitions it creates that no migration names.
      const { maintainPartitions } = await import('../service/src/migrations/migrate');
      const later = new Date(Date.UTC(new Date().getUTCFullYear() + 1, 0, 15));
      expect((await maintainPartitions(migrator, later)).length).toBeGreaterThan(0);
    } finally {
      await migrator.end();
    }
    expect(await runAsShipped(cronContainer(), 'maintain-partitions')).toBe(0);
    const app = await pg.connect(pg.primary, 'app');
    try {
      await app.query(`INSERT INTO appended_things (note) VALUES ('n')`);
      expect((await app.query('SELECT note FROM appended_things')).rows).toEqual([{ note: 'n' }]);
    } finally {
      await app.end();
    }
    expect(await runtimeDmlFailures()).toEqual({});
  });

  test('the roles Job, run twice as shipped, succeeds and changes nothing the second time', async () => {
    const first = await pg.rolesJob();
    expect([first.code, first.output]).toEqual([0, expect.any(String)]);
    const before = await rolesState();
    const second = await pg.rolesJob();
    expect([second.code, second.output]).toEqual([0, expect.any(String)]);
    expect(await rolesState()).toEqual(before);
    expect(await runtimeDmlFailures()).toEqual({});
  });
});

describe('an existing cluster bootstrapped before the migration role', () => {
  test('the roles Job, then migrate as the migration role, leave the runtime role working and without DDL', async () => {
    // GIVEN the database as the previous post-bootstrap.sh left it: the runtime role owns the database and
    // the schema, its migrate step made the tables (and owns them), and there is no migration role.
    const su = new Client({ ...pg.clientConfig(pg.primary, 'superuser'), database: 'postgres' });
    await su.connect();
    try {
      await su.query(`DROP DATABASE ${pg.database} WITH (FORCE)`);
      await su.query(`DROP OWNED BY ${pg.migration.user}`);
      await su.query(`DROP ROLE ${pg.migration.user}`);
      await su.query(`CREATE DATABASE ${pg.database} OWNER ${pg.user}`);
    } finally {
      await su.end();
    }
    const old = await pg.connect(pg.primary, 'superuser');
    try {
      // The previous post-bootstrap.sh's last statements, in the application's database.
      await old.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      await old.query(`GRANT pg_read_all_stats TO ${pg.user}`);
      await old.query(`ALTER SCHEMA public OWNER TO ${pg.user}`);
    } finally {
      await old.end();
    }
    const asApp = await pg.connect(pg.primary, 'app');
    try {
      const { migrate } = await import('../service/src/migrations/migrate');
      expect((await migrate(asApp)).applied).toEqual(MIGRATIONS.map((m) => m.id));
      await asApp.query(`INSERT INTO users (email, username) VALUES ('old@example.com', 'old')`);
    } finally {
      await asApp.end();
    }
    expect(await attempt('app', 'CREATE TABLE public.intruder (i int)')).toBeUndefined();
    await expect(pg.connect(pg.primary, 'migration')).rejects.toThrow(/password authentication failed/);

    // WHEN the upgrade's roles Job runs, then the new migrate init container (with one more migration)
    const run = await pg.rolesJob();
    expect([run.code, run.output]).toEqual([0, expect.any(String)]);
    expect(await runAsShipped(migrateContainer(), 'migrate')).toBe(0);
    const extra = { id: '9002_after_upgrade', sql: 'CREATE TABLE IF NOT EXISTS after_upgrade (id bigint PRIMARY KEY)' };
    const migrator = await pg.connect(pg.primary, 'migration');
    try {
      const { migrate } = await import('../service/src/migrations/migrate');
      expect((await migrate(migrator, [...MIGRATIONS, extra])).applied).toEqual([extra.id]);
    } finally {
      await migrator.end();
    }

    // THEN the migration role owns everything, the runtime role keeps its rows and every table, and runs no DDL
    expect((await relations()).filter((r) => r.owner !== pg.migration.user)).toEqual([]);
    expect(await runtimeDmlFailures()).toEqual({});
    const [kept] = await pg.query<{ n: number }>(
      pg.primary,
      `SELECT count(*)::int AS n FROM users WHERE username = 'old'`,
    );
    expect(kept.n).toBe(1);
    expect(await attempt('app', 'CREATE TABLE public.intruder (i int)')).toMatch(/permission denied for schema public/);
    expect(await attempt('app', 'DROP TABLE after_upgrade')).toMatch(/must be owner of table after_upgrade/);
    expect(await attempt('app', 'ALTER TABLE users ADD COLUMN intruder int')).toMatch(/must be owner of table users/);
  });
});

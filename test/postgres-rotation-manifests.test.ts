/**
 * `postgres.credentials.alternateLogin` in the manifests (no servers): the Secret's keys, the projected
 * volumes of PgBouncer and the API, the PgBouncer entry point's reload loop, pg_hba and the roles Job.
 * test/postgres-rotation.test.ts runs the same files on real servers.
 */
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { errorFor } from './helpers/config-errors';
import { find, type Obj } from './helpers/objects';

const on = synthObjects(loadEnvironment('prod', { postgres: { credentials: { alternateLogin: true } } })) as Obj[];
const off = synthObjects(loadEnvironment('prod')) as Obj[];

const container = (o: Obj, name: string) => o.spec.template.spec.containers.find((c: Obj) => c.name === name);
const envOf = (c: Obj) => Object.fromEntries(c.env.map((e: Obj) => [e.name, e.value ?? e.valueFrom]));
const volume = (o: Obj, name: string) => o.spec.template.spec.volumes.find((v: Obj) => v.name === name);
const generatorKeys = (objects: Obj[]) => {
  const job = objects.find((o) => o.kind === 'Job' && /^postgres-credentials-generator-/.test(o.metadata.name));
  return envOf(job!.spec.template.spec.containers[0]).SECRET_KEYS;
};

test('the generated Secret gets alternate-password; active-login is left to the rotation (absent = the first login)', () => {
  expect(generatorKeys(on)).toBe('password replication-password superuser-password alternate-password');
  expect(generatorKeys(off)).toBe('password replication-password superuser-password');
});

test('PgBouncer reads both passwords from a projected Secret volume, not from env', () => {
  const d = find(on, 'Deployment', 'pgbouncer');
  const env = envOf(container(d, 'pgbouncer'));
  expect(env.PGBOUNCER_PASSWORD).toBeUndefined();
  expect(env.PGBOUNCER_CREDENTIALS_DIR).toBe('/etc/pgbouncer-credentials');
  expect(volume(d, 'credentials').projected.sources).toEqual([
    {
      secret: {
        name: 'postgres-credentials',
        items: [
          { key: 'password', path: 'password' },
          { key: 'alternate-password', path: 'alternate-password' },
        ],
      },
    },
  ]);
  expect(container(d, 'pgbouncer').volumeMounts).toContainEqual({
    name: 'credentials',
    mountPath: '/etc/pgbouncer-credentials',
    readOnly: true,
  });
});

test("PgBouncer's entry point admits both logins and reloads when their files change", () => {
  const start = find(on, 'ConfigMap', 'pgbouncer-config').data['pgbouncer-start.sh'];
  expect(start).toContain(`"$(quote 'fastnext')" "$(quote "$(cat "$PGBOUNCER_CREDENTIALS_DIR/password")")"`);
  expect(start).toContain(
    `"$(quote 'fastnext_b')" "$(quote "$(cat "$PGBOUNCER_CREDENTIALS_DIR/alternate-password")")"`,
  );
  expect(start).toMatch(/userlist && kill -HUP "\$pid"/);
  expect(find(off, 'ConfigMap', 'pgbouncer-config').data['pgbouncer-start.sh']).not.toContain('CREDENTIALS_DIR');
});

test('the API reads the login in use per connection: active-login is an optional item of its projected volume', () => {
  const d = find(on, 'Deployment', 'api');
  const env = envOf(container(d, 'api'));
  expect(env).toMatchObject({
    POSTGRES_USER: 'fastnext',
    POSTGRES_PASSWORD_FILE: expect.stringMatching(/\/postgres\/password$/),
    POSTGRES_ALTERNATE_USER: 'fastnext_b',
    POSTGRES_ALTERNATE_PASSWORD_FILE: expect.stringMatching(/\/postgres\/alternate-password$/),
    POSTGRES_ACTIVE_LOGIN_FILE: expect.stringMatching(/\/postgres\/active-login$/),
  });
  expect(volume(d, 'postgres-credentials').projected.sources).toEqual([
    {
      secret: {
        name: 'postgres-credentials',
        items: [
          { key: 'password', path: 'password' },
          { key: 'alternate-password', path: 'alternate-password' },
        ],
      },
    },
    {
      secret: { name: 'postgres-credentials', items: [{ key: 'active-login', path: 'active-login' }], optional: true },
    },
  ]);
});

test('pg_hba admits both logins to the database; the roles Job makes the second one, the members do not roll', () => {
  const files = find(on, 'ConfigMap', 'postgres-files').data;
  expect(files['patroni.yml']).toMatch(/hostssl fastnext fastnext,fastnext_b \S+ scram-sha-256/);
  expect(files['roles.sh']).toContain("CREATE ROLE %I LOGIN IN ROLE %I', :'alt_user', :'app_user'");
  const job = on.find((o) => o.kind === 'Job' && /^postgres-roles-/.test(o.metadata.name))!;
  expect(envOf(job.spec.template.spec.containers[0]).POSTGRES_ALTERNATE_PASSWORD).toEqual({
    secretKeyRef: { name: 'postgres-credentials', key: 'alternate-password' },
  });
  const members = (objects: Obj[]) => container(find(objects, 'StatefulSet', 'postgres'), 'patroni').env;
  expect(members(on)).toEqual(members(off));
});

test('fails when alternateLogin is not a boolean, naming the field', () => {
  expect(errorFor({ postgres: { credentials: { alternateLogin: 'yes' } } })).toContain(
    'postgres.credentials.alternateLogin',
  );
});

test("fails when the second login would share the first one's key, only with alternateLogin on", () => {
  const keys = { alternatePassword: 'password' };
  expect(errorFor({ postgres: { credentials: { alternateLogin: true, keys } } })).toContain(
    'postgres.credentials.keys.alternatePassword: "password" is also the key of password in Secret \'postgres-credentials\'',
  );
  expect(() => loadEnvironment('prod', { postgres: { credentials: { keys } } })).not.toThrow();
});

/**
 * PostgreSQL parameters live in Patroni's dynamic configuration and reach a live cluster
 * through the reconfigure Job: where they are rendered, what the Job runs and may reach, how
 * its name follows the desired configuration, and the `parameters` config the user sets.
 * The Job's script against real Patroni members: test/patroni-reconfigure.test.ts.
 */
import { parse } from 'yaml';
import { podsOf } from '../constructs/core/network';
import { RUNS_AFTER_ANNOTATION } from '../constructs/core/workload';
import { PATRONI_FILES } from '../constructs/postgres/patroni-files';
import { reconfigureScript } from '../constructs/postgres/patroni-reconfigure';
import {
  applyPathOf,
  applyPathText,
  PG_SETTING_CONTEXTS,
  RESERVED_PARAMETERS,
  settingContext,
} from '../constructs/postgres/pg-settings';
import { ConfigError } from '../stacks/config';
import { deployDependencies } from '../stacks/deploy-order';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { ENVS, find, type Obj, objectsOf } from './helpers/objects';

const reconfigureJobOf = (objects: Obj[]): Obj => {
  const jobs = objects.filter((o) => o.kind === 'Job' && o.metadata.name.startsWith('postgres-reconfigure-'));
  expect(jobs).toHaveLength(1);
  return jobs[0];
};
const patroniYml = (objects: Obj[]) => parse(find(objects, 'ConfigMap', 'postgres-files').data['patroni.yml']);

describe.each(ENVS)('%s', (env) => {
  const objects = objectsOf(env);
  const config = loadEnvironment(env);
  const patroni = patroniYml(objects);
  const job = reconfigureJobOf(objects);
  const pod = job.spec.template.spec;

  test("every server parameter is in Patroni's dynamic configuration; only the socket directory and TLS are local", () => {
    // Local parameters override the DCS on their member and are never reloaded from a changed ConfigMap.
    // TLS is local on purpose: the files are the member's own mounts, and ssl = on must arrive with
    // them (a rolled pod), never through the DCS ahead of them (a member without the files would
    // then fail to start).
    const tls = config.postgres.tls.enabled ? ['ssl', 'ssl_cert_file', 'ssl_key_file', 'ssl_min_protocol_version'] : [];
    expect(Object.keys(patroni.postgresql.parameters)).toEqual(['unix_socket_directories', ...tls]);
    const dcs = patroni.bootstrap.dcs.postgresql.parameters as Record<string, unknown>;
    expect(dcs).toMatchObject({ shared_buffers: expect.any(String), work_mem: expect.any(String) });
    const unknown = Object.keys(dcs).filter((n) => settingContext(n) === undefined);
    const readOnly = Object.keys(dcs).filter((n) => settingContext(n) === 'internal');
    expect({ unknown, readOnly }).toEqual({ unknown: [], readOnly: [] });
  });

  test('the reconfigure Job runs the shipped script with the postgres image, as postgres, with no API token', () => {
    expect(job.metadata.name).toMatch(/^postgres-reconfigure-[0-9a-f]{8}$/);
    expect(find(objects, 'ConfigMap', 'postgres-files').data[PATRONI_FILES.reconfigure]).toBe(reconfigureScript());
    const [c] = pod.containers;
    expect(c.image).toBe(config.postgres.image);
    expect(c.command).toEqual(['python3', '/etc/patroni/reconfigure.py']);
    const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e.value]));
    expect(env.PATRONI_CONFIG).toBe('/etc/patroni/patroni.yml');
    expect(env.PATRONI_MEMBERS.split(' ')).toEqual(
      Array.from(
        { length: 1 + config.postgres.replicas },
        (_, i) => `http://postgres-${i}.postgres-headless.${config.namespace}.svc.cluster.local:8008`,
      ),
    );
    expect(c.volumeMounts).toContainEqual({ name: 'config', mountPath: '/etc/patroni', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'config', configMap: { name: 'postgres-files', defaultMode: 0o444 } });
    expect([pod.serviceAccountName, pod.automountServiceAccountToken, pod.securityContext.runAsUser]).toEqual([
      'postgres-reconfigure',
      false,
      999,
    ]);
    expect(find(objects, 'ServiceAccount', 'postgres-reconfigure').automountServiceAccountToken).toBe(false);
    expect(objects.filter((o) => o.kind === 'RoleBinding' && JSON.stringify(o).includes('reconfigure'))).toEqual([]);
  });

  test("the Job reaches only the members' Patroni REST port, and they admit it there only", () => {
    const own = find(objects, 'NetworkPolicy', 'postgres-reconfigure').spec;
    expect(own.ingress).toEqual([]);
    const egress = own.egress.filter((r: Obj) => !r.ports.some((p: Obj) => p.port === 53));
    expect(egress).toEqual([
      {
        to: [podsOf('postgres')],
        ports: [{ protocol: 'TCP', port: 8008 }],
      },
    ]);
    const members = find(objects, 'NetworkPolicy', 'postgres').spec.ingress;
    const fromJob = members.filter((r: Obj) =>
      r.from.some((p: Obj) => p.podSelector?.matchLabels?.['app.kubernetes.io/name'] === 'postgres-reconfigure'),
    );
    expect(fromJob).toEqual([
      {
        from: [podsOf('postgres-reconfigure')],
        ports: [{ protocol: 'TCP', port: 8008 }],
      },
    ]);
  });

  test('Pulumi starts the Job once the StatefulSet rolled out', () => {
    expect(job.metadata.annotations?.[RUNS_AFTER_ANNOTATION]).toBe('StatefulSet/postgres');
    const deps = deployDependencies(objects);
    expect(deps.get(`Job/${job.metadata.name}`)).toContain('StatefulSet/postgres');
    expect(deps.get('StatefulSet/postgres')).not.toContain(`Job/${job.metadata.name}`);
  });
});

describe('a changed parameter (prod)', () => {
  const before = objectsOf('prod');
  const changed = (overrides: object) => synthObjects(loadEnvironment('prod', overrides)) as Obj[];
  const after = changed({ postgres: { parameters: { log_min_duration_statement: 250, work_mem: '8MB' } } });

  test('is a new reconfigure Job; the pods are not rolled (their template is unchanged)', () => {
    expect(reconfigureJobOf(after).metadata.name).not.toBe(reconfigureJobOf(before).metadata.name);
    expect(find(after, 'StatefulSet', 'postgres').spec.template).toEqual(
      find(before, 'StatefulSet', 'postgres').spec.template,
    );
    const dcs = patroniYml(after).bootstrap.dcs.postgresql.parameters;
    expect([dcs.log_min_duration_statement, dcs.work_mem]).toEqual([250, '8MB']);
  });

  test('a change elsewhere in the environment keeps the Job (it is not run again)', () => {
    const other = changed({ api: { autoscaling: { maxReplicas: 19 } } });
    expect(reconfigureJobOf(other).metadata.name).toBe(reconfigureJobOf(before).metadata.name);
  });

  test('max_connections (a postmaster parameter) from maxConnections is a new Job too', () => {
    const more = changed({ postgres: { maxConnections: 300 } });
    expect(reconfigureJobOf(more).metadata.name).not.toBe(reconfigureJobOf(before).metadata.name);
    expect(patroniYml(more).bootstrap.dcs.postgresql.parameters.max_connections).toBe(300);
  });
});

describe('pg_settings contexts (constructs/postgres/pg15-settings.json)', () => {
  test('classifies by context: postmaster needs a restart, internal is read-only, the rest reloads', () => {
    expect(Object.keys(PG_SETTING_CONTEXTS).length).toBeGreaterThan(300);
    expect(applyPathOf('postmaster')).toBe('restart');
    expect(applyPathOf('sighup')).toBe('reload');
    expect(applyPathOf('user')).toBe('reload');
    expect(applyPathOf('superuser-backend')).toBe('reload');
    expect(applyPathOf('internal')).toBe('read-only');
    // PostgreSQL documents these: shared_buffers "can only be set at server start", work_mem per session.
    expect([settingContext('shared_buffers'), settingContext('work_mem'), settingContext('DATESTYLE')]).toEqual([
      'postmaster',
      'user',
      'user',
    ]);
    expect(applyPathText('shared_buffers')).toMatch(/^context postmaster: needs a restart/);
    expect(applyPathText('log_min_duration_statement')).toBe(
      'context superuser: applied by a reload on every member, no restart',
    );
  });

  test('every reserved parameter is one PostgreSQL knows', () => {
    expect(Object.keys(RESERVED_PARAMETERS).filter((n) => !settingContext(n))).toEqual([]);
  });
});

describe('postgres.parameters (config)', () => {
  const errorFor = (parameters: object): string => {
    try {
      loadEnvironment('prod', { postgres: { parameters } });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  };

  test('fails when a parameter is not one PostgreSQL 15 knows', () => {
    expect(errorFor({ wrok_mem: '8MB' })).toBe(
      "Invalid config for environment 'prod':\n" +
        '  - postgres.parameters.wrok_mem: "8MB" \'wrok_mem\' is not a PostgreSQL 15 parameter ' +
        '(constructs/postgres/pg15-settings.json lists every one): check the spelling',
    );
  });

  test('fails when Patroni or a prop of its own sets the parameter', () => {
    expect(errorFor({ max_connections: 500, listen_addresses: '*' })).toBe(
      "Invalid config for environment 'prod':\n" +
        '  - postgres.parameters.max_connections: 500 cannot be set here: set maxConnections (the connection budget is checked against it)\n' +
        '  - postgres.parameters.listen_addresses: "*" cannot be set here: Patroni sets it from postgresql.listen',
    );
  });

  test('fails when the parameter is read-only', () => {
    expect(errorFor({ block_size: 16384 })).toContain(
      "postgres.parameters.block_size: 16384 'block_size' is read-only (context internal): it cannot be set",
    );
  });

  test('a valid parameter overrides the derived tuning', () => {
    const config = loadEnvironment('prod', { postgres: { parameters: { work_mem: '64MB', random_page_cost: 1.5 } } });
    const dcs = patroniYml(synthObjects(config) as Obj[]).bootstrap.dcs.postgresql.parameters;
    expect([dcs.work_mem, dcs.random_page_cost]).toEqual(['64MB', 1.5]);
  });
});

/**
 * Backup settings without servers: the environment's bad input refused at synth with field,
 * value and fix; the rendered pgbackrest.conf for each repository type (s3, gcs, azure, posix:
 * what pgBackRest cannot reach here is checked as rendered); the CronJobs, their RBAC and the
 * pod's env; cron schedules and the twin's substitutions.
 */
import { Chart, Testing } from 'cdk8s';
import { backupAlertRules } from '../constructs/postgres/backup-alerts';
import { parse } from 'yaml';
import { cronMaxIntervalSeconds, cronProblem } from '../constructs/core/cron';
import { type BackupProps, recoveryTargetTime } from '../constructs/postgres/backup-settings';
import { PatroniCluster } from '../constructs/postgres/patroni-cluster';
import { PGBACKREST_FILES } from '../constructs/postgres/pgbackrest-files';
import { ConfigError } from '../stacks/config';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import type { Obj } from './helpers/objects';
import { parsePgBackRestConf, TWIN_PGBACKREST_CHANGES, twinPgBackRestConf } from '../tools/runtime/launcher/pgbackrest';
import { twinPatroniConfig } from '../tools/runtime/launcher/patroni';
import { docAnchors } from './helpers/docs';
import { MINIMAL_PATRONI_PROPS } from './helpers/patroni-props';

/** A bare non-production environment: its backup settings are only what a case gives. */
const BARE = { bare: { name: 'bare', production: false } };

function errorFor(env: string, extra: object): string {
  try {
    loadEnvironment(env, extra, env === 'bare' ? BARE : undefined);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('expected a ConfigError');
}
const backup = (b: object) => ({ postgres: { backup: b } });
const GCS = { repository: { type: 'gcs', bucket: 'b-1' } };

describe('bad backup config is refused at synth, naming field, value and fix', () => {
  test.each([
    [
      'an s3 repository without a bucket',
      backup({ repository: { type: 's3', region: 'eu-west-1' }, credentialsSecret: 's3-creds' }),
      'postgres.backup.repository.bucket: (missing) is required for a s3 repository: name the bucket backups go to',
    ],
    [
      'an unknown repository type',
      backup({ repository: { type: 'ftp', bucket: 'b' } }),
      'postgres.backup.repository.type: "ftp" must be one of "s3", "gcs", "azure", "posix"',
    ],
    [
      'a full schedule that is not a 5-field cron',
      backup({ ...GCS, schedule: { full: 'weekly' } }),
      'postgres.backup.schedule.full: "weekly" is not a 5-field cron schedule (has 1 field(s); a cron schedule has 5 (minute hour day-of-month month day-of-week)); e.g. \'0 1 * * 0\' for Sundays at 01:00',
    ],
    [
      'a differential schedule with an hour out of range',
      backup({ ...GCS, schedule: { differential: '0 25 * * *' } }),
      'postgres.backup.schedule.differential: "0 25 * * *" is not a 5-field cron schedule (hour 25 is outside 0-23)',
    ],
    [
      'a retention below 1',
      backup({ ...GCS, retention: { full: 0 } }),
      'postgres.backup.retention.full: 0 must be an integer from 1 to 100: with no full backup kept there is nothing to restore',
    ],
    [
      'an s3 repository without credentials',
      backup({ repository: { type: 's3', bucket: 'b-1', region: 'eu-west-1' } }),
      'postgres.backup.credentialsSecret: (missing) is required for a s3 repository: name a Secret with keys access-key-id and secret-access-key (credentials never go in the config)',
    ],
    [
      'encryption on without a key Secret',
      backup({ repository: { type: 'gcs', bucket: 'b-1' }, encryption: { enabled: true } }),
      "postgres.backup.encryption.keySecret: (missing) is required when encryption is enabled: name a Secret with key 'passphrase'",
    ],
    [
      'an archive_timeout of 0 (no bound on the data lost)',
      backup({ ...GCS, archiveTimeoutSeconds: 0 }),
      'postgres.backup.archiveTimeoutSeconds: 0 must be an integer from 10 to 3600',
    ],
    [
      'an azure repository with a bucket instead of a container',
      backup({ repository: { type: 'azure', bucket: 'b-1' }, credentialsSecret: 'az' }),
      'postgres.backup.repository.container: (missing) is required for an azure repository',
    ],
    [
      'a restore target time without a zone',
      { postgres: { restore: { fromBackup: { targetTime: '2024-05-01 12:00:00' } } } },
      'postgres.restore.fromBackup.targetTime: "2024-05-01 12:00:00" must be an ISO 8601 time with a zone, e.g. \'2024-05-01T12:00:00Z\'',
    ],
  ])('fails when %s', (_what, extra, message) => {
    expect(errorFor('bare', extra)).toContain(message);
  });

  test('fails when a production environment forgets backups; opting out explicitly is accepted', () => {
    const forgot = { name: 'prod2', production: true };
    const registry = { prod2: forgot };
    expect(() => loadEnvironment('prod2', {}, registry)).toThrow(
      "postgres.backup.enabled: (missing) is not decided in a production environment: add postgres.backup.repository (e.g. { type: 'gcs', bucket: 'my-backups' }) with credentialsSecret and encryption.keySecret, or set postgres.backup.enabled: false to run without backups knowingly",
    );
    expect(() => loadEnvironment('prod2', backup({ enabled: false }), registry)).not.toThrow();
  });

  test('fails when a restore is asked without a repository', () => {
    expect(errorFor('bare', { postgres: { restore: { fromBackup: {} } } })).toContain(
      'postgres.restore.fromBackup: {} needs a backup repository to restore from: configure backup.repository',
    );
  });
});

const chart = () => new Chart(Testing.app(), 'test', { namespace: 'ns' });
const cluster = (b: BackupProps, extra: object = {}) =>
  new PatroniCluster(chart(), 'pg', {
    ...MINIMAL_PATRONI_PROPS,
    backup: b,
    ...extra,
  });
const conf = (c: PatroniCluster) => parsePgBackRestConf(c.files[PGBACKREST_FILES.conf]);

describe('pgbackrest.conf per repository type (rendered; the posix path runs end to end in test/backup.test.ts)', () => {
  test('s3 with an S3-compatible endpoint: bucket, region, endpoint host and port, path-style URIs; keys from the Secret', () => {
    const c = cluster({
      repository: {
        type: 's3',
        bucket: 'backups',
        region: 'us-east-1',
        endpoint: 'minio.storage:9000',
        pathStyle: true,
      },
      credentialsSecret: 's3-creds',
    });
    expect(conf(c).global).toMatchObject({
      'repo1-type': 's3',
      'repo1-path': '/pgbackrest/ns',
      'repo1-s3-bucket': 'backups',
      'repo1-s3-region': 'us-east-1',
      'repo1-s3-endpoint': 'minio.storage',
      'repo1-storage-port': '9000',
      'repo1-s3-uri-style': 'path',
      'repo1-s3-key-type': 'shared',
      'repo1-retention-full': '2',
    });
    expect(c.files[PGBACKREST_FILES.conf]).not.toMatch(/key=|key-secret=|cipher-pass/);
    const sts = Testing.synth(c.node.scope as Chart).find((o) => o.kind === 'StatefulSet');
    const env = sts.spec.template.spec.containers[0].env as { name: string; valueFrom?: { secretKeyRef: object } }[];
    expect(env.filter((e) => e.name.startsWith('PGBACKREST_REPO1'))).toEqual([
      { name: 'PGBACKREST_REPO1_S3_KEY', valueFrom: { secretKeyRef: { name: 's3-creds', key: 'access-key-id' } } },
      {
        name: 'PGBACKREST_REPO1_S3_KEY_SECRET',
        valueFrom: { secretKeyRef: { name: 's3-creds', key: 'secret-access-key' } },
      },
    ]);
    // The NetworkPolicy lets the members reach the endpoint's port.
    const np = Testing.synth(c.node.scope as Chart).find(
      (o) => o.kind === 'NetworkPolicy' && o.metadata.name === 'postgres',
    );
    expect(JSON.stringify(np.spec.egress)).toContain('"port":9000');
  });

  test('s3 on AWS: the regional endpoint by default', () => {
    const c = cluster({
      repository: { type: 's3', bucket: 'backups', region: 'eu-west-1' },
      credentialsSecret: 's3-creds',
    });
    expect(conf(c).global['repo1-s3-endpoint']).toBe('s3.eu-west-1.amazonaws.com');
  });

  test('gcs: the service-account key mounted from the Secret, or Workload Identity without one', () => {
    const withKey = cluster({ repository: { type: 'gcs', bucket: 'backups' }, credentialsSecret: 'gcs-key' });
    expect(conf(withKey).global).toMatchObject({
      'repo1-gcs-bucket': 'backups',
      'repo1-gcs-key': '/etc/pgbackrest-gcs/service-account.json',
    });
    const sts = Testing.synth(withKey.node.scope as Chart).find((o) => o.kind === 'StatefulSet');
    expect(sts.spec.template.spec.volumes).toContainEqual({
      name: 'backup-credentials',
      secret: {
        secretName: 'gcs-key',
        items: [{ key: 'service-account.json', path: 'service-account.json' }],
        defaultMode: 0o400,
      },
    });
    expect(conf(cluster({ repository: { type: 'gcs', bucket: 'backups' } })).global['repo1-gcs-key-type']).toBe('auto');
  });

  test('azure: container and account/key from the Secret', () => {
    const c = cluster({
      repository: { type: 'azure', container: 'backups', endpoint: 'blob.example.net' },
      credentialsSecret: 'az',
    });
    expect(conf(c).global).toMatchObject({
      'repo1-type': 'azure',
      'repo1-azure-container': 'backups',
      'repo1-azure-endpoint': 'blob.example.net',
    });
  });

  test('posix: a ReadWriteMany claim every member mounts at the repository path', () => {
    const c = cluster({ repository: { type: 'posix', volume: { size: '50Gi', storageClass: 'nfs' } } });
    expect(conf(c).global).toMatchObject({ 'repo1-type': 'posix', 'repo1-path': '/var/lib/pgbackrest' });
    const objs = Testing.synth(c.node.scope as Chart);
    const pvc = objs.find((o) => o.kind === 'PersistentVolumeClaim');
    expect([pvc.metadata.name, pvc.spec.accessModes, pvc.spec.storageClassName]).toEqual([
      'postgres-backup-repository',
      ['ReadWriteMany'],
      'nfs',
    ]);
    const sts = objs.find((o) => o.kind === 'StatefulSet');
    expect(sts.spec.template.spec.containers[0].volumeMounts).toContainEqual({
      name: 'backup-repository',
      mountPath: '/var/lib/pgbackrest',
    });
  });

  test('encryption: aes-256-cbc when a key Secret is named, the passphrase only from it', () => {
    const c = cluster({ repository: { type: 'gcs', bucket: 'b-1' }, encryption: { keySecret: 'enc' } });
    expect(conf(c).global['repo1-cipher-type']).toBe('aes-256-cbc');
    const plain = cluster({ repository: { type: 'gcs', bucket: 'b-1' } });
    expect(conf(plain).global['repo1-cipher-type']).toBeUndefined();
  });

  test('fails when the construct gets an s3 repository without a bucket (prop, value, fix)', () => {
    expect(() =>
      cluster({ repository: { type: 's3', region: 'eu-west-1' }, credentialsSecret: 'c' } as BackupProps),
    ).toThrow("'backup.repository.bucket' (undefined) is required for a s3 repository: name the bucket backups go to");
  });
});

describe('prod: what ships', () => {
  const objects = synthObjects(loadEnvironment('prod')) as Obj[];
  const named = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name)!;
  const files = named('ConfigMap', 'postgres-files').data as Record<string, string>;
  const patroni = parse(files['patroni.yml']);

  test('every member archives through pgBackRest (whichever leads), archive_timeout 60 s, replicas from the repository', () => {
    // In Patroni's dynamic configuration, as every server parameter: the reconfigure Job applies a change.
    expect(patroni.bootstrap.dcs.postgresql.parameters).toMatchObject({
      archive_mode: 'on',
      archive_command: 'pgbackrest archive-push "%p"',
      archive_timeout: '60s',
    });
    expect(patroni.postgresql.create_replica_methods).toEqual(['pgbackrest', 'basebackup']);
    expect(patroni.postgresql.recovery_conf.restore_command).toBe('pgbackrest archive-get %f "%p"');
    // No restore asked: Patroni bootstraps with initdb.
    expect(patroni.bootstrap.method).toBeUndefined();
    expect(files[PGBACKREST_FILES.restore]).toBeUndefined();
  });

  test('full and differential CronJobs exec backup.sh on the leader, never twice at once', () => {
    const full = named('CronJob', 'postgres-backup-full');
    const diff = named('CronJob', 'postgres-backup-diff');
    for (const [cj, type, schedule] of [
      [full, 'full', '0 1 * * 0'],
      [diff, 'diff', '0 1 * * 1-6'],
    ] as const) {
      expect(cj.spec.schedule).toBe(schedule);
      expect(cj.spec.concurrencyPolicy).toBe('Forbid');
      expect(cj.spec.jobTemplate.spec.template.spec.containers[0].command).toEqual([
        'kubectl',
        'exec',
        'svc/postgres-primary',
        '-c',
        'patroni',
        '--',
        'sh',
        '/etc/patroni/backup.sh',
        type,
      ]);
    }
  });

  test('the Jobs may exec only into the members, and read only the primary Service', () => {
    const role = named('Role', 'postgres-backup');
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['services'], resourceNames: ['postgres-primary'], verbs: ['get'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
      {
        apiGroups: [''],
        resources: ['pods'],
        resourceNames: ['postgres-0', 'postgres-1', 'postgres-2'],
        verbs: ['get'],
      },
      {
        apiGroups: [''],
        resources: ['pods/exec'],
        resourceNames: ['postgres-0', 'postgres-1', 'postgres-2'],
        verbs: ['create'],
      },
    ]);
  });

  test('the exporter reads the shipped queries; the credentials and key Secrets are declared as external', () => {
    const sts = named('StatefulSet', 'postgres');
    const exporter = sts.spec.template.spec.containers.find((c: { name: string }) => c.name === 'exporter');
    expect(exporter.env).toContainEqual({
      name: 'PG_EXPORTER_EXTEND_QUERY_PATH',
      value: '/etc/postgres-exporter/exporter-queries.yaml',
    });
    expect(sts.metadata.annotations?.['fastnext.io/external-secrets']).toBe(
      'postgres-backup-gcs,postgres-backup-encryption',
    );
  });

  test('a restore bootstraps from the repository to the target time (Patroni method pgbackrest, recovery settings it writes)', () => {
    const restored = synthObjects(
      loadEnvironment('prod', { postgres: { restore: { fromBackup: { targetTime: '2024-05-01T12:00:00+02:00' } } } }),
    );
    const f = restored.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'postgres-files')!.data as Record<
      string,
      string
    >;
    const p = parse(f['patroni.yml']);
    expect(p.bootstrap.method).toBe('pgbackrest');
    expect(p.bootstrap.pgbackrest).toEqual({
      command: 'sh /etc/patroni/restore.sh',
      no_params: true,
      keep_existing_recovery_conf: false,
      recovery_conf: {
        restore_command: 'pgbackrest archive-get %f "%p"',
        recovery_target_time: '2024-05-01 10:00:00.000+00',
        recovery_target_action: 'promote',
        recovery_target_timeline: 'latest',
      },
    });
    expect(f[PGBACKREST_FILES.restore]).toContain(
      'pgbackrest restore --type=time "--target=2024-05-01 10:00:00.000+00" --target-action=promote',
    );
  });

  test('dev runs without backups (explicitly), so no archive_command and no CronJobs', () => {
    const dev = synthObjects(loadEnvironment('dev'));
    expect(dev.filter((o) => o.kind === 'CronJob').map((o) => o.metadata.name)).toEqual(['api-partition-maintenance']);
  });
});

describe('the twin changes only the repository and the member paths', () => {
  const shipped = (
    synthObjects(loadEnvironment('prod')).find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'postgres-files')!
      .data as Record<string, string>
  )[PGBACKREST_FILES.conf];

  test('pgbackrest.conf: a posix directory for the bucket; retention, encryption, compression as shipped', () => {
    const twin = twinPgBackRestConf(shipped, {
      dataDir: '/d',
      port: 1,
      socketDir: '/s',
      lockPath: '/l',
      repositoryDir: '/r',
    });
    const a = parsePgBackRestConf(shipped);
    const b = parsePgBackRestConf(twin);
    const changed = (x: Record<string, string>, y: Record<string, string>) =>
      [...new Set([...Object.keys(x), ...Object.keys(y)])].filter((k) => x[k] !== y[k]).sort();
    const allowed = (k: string) =>
      TWIN_PGBACKREST_CHANGES.some((c) => (c.endsWith('*') ? k.startsWith(c.slice(0, -1)) : k === c));
    for (const section of Object.keys(a)) {
      const keys = changed(a[section], b[section]);
      expect(keys.filter((k) => !allowed(k))).toEqual([]);
    }
    expect(b.global).toMatchObject({ 'repo1-type': 'posix', 'repo1-path': '/r', 'repo1-cipher-type': 'aes-256-cbc' });
  });

  test("patroni.yml: a restore's bootstrap command moves with the config dir", () => {
    const restored = synthObjects(loadEnvironment('prod', { postgres: { restore: { fromBackup: {} } } }));
    const yml = (
      restored.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'postgres-files')!.data as Record<
        string,
        string
      >
    )['patroni.yml'];
    const twin = parse(
      twinPatroniConfig(yml, {
        name: 'postgres-0',
        host: '127.0.0.1',
        port: 1,
        restPort: 2,
        dataDir: '/d',
        socketDir: '/s',
        pgpassFile: '/p',
        configDir: '/twin/config',
        etcdHosts: '127.0.0.1:3',
      }),
    );
    expect(twin.bootstrap.pgbackrest.command).toBe('sh /twin/config/restore.sh');
    expect(twin.bootstrap.dcs.postgresql.parameters.archive_command).toBe('pgbackrest archive-push "%p"');
  });
});

describe('cron schedules', () => {
  test.each([
    ['0 1 * * 0', 7 * 86400],
    ['0 1 * * 1-6', 2 * 86400],
    ['*/15 * * * *', 900],
    ['30 2 1 * *', 31 * 86400],
    ['0 0 * * sun,wed', 4 * 86400],
  ])('%s runs at worst every %i s', (cron, seconds) => {
    expect(cronMaxIntervalSeconds(cron)).toBe(seconds);
  });

  test.each([
    ['@daily', 'has 1 field(s)'],
    ['0 1 * *', 'has 4 field(s)'],
    ['60 * * * *', 'minute 60 is outside 0-59'],
    ['0 1 * * 8', 'day of week 8 is outside 0-7'],
    ['0 1 31 2 *', 'never runs'],
    ['0 1 5-2 * *', "day of month range '5-2' runs backwards"],
  ])('fails when the schedule is %s', (cron, problem) => {
    expect(cronProblem(cron)).toContain(problem);
  });

  test('recovery targets are written in UTC as PostgreSQL reads them', () => {
    expect(recoveryTargetTime('2024-05-01T12:00:00.5-03:00')).toBe('2024-05-01 15:00:00.500+00');
  });
});

test('every backup alert links a section of docs/backup-restore.md that exists', () => {
  const anchors = docAnchors('backup-restore.md');
  const rules = backupAlertRules(loadEnvironment('prod').postgres.backup);
  expect(rules.map((r) => r.alert)).toEqual([
    'PostgresFullBackupTooOld',
    'PostgresBackupTooOld',
    'PostgresWalArchivingFailing',
    'PostgresWalArchiveStale',
    'PostgresBackupRepositoryUnreachable',
  ]);
  for (const r of rules) {
    const anchor = /docs\/backup-restore\.md#([a-z0-9-]+)/.exec(r.annotations.description)?.[1];
    expect([r.alert, anchor && anchors.has(anchor)]).toEqual([r.alert, true]);
  }
  expect(backupAlertRules(loadEnvironment('dev').postgres.backup)).toEqual([]);
});

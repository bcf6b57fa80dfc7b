import * as core from '../core';

export const REPOSITORY_TYPES = ['s3', 'gcs', 'azure', 'posix'] as const;
export type RepositoryType = (typeof REPOSITORY_TYPES)[number];

/** Where pgBackRest keeps backups and archived WAL (its `repo1`). */
export interface BackupRepository {
  readonly type: RepositoryType;
  /** s3 and gcs: the bucket. */
  readonly bucket?: string;
  /** azure: the blob container. */
  readonly container?: string;
  /** The repository's path inside the bucket or container; posix: where the volume is mounted. @default '/pgbackrest/<namespace>' (posix: '/var/lib/pgbackrest') */
  readonly path?: string;
  /** s3: `host[:port]` of the S3 API. gcs, azure: `host[:port]` replacing the cloud's own. @default s3.<region>.amazonaws.com (s3), the cloud's endpoint (gcs, azure) */
  readonly endpoint?: string;
  /** s3: the bucket's region (required by S3's request signing). */
  readonly region?: string;
  /** s3: path-style URIs (`https://endpoint/bucket`), as most S3-compatible servers want. @default false */
  readonly pathStyle?: boolean;
  /**
   * posix: the ReadWriteMany volume the cluster claims for the repository (`<name>-backup-repository`;
   * its class must offer ReadWriteMany: NFS, Filestore, EFS): every member mounts it, whichever leads archives into it.
   */
  readonly volume?: core.StorageProps;
}

/** Repository encryption: pgBackRest's `repo1-cipher-type=aes-256-cbc`, passphrase from a Secret. */
export interface BackupEncryption {
  /** @default true when keySecret is named */
  readonly enabled?: boolean;
  /** Secret with key `passphrase` (the repository's cipher pass; losing it loses every backup). */
  readonly keySecret?: string;
}

export interface BackupSchedule {
  /** Full backups (5-field cron, the cluster's time zone: UTC unless set). */
  readonly full: string;
  /** Differential backups (changes since the last full). */
  readonly differential: string;
}

/** pgBackRest backups and WAL archiving for a PatroniCluster. */
export interface BackupProps {
  /** @default true when a repository is given */
  readonly enabled?: boolean;
  readonly repository?: BackupRepository;
  /**
   * Secret with the repository's credentials: s3 `access-key-id` + `secret-access-key`, azure
   * `account` + `key`, gcs `service-account.json` (without it, gcs uses the pod's Workload Identity).
   * Never in the config itself.
   */
  readonly credentialsSecret?: string;
  /** @default full Sunday 01:00, differential Monday to Saturday 01:00 */
  readonly schedule?: BackupSchedule;
  /** Full backups kept (with the differentials and WAL that depend on them). @default { full: 2 } */
  readonly retention?: { readonly full: number };
  /** archive_timeout: a WAL segment is archived at least this often while there are writes (the RPO without replicas). @default 60 */
  readonly archiveTimeoutSeconds?: number;
  /** @default off (on when a keySecret is named) */
  readonly encryption?: BackupEncryption;
  /** Image of the backup CronJobs' pods (kubectl: they exec pgBackRest on the leader), pinned. @default 'registry.k8s.io/kubectl:v1.28.15' */
  readonly jobImage?: string;
}

/** Building a new cluster from the repository (Patroni's bootstrap method). */
export interface RestoreProps {
  readonly fromBackup: {
    /**
     * Recover to this moment (ISO 8601 with a zone, e.g. '2024-05-01T12:00:00Z'), replaying WAL up to it;
     * omitted: to the end of the archived WAL.
     */
    readonly targetTime?: string;
  };
}

export const BACKUP_DEFAULTS = {
  schedule: { full: '0 1 * * 0', differential: '0 1 * * 1-6' },
  retention: { full: 2 },
  archiveTimeoutSeconds: 60,
  jobImage: 'registry.k8s.io/kubectl:v1.28.15',
} as const;

/** Keys of the credentials and encryption Secrets, by repository type. */
export const BACKUP_SECRET_KEYS = {
  s3: { key: 'access-key-id', secret: 'secret-access-key' },
  azure: { account: 'account', key: 'key' },
  gcs: { serviceAccount: 'service-account.json' },
  encryption: { passphrase: 'passphrase' },
} as const;

/** A backup setting that is wrong: its path under `backup` (or `restore`), and what to do. */
export interface BackupProblem {
  readonly path: readonly string[];
  readonly message: string;
}

const HOST_PORT = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?(:\d{1,5})?$/;
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$/;

/** Whether backups are on: `enabled`, else whether a repository is named. */
export function backupEnabled(b: BackupProps | undefined): boolean {
  return b?.enabled ?? b?.repository !== undefined;
}

/** Every problem of a backup config (empty when it is fine or off). */
export function backupProblems(b: BackupProps | undefined): BackupProblem[] {
  if (!b || !backupEnabled(b)) return [];
  const out: BackupProblem[] = [];
  const add = (path: string[], message: string) => out.push({ path, message });
  const r = b.repository;
  if (!r) {
    add(
      ['repository'],
      "is missing: name where backups go, e.g. repository: { type: 's3', bucket: 'my-backups', region: 'eu-west-1' } with credentialsSecret, or set enabled: false",
    );
  } else if (!(REPOSITORY_TYPES as readonly string[]).includes(r.type)) {
    add(['repository', 'type'], `must be one of ${REPOSITORY_TYPES.join(', ')}`);
  } else {
    const bucketName = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;
    if (r.type === 's3' || r.type === 'gcs') {
      if (!r.bucket)
        add(['repository', 'bucket'], `is required for a ${r.type} repository: name the bucket backups go to`);
      else if (!bucketName.test(r.bucket))
        add(['repository', 'bucket'], 'must be a bucket name: 3-63 lowercase letters, digits, dots, dashes');
    }
    if (r.type === 's3' && !r.region) {
      add(
        ['repository', 'region'],
        "is required for an s3 repository (request signing): e.g. 'eu-west-1', or 'us-east-1' for most S3-compatible servers",
      );
    }
    if (r.type === 'azure') {
      if (!r.container)
        add(['repository', 'container'], 'is required for an azure repository: name the blob container backups go to');
      else if (!/^[a-z0-9]([a-z0-9-]{1,61}[a-z0-9])$/.test(r.container))
        add(['repository', 'container'], 'must be a container name: 3-63 lowercase letters, digits and dashes');
    }
    if (r.type === 'posix') {
      if (!r.volume) {
        add(
          ['repository', 'volume'],
          "is required for a posix repository: e.g. { size: '200Gi', storageClass: 'nfs' } (a ReadWriteMany class every member mounts)",
        );
      } else {
        const sizeIssue = core.quantityProblem(r.volume.size);
        if (sizeIssue) add(['repository', 'volume', 'size'], sizeIssue);
        if (r.volume.storageClass !== undefined && !core.DNS1123_LABEL.test(r.volume.storageClass))
          add(['repository', 'volume', 'storageClass'], 'must be a StorageClass name (DNS-1123 label)');
      }
    }
    for (const [key, types] of [
      ['volume', ['posix']],
      ['bucket', ['s3', 'gcs']],
      ['container', ['azure']],
      ['region', ['s3']],
      ['pathStyle', ['s3']],
      ['endpoint', ['s3', 'gcs', 'azure']],
    ] as const) {
      if (r[key] !== undefined && !(types as readonly string[]).includes(r.type)) {
        add(['repository', key], `applies to ${types.join(', ')} repositories only; remove it (type is ${r.type})`);
      }
    }
    if (r.endpoint !== undefined && !HOST_PORT.test(r.endpoint))
      add(
        ['repository', 'endpoint'],
        "must be host or host:port, without a scheme (e.g. 's3.eu-west-1.amazonaws.com')",
      );
    if (r.path !== undefined && !/^\/[A-Za-z0-9._/-]*$/.test(r.path))
      add(['repository', 'path'], "must be an absolute path such as '/pgbackrest/prod'");
    const needsSecret = r.type === 's3' || r.type === 'azure';
    if (needsSecret && !b.credentialsSecret) {
      const keys = r.type === 's3' ? BACKUP_SECRET_KEYS.s3 : BACKUP_SECRET_KEYS.azure;
      add(
        ['credentialsSecret'],
        `is required for a ${r.type} repository: name a Secret with keys ${Object.values(keys).join(' and ')} (credentials never go in the config)`,
      );
    }
    if (r.type === 'posix' && b.credentialsSecret)
      add(['credentialsSecret'], 'has no use with a posix repository; remove it');
  }
  if (b.credentialsSecret !== undefined && !core.DNS1123_LABEL.test(b.credentialsSecret))
    add(['credentialsSecret'], 'must be a Secret name (DNS-1123 label)');
  const schedule = { ...BACKUP_DEFAULTS.schedule, ...b.schedule };
  for (const key of ['full', 'differential'] as const) {
    const problem = core.cronProblem(schedule[key]);
    if (problem)
      add(['schedule', key], `is not a 5-field cron schedule (${problem}); e.g. '0 1 * * 0' for Sundays at 01:00`);
  }
  const keep = b.retention?.full ?? BACKUP_DEFAULTS.retention.full;
  if (!Number.isInteger(keep) || keep < 1 || keep > 100) {
    add(
      ['retention', 'full'],
      'must be an integer from 1 to 100: with no full backup kept there is nothing to restore',
    );
  }
  const timeout = b.archiveTimeoutSeconds ?? BACKUP_DEFAULTS.archiveTimeoutSeconds;
  if (!Number.isInteger(timeout) || timeout < 10 || timeout > 3600) {
    add(
      ['archiveTimeoutSeconds'],
      'must be an integer from 10 to 3600: it bounds the data lost with the last WAL segment (default 60)',
    );
  }
  const enc = b.encryption;
  if (enc?.enabled === true && !enc.keySecret)
    add(
      ['encryption', 'keySecret'],
      `is required when encryption is enabled: name a Secret with key '${BACKUP_SECRET_KEYS.encryption.passphrase}'`,
    );
  if (enc?.keySecret !== undefined && !core.DNS1123_LABEL.test(enc.keySecret))
    add(['encryption', 'keySecret'], 'must be a Secret name (DNS-1123 label)');
  const image = b.jobImage ?? BACKUP_DEFAULTS.jobImage;
  const imageIssue = core.imageProblem(image);
  if (imageIssue) add(['jobImage'], imageIssue);
  return out;
}

/** Problems of a restore: it needs backups on, and a target time PostgreSQL can read. */
export function restoreProblems(restore: RestoreProps | undefined, backup: BackupProps | undefined): BackupProblem[] {
  if (!restore) return [];
  const out: BackupProblem[] = [];
  if (!backupEnabled(backup)) {
    out.push({
      path: ['fromBackup'],
      message: 'needs a backup repository to restore from: configure backup.repository (and leave backup enabled)',
    });
  }
  const t = restore.fromBackup?.targetTime;
  if (t !== undefined && (!ISO_WITH_ZONE.test(t) || Number.isNaN(Date.parse(t.replace(' ', 'T'))))) {
    out.push({
      path: ['fromBackup', 'targetTime'],
      message: "must be an ISO 8601 time with a zone, e.g. '2024-05-01T12:00:00Z'",
    });
  }
  return out;
}

/** The target time as PostgreSQL's recovery_target_time reads it, in UTC ('2024-05-01 12:00:00.123+00'). */
export function recoveryTargetTime(iso: string): string {
  const d = new Date(Date.parse(iso.replace(' ', 'T')));
  return `${d.toISOString().replace('T', ' ').replace('Z', '')}+00`;
}

/** Seconds between runs of a schedule at worst (the alerts' "too old" is 1.5x this). */
export function scheduleIntervalSeconds(cron: string): number {
  const s = core.cronMaxIntervalSeconds(cron);
  if (s === undefined) throw new Error(`schedule '${cron}' never runs`);
  return s;
}

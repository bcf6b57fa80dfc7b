/**
 * PostgreSQL 15 that survives losing its primary: one StatefulSet of `1 + replicas`
 * members, each running Patroni, which elects the leader through its Kubernetes DCS
 * (ConfigMaps `<name>-leader` / `<name>-config` in the namespace), labels the leader's pod
 * `<roleLabel>=master` (the primary Service selects it), promotes a synchronous replica when
 * the leader is lost, and rejoins a failed leader with pg_rewind.
 *
 * Keeps what the hand-made StatefulSets had: credentials generated once in-cluster, the
 * postgres_exporter sidecar, PDB, spread, a NetworkPolicy and Pod Security "restricted".
 * The ServiceAccount gets only a namespaced Role: ConfigMaps (the leader lock) and pods
 * (the role label). The image is images/postgres (postgres:15-bookworm + Debian's patroni).
 *
 * Server parameters live in Patroni's dynamic configuration: a changed one is applied by the
 * reconfigure Job (patroni-reconfigure.ts), by a reload where PostgreSQL allows it, else by a
 * rolling restart of the replicas and a switchover; the pod template does not change with them.
 */
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import * as core from '../core';
import { BackupJobs } from './backup-jobs';
import {
  BACKUP_DEFAULTS,
  BACKUP_SECRET_KEYS,
  backupEnabled,
  backupProblems,
  type BackupProps,
  recoveryTargetTime,
  restoreProblems,
  type RestoreProps,
} from './backup-settings';
import {
  backupScript,
  exporterQueries,
  GCS_KEY_DIR,
  GCS_KEY_FILE,
  PGBACKREST_ENV,
  PGBACKREST_FILES,
  renderPgBackRestConf,
  type ResolvedRepository,
  restoreScript,
} from './pgbackrest-files';
import {
  allowedCidrsProblem,
  PATRONI_CREDENTIAL_FILES,
  PATRONI_FILES,
  PATRONI_ROLES,
  PATRONI_START_ENV,
  patroniConfigFiles,
  patroniStartScript,
  patroniHba,
  postBootstrapScript,
  tlsReloadProbes,
  tlsReloadScript,
  checkPatroniTimings,
  patroniDynamicConfig,
  postgresTuning,
  SYNCHRONOUS_COMMIT,
  type PatroniFilesInput,
  type SynchronousCommit,
} from './patroni-files';
import { reconfigureJob, reconfigureScript } from './patroni-reconfigure';
import { migrationUserOf, rolesJob, rolesScript } from './roles-job';
import { livenessScript } from './patroni-liveness';
import {
  alternateLoginOf,
  credentialsProblems,
  resolveCredentials,
  type PostgresCredentialsSettings,
  type ResolvedPostgresCredentials,
} from './credentials-settings';
import { checkServerParameters } from './pg-settings';

export const POSTGRES_PORT = 5432;
export const PATRONI_API_PORT = 8008;
export const POSTGRES_EXPORTER_PORT = 9187;
/** uid/gid of the `postgres` user in the official image (and in images/postgres). */
export const POSTGRES_UID = 999;
/** Label Patroni sets to `master` / `replica` on each member's pod. */
export const POSTGRES_ROLE_LABEL = 'fastnext.io/postgres-role';
/** Label Patroni sets to the cluster name; part of the label selector it lists members by. */
export const PATRONI_SCOPE_LABEL = 'fastnext.io/patroni-cluster';
/** Service annotation: selector labels a controller sets on live pods (the policy checks skip them on templates). */
export const RUNTIME_LABELS_ANNOTATION = 'fastnext.io/runtime-labels';
/** Keys of the credentials Secret. */
export const POSTGRES_SECRET_KEYS = {
  password: 'password',
  replication: 'replication-password',
  superuser: 'superuser-password',
} as const;
export const SUPERUSER = 'postgres';
export const REPLICATION_USER = 'replicator';
export const REWIND_USER = 'rewinder';
/** The metrics exporter's role: pg_monitor, no superuser (post-bootstrap.sh creates it). */
export const EXPORTER_USER = 'postgres_exporter';
/** Key of the exporter's Secret (its own Secret: one generated before the role existed lacks the key). */
export const EXPORTER_SECRET_KEY = 'password';
/** Default pod networks allowed by pg_hba.conf: the RFC 1918 ranges every CNI allocates from. */
export const DEFAULT_POD_CIDRS: readonly string[] = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];

const CONFIG_DIR = '/etc/patroni';
/** The credentials Secret's superuser and replication passwords, as files (patroni-start.sh reads them). */
const CREDENTIALS_DIR = '/etc/patroni-credentials';
/** The exporter role's password (its own Secret), as a file: patroni-start.sh writes the exporter's passfile. */
const EXPORTER_CREDENTIALS_DIR = '/etc/patroni-exporter-credentials';
/** Where the TLS Secret is mounted in every member (and in clients that verify against its CA). */
export const POSTGRES_TLS_DIR = '/etc/postgres-tls';
const EXPORTER_CONFIG_DIR = '/etc/postgres-exporter';
const DATA_MOUNT = '/var/lib/postgresql/data';
const SOCKET_DIR = '/var/run/postgresql';
/** The exporter sidecar's passfile, in the socket directory both containers mount (written by patroni-start.sh). */
const EXPORTER_PASSFILE = `${SOCKET_DIR}/exporter.pgpass`;

/** Patroni's failover timings (Patroni's rule: loopWait + 2 x retryTimeout <= ttl). */
export interface PatroniTimings {
  /** Leader key TTL: a lost leader is replaced within about ttl + loopWait seconds. */
  readonly ttlSeconds: number;
  /** Seconds between Patroni's HA loops. */
  readonly loopWaitSeconds: number;
  /** Seconds Patroni retries the DCS and PostgreSQL before demoting. */
  readonly retryTimeoutSeconds: number;
  /** A replica further behind than this is never promoted. */
  readonly maximumLagOnFailoverBytes: number;
}

/** The settings of the PostgreSQL tier that have defaults (what an environment may override). */
export interface PostgresClusterSettings extends core.ContainerSettings, core.ExporterSettings, core.VolumeSettings {
  /** Members besides the leader, 0–5. @default 2 */
  readonly replicas?: number;
  /** Replicas that confirm every commit (Patroni's synchronous_mode); 0 = asynchronous. @default 0 */
  readonly synchronousReplicas?: number;
  /** @default 'on' */
  readonly synchronousCommit?: SynchronousCommit;
  /** @default 200 */
  readonly maxConnections?: number;
  /**
   * PostgreSQL server parameters of every member, over the tuning derived from resources and
   * storage (e.g. `{ log_min_duration_statement: 250 }`). A change is applied by a reload, or by a
   * rolling restart with a switchover for `postmaster` parameters (docs/postgres-runbook.md).
   * @default {}
   */
  readonly parameters?: Readonly<Record<string, string | number>>;
  /** @default 'fastnext' */
  readonly database?: string;
  /** Application role. @default 'fastnext' */
  readonly user?: string;
  /** Secret with `password`, `replication-password`, `superuser-password`; generated in-cluster when absent. @default 'postgres-credentials' */
  readonly credentialsSecret?: string;
  /** Secret with the exporter role's `password`; generated in-cluster when absent. @default 'postgres-exporter-credentials' */
  readonly exporterCredentialsSecret?: string;
  /**
   * Credentials from any Secret: its name, its key names, and whether the platform generates it
   * (`generate: false`: never, so an external controller is never raced). @default {} (the two Secrets above, generated)
   */
  readonly credentials?: PostgresCredentialsSettings;
  /** Failover timings. @default ttl 12 s, loop_wait 2 s, retry_timeout 5 s, 1 MiB maximum lag on failover */
  readonly patroni?: PatroniTimings;
  /**
   * Networks pg_hba.conf admits the members, poolers and jobs from: the cluster's pod CIDRs, IPv4 or
   * IPv6 (e.g. `['100.64.0.0/10', 'fd00:10::/56']`). The NetworkPolicy narrows further.
   * @default ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] (the RFC 1918 ranges)
   */
  readonly allowedCidrs?: readonly string[];
  /** TLS on every TCP connection (pg_hba `hostssl`, replication, clients with verify-full). @default { enabled: true } (generated) */
  readonly tls?: PostgresTlsSettings;
}

/** Where the server certificate comes from. */
export interface PostgresTlsSettings {
  /** @default true */
  readonly enabled?: boolean;
  /**
   * A Secret with cert-manager's keys (`tls.crt`, `tls.key`, `ca.crt`), e.g. a Certificate's
   * `secretName`. @default - `<name>-tls`, generated in-cluster once (a self-signed CA)
   */
  readonly secretName?: string;
  /** Generate the Secret in-cluster when absent. @default - true without `secretName`, false with it */
  readonly generate?: boolean;
}

/** What a client needs to verify the servers (verify-full): the Secret holding the CA, and its key. */
export interface PostgresTls {
  readonly secretName: string;
  readonly caKey: string;
  /** Whether the Secret is generated in-cluster. */
  readonly generated: boolean;
}

/** Defaults of every PostgreSQL setting: 3 members, asynchronous, production values. */
export const POSTGRES_CLUSTER_DEFAULTS: Required<PostgresClusterSettings> = {
  // PostgreSQL 15, Patroni and pgBackRest (images/postgres).
  image: 'ghcr.io/fastnext/postgres:15-3.0.2-1-pgbackrest2.45',
  exporterImage: 'quay.io/prometheuscommunity/postgres-exporter:v0.15.0',
  replicas: 2,
  synchronousReplicas: 0,
  synchronousCommit: 'on',
  maxConnections: 200,
  parameters: {},
  database: 'fastnext',
  user: 'fastnext',
  credentialsSecret: 'postgres-credentials',
  exporterCredentialsSecret: 'postgres-exporter-credentials',
  credentials: {},
  storage: { size: '20Gi' },
  resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } },
  exporterResources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
  // Measured on loopback: first write 12-14 s after SIGKILL of the leader (bench/results.md).
  patroni: { ttlSeconds: 12, loopWaitSeconds: 2, retryTimeoutSeconds: 5, maximumLagOnFailoverBytes: 1048576 },
  allowedCidrs: DEFAULT_POD_CIDRS,
  tls: { enabled: true },
};

export interface PatroniClusterProps extends PostgresClusterSettings, core.WorkloadProps, core.ScrapedProps {
  /** Pods that may connect to PostgreSQL (the poolers, session-level jobs). */
  readonly clients: readonly k8s.NetworkPolicyPeer[];
  /** The application role's default statement_timeout (its clients' setting does not pass PgBouncer). @default 15000 */
  readonly statementTimeoutMs?: number;
  /** More names of the generated certificate: the poolers' Services, which present it too. @default [] */
  readonly tlsDnsNames?: readonly string[];
  /** StatefulSet name, Patroni's scope and the component label. Renaming it replaces the data. @default 'postgres' */
  readonly name?: string;
  /** WAL archiving and scheduled backups with pgBackRest. @default - none */
  readonly backup?: BackupProps;
  /**
   * Build the cluster from the repository (Patroni's bootstrap method) rather than initdb: only
   * when Patroni bootstraps (new volumes, no cluster in the DCS), never over existing data. @default - initdb
   */
  readonly restore?: RestoreProps;
}

/** What the cluster's backups resolved to (undefined fields: off). */
export interface ClusterBackup {
  readonly repository: ResolvedRepository;
  readonly stanza: string;
  readonly archiveTimeoutSeconds: number;
  readonly schedule: { readonly full: string; readonly differential: string };
  readonly retentionFull: number;
  readonly encrypted: boolean;
  /** The backup CronJobs. */
  readonly jobs: BackupJobs;
}

/**
 * Connections Patroni (1), the exporter (1), a rejoin's pg_rewind/basebackup (1) and
 * `superuser_reserved_connections` (3) hold on each member. Streaming replication uses
 * WAL senders, which PostgreSQL 15 counts apart from max_connections. The roles Job's one
 * session (the superuser, once per deploy that changes it) is one of those 3 reserved.
 */
export const RESERVED_CONNECTIONS_PER_MEMBER = 6;

export class PatroniCluster extends Construct implements core.ServiceEndpoint {
  static readonly COMPONENT = 'postgres';
  readonly component: string;
  readonly name: string;
  /** The endpoint session-level clients use: the primary Service (same as primaryHost). */
  readonly host: string;
  /** The primary Service: selects the pod Patroni labels leader. Session-level work connects here. */
  readonly primaryHost: string;
  /** The read-only Service over the replicas (the leader when there are none). */
  readonly readOnlyHost: string;
  /** Per-member DNS names (headless Service); any may be leader, clients check pg_is_in_recovery(). */
  readonly memberHosts: readonly string[];
  /** The same names as read endpoints (ApiDatabase): a client reads from those in recovery. */
  readonly replicaHosts: readonly string[];
  readonly port = POSTGRES_PORT;
  readonly patroniApiPort = PATRONI_API_PORT;
  readonly exporterPort = POSTGRES_EXPORTER_PORT;
  readonly database: string;
  /** The runtime role (the API through PgBouncer): rows only, no DDL. */
  readonly user: string;
  /**
   * The migration role: owns the schema, runs DDL (migrations, partition maintenance), straight to the
   * primary. `runsAfter` is the roles Job (`Job/<name>`) that creates it on a running cluster: run the
   * migrations after it.
   */
  readonly migration: {
    readonly user: string;
    readonly credentialsSecret: string;
    readonly passwordKey: string;
    readonly runsAfter: string;
  };
  /** Secret with the app, replication and superuser passwords (`credentials.secretName`). */
  readonly credentialsSecret: string;
  /** Every credential's Secret and key (what each secretKeyRef names). */
  readonly credentials: ResolvedPostgresCredentials;
  /**
   * The application's second login (`credentials.alternateLogin`): its name, the key of its password and the
   * key naming the login in use, in `credentialsSecret`. undefined: one login.
   */
  readonly alternateLogin?: { readonly user: string; readonly passwordKey: string; readonly activeLoginKey: string };
  readonly members: number;
  /** Connections Patroni, the exporter and superuser_reserved_connections hold on each member. */
  readonly reservedConnections: number;
  readonly maxConnections: number;
  readonly configMapName: string;
  /** Pods clients connect to (for their egress NetworkPolicies). */
  readonly peers: k8s.NetworkPolicyPeer[];
  /** Rendered files of the ConfigMap (what the launcher runs). */
  readonly files: Record<string, string>;
  /** The reconfigure Job's name: `<name>-reconfigure-<hash of the desired dynamic configuration and script>`. */
  readonly reconfigureJobName: string;
  /** pgBackRest backups; undefined when off. */
  readonly backup?: ClusterBackup;
  /** TLS: the Secret clients verify the servers with; undefined when off. */
  readonly tls?: PostgresTls;

  constructor(scope: Construct, id: string, props: PatroniClusterProps) {
    super(scope, id);
    const p = core.withDefaults(POSTGRES_CLUSTER_DEFAULTS, props);
    checkPostgresSettings(p);
    // An ingress rule with an empty 'from' would admit every pod in the cluster.
    core.checkNotEmpty('clients', props.clients, 'name the pods allowed to connect to PostgreSQL (e.g. the pooler)');
    const name = core.workloadName(props.name, PatroniCluster.COMPONENT);
    const c = name;
    const namespace = core.namespaceOf(this);
    checkBackup(props.backup, props.restore);
    const b = props.backup;
    const backupOn = backupEnabled(b);
    const repository: ResolvedRepository | undefined =
      backupOn && b?.repository
        ? {
            ...b.repository,
            path:
              b.repository.path ?? (b.repository.type === 'posix' ? '/var/lib/pgbackrest' : `/pgbackrest/${namespace}`),
            gcsKeyFile: b.repository.type === 'gcs' && b.credentialsSecret ? GCS_KEY_FILE : undefined,
          }
        : undefined;
    const encrypted = Boolean(b?.encryption?.enabled ?? b?.encryption?.keySecret);
    const archiveTimeoutSeconds = b?.archiveTimeoutSeconds ?? BACKUP_DEFAULTS.archiveTimeoutSeconds;
    this.component = c;
    this.name = name;
    this.database = p.database;
    this.user = p.user;
    const migrationUser = migrationUserOf(p.user);
    this.credentials = resolveCredentials(p.credentials, p.credentialsSecret, p.exporterCredentialsSecret);
    this.credentialsSecret = this.credentials.secretName;
    if (this.credentials.alternateLogin) {
      this.alternateLogin = {
        user: alternateLoginOf(p.user),
        passwordKey: this.credentials.keys.alternatePassword,
        activeLoginKey: this.credentials.keys.activeLogin,
      };
    }
    this.members = 1 + p.replicas;
    this.maxConnections = p.maxConnections;
    this.reservedConnections = RESERVED_CONNECTIONS_PER_MEMBER;
    this.primaryHost = core.serviceHost(this, `${name}-primary`);
    this.host = this.primaryHost;
    this.readOnlyHost = p.replicas > 0 ? core.serviceHost(this, `${name}-readonly`) : this.primaryHost;
    this.memberHosts = Array.from({ length: this.members }, (_, i) =>
      core.serviceHost(this, `${name}-${i}.${name}-headless`),
    );
    this.replicaHosts = this.memberHosts;
    this.configMapName = `${name}-files`;
    this.peers = [core.podsOf(c)];
    const tlsOn = p.tls.enabled !== false;
    if (tlsOn) {
      this.tls = {
        secretName: p.tls.secretName ?? `${name}-tls`,
        caKey: core.TLS_SECRET_KEYS.ca,
        generated: p.tls.generate ?? p.tls.secretName === undefined,
      };
    }
    const tlsFile = (key: string) => `${POSTGRES_TLS_DIR}/${key}`;
    const ttl = p.patroni.ttlSeconds;
    const loopWait = p.patroni.loopWaitSeconds;
    const retryTimeout = p.patroni.retryTimeoutSeconds;
    const sync = p.synchronousReplicas;
    const maxConnections = p.maxConnections;

    const memberLabels = { ...core.selectorLabels(c), [PATRONI_SCOPE_LABEL]: name };
    const filesInput: PatroniFilesInput = {
      scope: name,
      namespace,
      podLabels: core.selectorLabels(c),
      scopeLabel: PATRONI_SCOPE_LABEL,
      roleLabel: POSTGRES_ROLE_LABEL,
      port: POSTGRES_PORT,
      restApiPort: PATRONI_API_PORT,
      dataDir: `${DATA_MOUNT}/pgdata`,
      socketDir: SOCKET_DIR,
      configDir: CONFIG_DIR,
      pgpassFile: '/tmp/pgpass',
      ttlSeconds: ttl,
      loopWaitSeconds: loopWait,
      retryTimeoutSeconds: retryTimeout,
      maximumLagOnFailoverBytes: p.patroni.maximumLagOnFailoverBytes,
      synchronousReplicas: sync,
      synchronousCommit: p.synchronousCommit,
      maxConnections,
      tuning: {
        ...postgresTuning({
          memoryBytes: core.parseQuantity(p.resources.requests.memory),
          storageBytes: core.parseQuantity(p.storage.size),
          maxConnections,
        }),
        ...p.parameters,
      },
      hba: patroniHba({
        database: this.database,
        // Both application logins (alternateLogin): pg_hba matches a login's own name, not its roles'.
        user: this.credentials.alternateLogin ? `${this.user},${alternateLoginOf(this.user)}` : this.user,
        migrationUser,
        superuser: SUPERUSER,
        replicationUser: REPLICATION_USER,
        rewindUser: REWIND_USER,
        allowedCidrs: p.allowedCidrs,
        ssl: tlsOn,
      }),
      tls: tlsOn
        ? {
            certFile: tlsFile(core.TLS_SECRET_KEYS.cert),
            keyFile: tlsFile(core.TLS_SECRET_KEYS.key),
            caFile: tlsFile(core.TLS_SECRET_KEYS.ca),
          }
        : undefined,
      superuser: SUPERUSER,
      replicationUser: REPLICATION_USER,
      rewindUser: REWIND_USER,
      backup: repository
        ? {
            archiveTimeoutSeconds,
            restore: props.restore
              ? {
                  targetTime: props.restore.fromBackup.targetTime
                    ? recoveryTargetTime(props.restore.fromBackup.targetTime)
                    : undefined,
                }
              : undefined,
          }
        : undefined,
    };
    const script = reconfigureScript();
    const roles = rolesScript({
      statementTimeoutMs: props.statementTimeoutMs ?? 15000,
      exporterUser: EXPORTER_USER,
      alternateLogin: this.credentials.alternateLogin,
    });
    this.files = {
      ...patroniConfigFiles(
        filesInput,
        postBootstrapScript({ exporterUser: EXPORTER_USER, backup: repository !== undefined }),
      ),
      [PATRONI_FILES.roles]: roles,
      [PATRONI_FILES.reconfigure]: script,
      [PATRONI_FILES.liveness]: livenessScript(),
      [PATRONI_FILES.start]: patroniStartScript(EXPORTER_USER),
      ...(tlsOn ? { [PATRONI_FILES.tlsReload]: tlsReloadScript() } : {}),
    };
    if (repository) {
      Object.assign(this.files, {
        [PGBACKREST_FILES.conf]: renderPgBackRestConf({
          repository,
          retentionFull: b?.retention?.full ?? BACKUP_DEFAULTS.retention.full,
          encrypted,
          stanza: name,
          dataDir: `${DATA_MOUNT}/pgdata`,
          port: POSTGRES_PORT,
          socketDir: SOCKET_DIR,
          superuser: SUPERUSER,
          lockPath: '/tmp/pgbackrest',
        }),
        [PGBACKREST_FILES.backup]: backupScript(),
        [PGBACKREST_FILES.exporterQueries]: exporterQueries(),
        ...(props.restore
          ? {
              [PGBACKREST_FILES.restore]: restoreScript(
                props.restore.fromBackup.targetTime
                  ? recoveryTargetTime(props.restore.fromBackup.targetTime)
                  : undefined,
              ),
            }
          : {}),
      });
    }

    const creds = this.credentials;
    // generate: false: no generator objects at all, so an external controller is never raced.
    if (creds.generate) {
      new core.GeneratedSecret(this, 'credentials', {
        dnsResolvers: props.dnsResolvers,
        secretName: creds.secretName,
        keys: [
          creds.keys.password,
          creds.keys.replicationPassword,
          creds.keys.superuserPassword,
          // No `activeLogin` key: absent means `<user>`, the rotation writes it.
          ...(creds.alternateLogin ? [creds.keys.alternatePassword] : []),
        ],
        pod: props.pod,
        imagePullSecrets: props.imagePullSecrets,
      });
    }
    if (this.tls?.generated) {
      new core.GeneratedSecret(this, 'tls', {
        dnsResolvers: props.dnsResolvers,
        secretName: this.tls.secretName,
        keys: Object.values(core.TLS_SECRET_KEYS),
        tls: {
          // Every name a client reaches a member by, the poolers' Services, and loopback (the exporters).
          dnsNames: [
            this.primaryHost,
            core.serviceHost(this, `${name}-readonly`),
            ...this.memberHosts,
            ...(props.tlsDnsNames ?? []),
            'localhost',
          ],
          ipAddresses: ['127.0.0.1'],
          image: p.image,
          uid: POSTGRES_UID,
        },
        pod: props.pod,
        imagePullSecrets: props.imagePullSecrets,
      });
    }
    // The exporter's and the migration role's passwords each in a Secret of its own: a credentials
    // Secret generated before the role existed lacks the key, and is never regenerated.
    const ownSecrets = [
      { id: 'exporter-credentials', secretName: creds.exporterSecretName, key: creds.keys.exporterPassword },
      { id: 'migration-credentials', secretName: creds.migrationSecretName, key: creds.keys.migrationPassword },
    ];
    for (const own of creds.generate ? ownSecrets : []) {
      new core.GeneratedSecret(this, own.id, {
        dnsResolvers: props.dnsResolvers,
        secretName: own.secretName,
        keys: [own.key],
        pod: props.pod,
        imagePullSecrets: props.imagePullSecrets,
      });
    }
    new k8s.KubeConfigMap(this, 'config', { metadata: core.meta(this, c, this.configMapName), data: this.files });

    // Patroni's Kubernetes DCS: the leader lock and cluster config live in ConfigMaps, the role in a pod label.
    new k8s.KubeServiceAccount(this, 'service-account', {
      metadata: core.meta(this, c, c, { annotations: props.pod?.serviceAccountAnnotations }),
      automountServiceAccountToken: false,
    });
    new k8s.KubeRole(this, 'role', {
      metadata: core.meta(this, c, c),
      rules: [
        {
          apiGroups: [''],
          resources: ['configmaps'],
          verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
        },
        { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'update', 'patch'] },
      ],
    });
    new k8s.KubeRoleBinding(this, 'role-binding', {
      metadata: core.meta(this, c, c),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: c },
      subjects: [{ kind: 'ServiceAccount', name: c, namespace }],
    });

    const port = { name: 'postgres', port: POSTGRES_PORT, targetPort: k8s.IntOrString.fromString('postgres') };
    const service = (sid: string, svcName: string, selector: Record<string, string>, headless = false) =>
      new k8s.KubeService(this, sid, {
        metadata: core.meta(this, c, svcName, {
          ...(selector[POSTGRES_ROLE_LABEL]
            ? { annotations: { [RUNTIME_LABELS_ANNOTATION]: POSTGRES_ROLE_LABEL } }
            : {}),
        }),
        spec: {
          ...(headless
            ? // The StatefulSet's governing Service: per-member DNS names even before readiness.
              { clusterIp: 'None', publishNotReadyAddresses: true }
            : { type: 'ClusterIP' }),
          selector,
          ports: [port],
        },
      });
    service('primary-service', `${name}-primary`, { ...memberLabels, [POSTGRES_ROLE_LABEL]: PATRONI_ROLES.leader });
    service('readonly-service', `${name}-readonly`, { ...memberLabels, [POSTGRES_ROLE_LABEL]: PATRONI_ROLES.replica });
    service('headless-service', `${name}-headless`, memberLabels, true);
    // Patroni's /metrics on the REST port: the pods' scrape annotations already name the exporter,
    // so Prometheus finds this port through the Service (its endpoints job).
    new k8s.KubeService(this, 'patroni-metrics-service', {
      metadata: core.meta(this, c, `${name}-patroni`, { annotations: core.scrapeAnnotations(PATRONI_API_PORT) }),
      spec: {
        clusterIp: 'None',
        publishNotReadyAddresses: true,
        selector: memberLabels,
        ports: [{ name: 'patroni', port: PATRONI_API_PORT, targetPort: k8s.IntOrString.fromString('patroni') }],
      },
    });

    // secretKeyRef (never optional): until the Secret and key exist the kubelet holds the container
    // in CreateContainerConfigError and retries, so a pod started before an external Secret waits.
    const secretEnv = (envName: string, key: string): k8s.EnvVar => ({
      name: envName,
      valueFrom: { secretKeyRef: { name: creds.secretName, key } },
    });
    const exporterPassword = (envName: string): k8s.EnvVar => ({
      name: envName,
      valueFrom: { secretKeyRef: { name: creds.exporterSecretName, key: creds.keys.exporterPassword } },
    });
    // The inputs of roles.sh, in post-bootstrap's env (the members) and the roles Job's alike.
    const rolesEnv: k8s.EnvVar[] = [
      { name: 'POSTGRES_USER', value: this.user },
      { name: 'POSTGRES_DB', value: this.database },
      secretEnv('POSTGRES_PASSWORD', creds.keys.password),
      { name: 'POSTGRES_MIGRATION_USER', value: migrationUser },
      {
        name: 'POSTGRES_MIGRATION_PASSWORD',
        valueFrom: { secretKeyRef: { name: creds.migrationSecretName, key: creds.keys.migrationPassword } },
      },
      exporterPassword('POSTGRES_EXPORTER_PASSWORD'),
    ];
    const field = (envName: string, fieldPath: string): k8s.EnvVar => ({
      name: envName,
      valueFrom: { fieldRef: { fieldPath } },
    });
    const patroniProbe = (path: string, t: Partial<k8s.Probe>): k8s.Probe => ({
      httpGet: { path, port: k8s.IntOrString.fromString('patroni') },
      timeoutSeconds: 5,
      ...t,
    });
    // pgBackRest: its config and stanza for every command (archiver, Patroni, kubectl exec), credentials from Secrets.
    const backupSecretEnv = (envName: string, secret: string, key: string): k8s.EnvVar => ({
      name: envName,
      valueFrom: { secretKeyRef: { name: secret, key } },
    });
    const backupCreds = b?.credentialsSecret;
    const backupEnv: k8s.EnvVar[] = repository
      ? [
          { name: PGBACKREST_ENV.config, value: `${CONFIG_DIR}/${PGBACKREST_FILES.conf}` },
          { name: PGBACKREST_ENV.stanza, value: name },
          ...(repository.type === 's3' && backupCreds
            ? [
                backupSecretEnv(PGBACKREST_ENV.s3Key, backupCreds, BACKUP_SECRET_KEYS.s3.key),
                backupSecretEnv(PGBACKREST_ENV.s3KeySecret, backupCreds, BACKUP_SECRET_KEYS.s3.secret),
              ]
            : []),
          ...(repository.type === 'azure' && backupCreds
            ? [
                backupSecretEnv(PGBACKREST_ENV.azureAccount, backupCreds, BACKUP_SECRET_KEYS.azure.account),
                backupSecretEnv(PGBACKREST_ENV.azureKey, backupCreds, BACKUP_SECRET_KEYS.azure.key),
              ]
            : []),
          ...(encrypted && b?.encryption?.keySecret
            ? [
                backupSecretEnv(
                  PGBACKREST_ENV.cipherPass,
                  b.encryption.keySecret,
                  BACKUP_SECRET_KEYS.encryption.passphrase,
                ),
              ]
            : []),
        ]
      : [];
    const repositoryClaim = `${name}-backup-repository`;
    const backupVolumes: k8s.Volume[] = [];
    const backupMounts: k8s.VolumeMount[] = [];
    if (repository?.type === 'posix') {
      backupVolumes.push({ name: 'backup-repository', persistentVolumeClaim: { claimName: repositoryClaim } });
      backupMounts.push({ name: 'backup-repository', mountPath: repository.path });
    }
    if (repository?.gcsKeyFile && backupCreds) {
      backupVolumes.push({
        name: 'backup-credentials',
        secret: {
          secretName: backupCreds,
          items: [{ key: BACKUP_SECRET_KEYS.gcs.serviceAccount, path: BACKUP_SECRET_KEYS.gcs.serviceAccount }],
          defaultMode: 0o400,
        },
      });
      backupMounts.push({ name: 'backup-credentials', mountPath: GCS_KEY_DIR, readOnly: true });
    }
    const externalSecrets = [
      // generate: false: the credentials come from outside (External Secrets, Sealed Secrets, SOPS...).
      ...(creds.generate ? [] : [creds.secretName, creds.exporterSecretName, creds.migrationSecretName]),
      ...(backupCreds && repository ? [backupCreds] : []),
      ...(encrypted && b?.encryption?.keySecret ? [b.encryption.keySecret] : []),
    ];
    const tlsMount = { name: 'tls', mountPath: POSTGRES_TLS_DIR, readOnly: true };
    // A renewed certificate is picked up by a reload (tls-reload.sh), not a restart.
    const tlsReloadInterval = 30;
    const tlsProbes = tlsReloadProbes(`${SOCKET_DIR}/tls-reload.alive`, tlsReloadInterval);
    const tlsReload: k8s.Container[] = tlsOn
      ? [
          {
            name: 'tls-reload',
            image: p.image,
            command: ['sh', `${CONFIG_DIR}/${PATRONI_FILES.tlsReload}`],
            env: [
              { name: 'TLS_DIR', value: POSTGRES_TLS_DIR },
              { name: 'PGHOST', value: SOCKET_DIR },
              { name: 'PGPORT', value: String(POSTGRES_PORT) },
              { name: 'PGUSER', value: SUPERUSER },
              { name: 'TLS_RELOAD_INTERVAL_SECONDS', value: String(tlsReloadInterval) },
              { name: 'TLS_RELOAD_HEARTBEAT', value: `${SOCKET_DIR}/tls-reload.alive` },
            ],
            resources: core.resourcesOf({
              requests: { cpu: '5m', memory: '8Mi' },
              limits: { cpu: '50m', memory: '32Mi' },
            }),
            securityContext: core.containerSecurityContext(),
            // The loop's heartbeat: ready once it turns, live while it keeps turning.
            readinessProbe: { exec: { command: tlsProbes.readiness }, periodSeconds: 10, timeoutSeconds: 2 },
            livenessProbe: {
              exec: { command: tlsProbes.liveness },
              periodSeconds: 30,
              timeoutSeconds: 2,
              failureThreshold: 3,
            },
            volumeMounts: [
              tlsMount,
              { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
              { name: 'run', mountPath: SOCKET_DIR },
            ],
          },
        ]
      : [];
    const exporter: k8s.Container = {
      name: 'exporter',
      image: p.exporterImage,
      ports: [{ name: 'metrics', containerPort: POSTGRES_EXPORTER_PORT }],
      env: [
        {
          // Its own role with pg_monitor (post-bootstrap.sh), over loopback: never the superuser.
          // Loopback: the certificate names 127.0.0.1, so the exporter verifies it like any client.
          // No password in the DSN: the driver then reads PGPASSFILE for each new connection.
          name: 'DATA_SOURCE_NAME',
          value: tlsOn
            ? `postgresql://${EXPORTER_USER}@127.0.0.1:${POSTGRES_PORT}/postgres?sslmode=verify-full&sslrootcert=${tlsFile(core.TLS_SECRET_KEYS.ca)}`
            : `postgresql://${EXPORTER_USER}@127.0.0.1:${POSTGRES_PORT}/postgres?sslmode=disable`,
        },
        // Written (0600, this uid) by the patroni container's entry point from the exporter's Secret, and
        // rewritten when it changes: a rotated password is used at the next connection, no restart.
        { name: 'PGPASSFILE', value: EXPORTER_PASSFILE },
        ...(repository
          ? [
              {
                name: 'PG_EXPORTER_EXTEND_QUERY_PATH',
                value: `${EXPORTER_CONFIG_DIR}/${PGBACKREST_FILES.exporterQueries}`,
              },
            ]
          : []),
      ],
      volumeMounts: [
        { name: 'run', mountPath: SOCKET_DIR, readOnly: true },
        ...(repository ? [{ name: 'exporter-config', mountPath: EXPORTER_CONFIG_DIR, readOnly: true }] : []),
        ...(tlsOn ? [tlsMount] : []),
      ],
      resources: core.resourcesOf(p.exporterResources),
      securityContext: core.containerSecurityContext(),
      readinessProbe: { httpGet: { path: '/', port: k8s.IntOrString.fromString('metrics') }, periodSeconds: 10 },
      livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('metrics') }, periodSeconds: 20 },
    };

    new k8s.KubeStatefulSet(this, 'members', {
      metadata: core.meta(this, c, name, {
        annotations: core.externalSecretsAnnotations(props.pod, props.imagePullSecrets, externalSecrets),
      }),
      spec: core.statefulSetSpec(c, {
        replicas: this.members,
        serviceName: `${name}-headless`,
        // Patroni orders the members itself (initialize key, leader race): no need to wait pod by pod.
        podManagementPolicy: 'Parallel',
        selector: { matchLabels: memberLabels },
        template: core.podTemplate(
          this,
          c,
          'patroni',
          props,
          { annotations: core.scrapeAnnotations(POSTGRES_EXPORTER_PORT), labels: { ...memberLabels } },
          {
            serviceAccountName: c,
            // Patroni talks to the API server (its DCS): the one pod of the topology that needs a token.
            automountServiceAccountToken: true,
            securityContext: core.podSecurityContext(POSTGRES_UID),
            // Patroni's fast shutdown hands leadership over first; a checkpoint on a busy leader can take longer.
            terminationGracePeriodSeconds: 120,
            topologySpreadConstraints: core.topologySpread(c),
            containers: [
              {
                name: 'patroni',
                image: p.image,
                // The entry point writes the passwords from the credentials volume into Patroni's config
                // directory and reloads Patroni when they change: a rotation needs no restart.
                command: ['sh', `${CONFIG_DIR}/${PATRONI_FILES.start}`],
                ports: [
                  { name: 'postgres', containerPort: POSTGRES_PORT },
                  { name: 'patroni', containerPort: PATRONI_API_PORT },
                ],
                env: [
                  field('PATRONI_NAME', 'metadata.name'),
                  field('PATRONI_KUBERNETES_POD_IP', 'status.podIP'),
                  {
                    name: 'PATRONI_POSTGRESQL_CONNECT_ADDRESS',
                    value: `$(PATRONI_KUBERNETES_POD_IP):${POSTGRES_PORT}`,
                  },
                  {
                    name: 'PATRONI_RESTAPI_CONNECT_ADDRESS',
                    value: `$(PATRONI_KUBERNETES_POD_IP):${PATRONI_API_PORT}`,
                  },
                  // Passwords as files, never PATRONI_* env (env overrides the config files on every
                  // reload). The rewind role shares the replication password: a new Secret key would be
                  // missing from Secrets generated before it (they are never regenerated).
                  { name: PATRONI_START_ENV.config, value: `${CONFIG_DIR}/${PATRONI_FILES.patroni}` },
                  {
                    name: PATRONI_START_ENV.superuserPassword,
                    value: `${CREDENTIALS_DIR}/${PATRONI_CREDENTIAL_FILES.superuserPassword}`,
                  },
                  {
                    name: PATRONI_START_ENV.replicationPassword,
                    value: `${CREDENTIALS_DIR}/${PATRONI_CREDENTIAL_FILES.replicationPassword}`,
                  },
                  { name: PATRONI_START_ENV.runtimeDir, value: '/tmp/patroni-config' },
                  {
                    name: PATRONI_START_ENV.exporterPassword,
                    value: `${EXPORTER_CREDENTIALS_DIR}/${PATRONI_CREDENTIAL_FILES.exporterPassword}`,
                  },
                  { name: PATRONI_START_ENV.exporterPassfile, value: EXPORTER_PASSFILE },
                  // Inputs of post-bootstrap.sh.
                  ...rolesEnv,
                  { name: 'TMPDIR', value: '/tmp' },
                  ...backupEnv,
                ],
                resources: core.resourcesOf(p.resources),
                securityContext: core.containerSecurityContext(),
                // initdb, or a base backup of a large database, before the first answer.
                startupProbe: patroniProbe('/liveness', { periodSeconds: 10, failureThreshold: 360 }),
                // Ready = PostgreSQL running under Patroni; the Services' role selectors do the rest.
                readinessProbe: patroniProbe('/readiness', { periodSeconds: 2, failureThreshold: 2 }),
                // Patroni's own heartbeat (its HA loop ran within ttl), not PostgreSQL's; and a replica
                // left on an older timeline than the leader's (diverged) fails it: the restart rewinds it.
                livenessProbe: {
                  exec: {
                    command: [
                      'python3',
                      `${CONFIG_DIR}/${PATRONI_FILES.liveness}`,
                      `http://127.0.0.1:${PATRONI_API_PORT}`,
                    ],
                  },
                  timeoutSeconds: 10,
                  periodSeconds: 10,
                  failureThreshold: 6,
                },
                volumeMounts: [
                  { name: 'data', mountPath: DATA_MOUNT },
                  { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
                  { name: 'credentials', mountPath: CREDENTIALS_DIR, readOnly: true },
                  { name: 'exporter-credentials', mountPath: EXPORTER_CREDENTIALS_DIR, readOnly: true },
                  { name: 'run', mountPath: SOCKET_DIR },
                  { name: 'tmp', mountPath: '/tmp' },
                  { name: 'shm', mountPath: '/dev/shm' },
                  ...backupMounts,
                  ...(tlsOn ? [tlsMount] : []),
                ],
              },
              exporter,
              ...tlsReload,
            ],
            volumes: [
              { name: 'config', configMap: { name: this.configMapName, defaultMode: 0o444 } },
              {
                name: 'credentials',
                // Owned by root, group fsGroup. The kubelet updates the files in place when the Secret
                // changes; patroni-start.sh reloads Patroni. A pod waits for the Secret to exist.
                secret: {
                  secretName: creds.secretName,
                  items: [
                    { key: creds.keys.superuserPassword, path: PATRONI_CREDENTIAL_FILES.superuserPassword },
                    { key: creds.keys.replicationPassword, path: PATRONI_CREDENTIAL_FILES.replicationPassword },
                  ],
                  defaultMode: 0o440,
                },
              },
              {
                name: 'exporter-credentials',
                secret: {
                  secretName: creds.exporterSecretName,
                  items: [{ key: creds.keys.exporterPassword, path: PATRONI_CREDENTIAL_FILES.exporterPassword }],
                  defaultMode: 0o440,
                },
              },
              ...(repository
                ? [
                    {
                      name: 'exporter-config',
                      configMap: {
                        name: this.configMapName,
                        items: [{ key: PGBACKREST_FILES.exporterQueries, path: PGBACKREST_FILES.exporterQueries }],
                        defaultMode: 0o444,
                      },
                    },
                  ]
                : []),
              ...backupVolumes,
              ...(this.tls
                ? [
                    {
                      name: 'tls',
                      // Owned by root, group fsGroup: PostgreSQL accepts a root-owned key up to 0640.
                      secret: { secretName: this.tls.secretName, defaultMode: 0o440 },
                    },
                  ]
                : []),
              core.emptyDir('run', '16Mi'),
              core.emptyDir('tmp', '256Mi'),
              core.emptyDir('shm', '256Mi', 'Memory'),
            ],
          },
        ),
        volumeClaimTemplates: [core.dataVolumeClaim(c, p.storage)],
      }),
    });

    // The Jobs that work on the running members, with scripts from the ConfigMap.
    const memberJobs = {
      component: c,
      statefulSet: name,
      image: p.image,
      uid: POSTGRES_UID,
      configMap: this.configMapName,
      configDir: CONFIG_DIR,
      pod: props.pod,
      imagePullSecrets: props.imagePullSecrets,
      dnsResolvers: props.dnsResolvers,
    };
    const reconfigure = reconfigureJob(this, {
      ...memberJobs,
      memberUrls: this.memberHosts.map((h) => `http://${h}:${PATRONI_API_PORT}`),
      restApiPort: PATRONI_API_PORT,
      desired: patroniDynamicConfig(filesInput),
      script,
    });
    this.reconfigureJobName = reconfigure.name;
    // A cluster initialised before a role existed gets it here (post_bootstrap ran long ago).
    const rolesRun = rolesJob(this, {
      ...memberJobs,
      scriptFile: PATRONI_FILES.roles,
      script: roles,
      primaryHost: this.primaryHost,
      port: POSTGRES_PORT,
      superuser: SUPERUSER,
      // The second login's password only here: the members' env (and so their pods) stays as it is.
      env: creds.alternateLogin
        ? [...rolesEnv, secretEnv('POSTGRES_ALTERNATE_PASSWORD', creds.keys.alternatePassword)]
        : rolesEnv,
      superuserPassword: { secretKeyRef: { name: creds.secretName, key: creds.keys.superuserPassword } },
      tls: this.tls,
    });
    this.migration = {
      user: migrationUser,
      credentialsSecret: creds.migrationSecretName,
      passwordKey: creds.keys.migrationPassword,
      runsAfter: `Job/${rolesRun.name}`,
    };

    core.podDisruptionBudget(this, 'pdb', c, 1);
    core.networkPolicy(this, 'network-policy', c, {
      ingress: [
        { from: [...props.clients], ports: core.tcpPorts(POSTGRES_PORT) },
        // Members: streaming replication, pg_rewind, and Patroni asking the others' REST API before promoting.
        { from: [core.podsOf(c)], ports: core.tcpPorts(POSTGRES_PORT, PATRONI_API_PORT) },
        // The reconfigure Job: Patroni's REST API only (PATCH /config, restart, switchover).
        { from: [core.podsOf(reconfigure.component)], ports: core.tcpPorts(PATRONI_API_PORT) },
        // The roles Job: the database port (the primary's).
        { from: [core.podsOf(rolesRun.component)], ports: core.tcpPorts(POSTGRES_PORT) },
        {
          from: [...(props.scrapers ?? [core.podsOf(core.PROMETHEUS_COMPONENT)])],
          ports: core.tcpPorts(POSTGRES_EXPORTER_PORT, PATRONI_API_PORT),
        },
      ],
      egress: [
        core.dnsEgress(props.dnsResolvers),
        { to: [core.podsOf(c)], ports: core.tcpPorts(POSTGRES_PORT, PATRONI_API_PORT) },
        // The Kubernetes API (Patroni's DCS): its address is the cluster's, so only the port is fixed.
        // 443 is also how pgBackRest reaches a cloud repository; a custom endpoint's port is added.
        { ports: core.tcpPorts(443, 6443, ...repositoryPorts(repository)) },
      ],
    });

    if (repository && b) {
      if (repository.type === 'posix' && b.repository?.volume) {
        const volume = b.repository.volume;
        new k8s.KubePersistentVolumeClaim(this, 'backup-repository', {
          metadata: core.meta(this, c, repositoryClaim),
          spec: {
            // Every member mounts it: whichever leads archives into it.
            accessModes: ['ReadWriteMany'],
            ...(volume.storageClass ? { storageClassName: volume.storageClass } : {}),
            resources: { requests: { storage: k8s.Quantity.fromString(volume.size) } },
          },
        });
      }
      const schedule = { ...BACKUP_DEFAULTS.schedule, ...b.schedule };
      const jobs = new BackupJobs(this, 'backup', {
        cluster: name,
        members: this.members,
        primaryService: `${name}-primary`,
        configDir: CONFIG_DIR,
        image: b.jobImage ?? BACKUP_DEFAULTS.jobImage,
        schedule,
        pod: props.pod,
        imagePullSecrets: props.imagePullSecrets,
        dnsResolvers: props.dnsResolvers,
      });
      this.backup = {
        repository,
        stanza: name,
        archiveTimeoutSeconds,
        schedule,
        retentionFull: b.retention?.full ?? BACKUP_DEFAULTS.retention.full,
        encrypted,
        jobs,
      };
    }
  }
}

/** Ports other than 443 a repository endpoint listens on. */
function repositoryPorts(r: ResolvedRepository | undefined): number[] {
  const port = r?.endpoint?.split(':')[1];
  return port && Number(port) !== 443 ? [Number(port)] : [];
}

/** Throws the first problem of the backup and restore props, named under `backup.` / `restore.`. */
function checkBackup(backup: BackupProps | undefined, restore: RestoreProps | undefined): void {
  const valueAt = (root: unknown, path: readonly string[]) =>
    path.reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), root);
  const problems = [
    ...backupProblems(backup).map((p) => ({ ...p, root: 'backup', value: valueAt(backup, p.path) })),
    ...restoreProblems(restore, backup).map((p) => ({ ...p, root: 'restore', value: valueAt(restore, p.path) })),
  ];
  if (problems.length)
    core.fail([problems[0].root, ...problems[0].path].join('.'), problems[0].value, problems[0].message);
}

function checkPostgresSettings(p: Required<PostgresClusterSettings>): void {
  core.checkCommonSettings(p);
  core.checkInt('replicas', p.replicas, 0, 5);
  core.checkInt('synchronousReplicas', p.synchronousReplicas, 0, 5);
  if (p.synchronousReplicas > p.replicas) {
    core.fail(
      'synchronousReplicas',
      p.synchronousReplicas,
      `must be <= 'replicas' (${p.replicas}): a commit cannot wait for replicas that do not exist`,
    );
  }
  if (!SYNCHRONOUS_COMMIT.includes(p.synchronousCommit)) {
    core.fail('synchronousCommit', p.synchronousCommit, `must be one of ${SYNCHRONOUS_COMMIT.join(', ')}`);
  }
  core.checkInt('maxConnections', p.maxConnections, 20, 10000);
  checkServerParameters('parameters', p.parameters);
  core.checkName('database', p.database);
  core.checkName('user', p.user);
  core.checkName('credentialsSecret', p.credentialsSecret);
  core.checkName('exporterCredentialsSecret', p.exporterCredentialsSecret);
  const tls = p.tls;
  if (tls.enabled !== false) {
    if (tls.secretName !== undefined) core.checkName('tls.secretName', tls.secretName);
    if (tls.generate === false && tls.secretName === undefined) {
      core.fail(
        'tls.generate',
        false,
        "leaves TLS without a certificate source: name the Secret holding tls.crt, tls.key and ca.crt in 'tls.secretName' " +
          "(e.g. a cert-manager Certificate's secretName), let it be generated (generate: true), or turn TLS off (enabled: false)",
      );
    }
  }
  if (p.credentials.exporterSecretName === undefined && p.exporterCredentialsSecret === p.credentialsSecret) {
    core.fail(
      'exporterCredentialsSecret',
      p.exporterCredentialsSecret,
      "must differ from 'credentialsSecret': each Secret is generated with its own keys",
    );
  }
  const valueAt = (path: readonly string[]) =>
    path.reduce<unknown>(
      (o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined),
      p.credentials,
    );
  const [credentials] = credentialsProblems(p.credentials, p.credentialsSecret, p.exporterCredentialsSecret);
  if (credentials)
    core.fail(['credentials', ...credentials.path].join('.'), valueAt(credentials.path), credentials.message);
  checkPatroniTimings(p.patroni);
  const cidrs = allowedCidrsProblem(p.allowedCidrs);
  if (cidrs && cidrs.index < 0) core.fail('allowedCidrs', [], cidrs.message);
  if (cidrs) core.fail(`allowedCidrs[${cidrs.index}]`, p.allowedCidrs[cidrs.index], cidrs.message);
}

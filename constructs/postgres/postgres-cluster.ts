/**
 * PostgreSQL: a primary StatefulSet and a replica StatefulSet streaming from it
 * through one physical slot per pod, RW and RO Services, a postgres_exporter
 * sidecar, in-cluster generated credentials, PDB, spread and a NetworkPolicy.
 *
 * Failover is not automatic (as in Bitnami's replication mode): if the primary's
 * volume is lost, promote a replica by hand or run CloudNativePG instead.
 */
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { GeneratedSecret } from '../core/generated-secret';
import { meta, selectorLabels, serviceHost } from '../core/labels';
import {
  dnsEgress,
  networkPolicy,
  podsOf,
  PROMETHEUS_COMPONENT,
  scrapeAnnotations,
  type ServiceEndpoint,
  tcpPorts,
} from '../core/network';
import {
  containerSecurityContext,
  emptyDir,
  externalSecretsAnnotations,
  podSecurityContext,
  topologySpread,
  withPodOptions,
} from '../core/pod';
import { checkResources, type Resources, resourcesOf } from '../core/quantity';
import { checkStorage, dataVolumeClaim, type StorageProps } from '../core/storage';
import { checkImage, checkInt, checkName, checkNotEmpty, fail, withDefaults } from '../core/validate';
import {
  podDisruptionBudget,
  serviceAccount,
  type WorkloadProps,
  workloadName,
  type ScrapedProps,
} from '../core/workload';
import { POSTGRES_FILES, POSTGRES_PORT, type PostgresConfig, postgresConfigFiles, SYNCHRONOUS_COMMIT } from './files';

const k8s = kplus.k8s;

/** uid/gid of the `postgres` user in the official image. */
export const POSTGRES_UID = 999;
export const POSTGRES_EXPORTER_PORT = 9187;
const CONFIG_DIR = '/etc/postgresql';
const DATA_MOUNT = '/var/lib/postgresql/data';
const SOCKET_DIR = '/var/run/postgresql';
/** Label telling primary and replica pods apart (both carry the component's selector labels). */
export const POSTGRES_ROLE_LABEL = 'fastnext.io/postgres-role';
/** Keys of the credentials Secret. */
export const POSTGRES_SECRET_KEYS = {
  password: 'password',
  replication: 'replication-password',
  superuser: 'superuser-password',
} as const;

/** The settings of the PostgreSQL tier that have defaults (what an environment may override). */
export interface PostgresClusterSettings extends Partial<PostgresConfig> {
  /** PostgreSQL image (15), pinned. @default 'postgres:15.10-bookworm' */
  readonly image?: string;
  /** postgres_exporter image, pinned. @default 'quay.io/prometheuscommunity/postgres-exporter:v0.15.0' */
  readonly exporterImage?: string;
  /** Streaming read replicas, 0–5. @default 2 */
  readonly replicas?: number;
  /** Secret with `password`, `replication-password`, `superuser-password`; generated in-cluster when absent. @default 'postgres-credentials' */
  readonly credentialsSecret?: string;
  /** Each pod's volume. @default 20Gi of the cluster's default class */
  readonly storage?: StorageProps;
  /** Requests and limits of PostgreSQL (memory settings follow the request, >= 128Mi). @default 500m/1Gi requested, 2/2Gi limit */
  readonly resources?: Resources;
  /** Requests and limits of the exporter. @default 10m/32Mi requested, 100m/64Mi limit */
  readonly exporterResources?: Resources;
}

/** Defaults of every PostgreSQL setting: a primary + 2 asynchronous replicas, production values. */
export const POSTGRES_CLUSTER_DEFAULTS: Required<PostgresClusterSettings> = {
  image: 'postgres:15.10-bookworm',
  exporterImage: 'quay.io/prometheuscommunity/postgres-exporter:v0.15.0',
  replicas: 2,
  synchronousReplicas: 0,
  synchronousCommit: 'on',
  maxConnections: 200,
  database: 'fastnext',
  user: 'fastnext',
  credentialsSecret: 'postgres-credentials',
  storage: { size: '20Gi' },
  resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } },
  exporterResources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
};

export interface PostgresClusterProps extends PostgresClusterSettings, WorkloadProps, ScrapedProps {
  /**
   * Prefix of every object name (`<name>-primary`, `<name>-replica`, `<name>-config`, ...) and the
   * component label. Renaming it replaces the volumes. @default 'postgres'
   */
  readonly name?: string;
  /** Pods that may connect to 5432 (e.g. `[podsOf('api')]`). */
  readonly clients: readonly kplus.k8s.NetworkPolicyPeer[];
  /** Pod networks allowed by pg_hba.conf (the NetworkPolicy narrows further). @default the RFC 1918 ranges */
  readonly podCidrs?: readonly string[];
}

export class PostgresCluster extends Construct implements ServiceEndpoint {
  /** Default component name. */
  static readonly COMPONENT = 'postgres';
  readonly component: string;
  /** RW Service (the primary). */
  readonly primaryHost: string;
  /** The endpoint clients write to: the primary (same as primaryHost). */
  readonly host: string;
  /** RO Service over every replica (the primary when there are no replicas). */
  readonly readOnlyHost: string;
  /** Per-replica DNS names, so a client can skip a lagging replica. */
  readonly replicaHosts: readonly string[];
  readonly port = POSTGRES_PORT;
  readonly database: string;
  readonly user: string;
  /** Secret with `password` (application role), `replication-password`, `superuser-password`. */
  readonly credentialsSecret: string;
  readonly configMapName: string;
  readonly primaryStatefulSet: string;
  readonly replicaStatefulSet: string;
  /** Rendered files of the ConfigMap (what the launcher runs). */
  readonly files: Record<string, string>;

  constructor(scope: Construct, id: string, props: PostgresClusterProps) {
    super(scope, id);
    const p = withDefaults(POSTGRES_CLUSTER_DEFAULTS, props);
    checkPostgresSettings(p);
    // An ingress rule with an empty 'from' would admit every pod in the cluster.
    checkNotEmpty('clients', props.clients, "name the pods allowed to connect to PostgreSQL (e.g. [podsOf('api')])");
    const name = workloadName(props.name, PostgresCluster.COMPONENT);
    const c = name;
    this.component = c;
    this.configMapName = `${name}-config`;
    this.primaryStatefulSet = `${name}-primary`;
    this.replicaStatefulSet = `${name}-replica`;
    this.database = p.database;
    this.user = p.user;
    this.credentialsSecret = p.credentialsSecret;
    this.primaryHost = serviceHost(this, this.primaryStatefulSet);
    this.host = this.primaryHost;
    this.replicaHosts = Array.from({ length: p.replicas }, (_, i) =>
      serviceHost(this, `${this.replicaStatefulSet}-${i}.${this.replicaStatefulSet}-headless`),
    );
    this.readOnlyHost = p.replicas > 0 ? serviceHost(this, `${name}-readonly`) : this.primaryHost;
    this.files = postgresConfigFiles(p, props.podCidrs);

    new GeneratedSecret(this, 'credentials', {
      dnsResolvers: props.dnsResolvers,
      secretName: p.credentialsSecret,
      keys: Object.values(POSTGRES_SECRET_KEYS),
      pod: props.pod,
      imagePullSecrets: props.imagePullSecrets,
    });
    new k8s.KubeConfigMap(this, 'config', { metadata: meta(this, c, this.configMapName), data: this.files });
    serviceAccount(this, 'service-account', c, props.pod?.serviceAccountAnnotations);

    const roleLabels = (role: 'primary' | 'replica') => ({ ...selectorLabels(c), [POSTGRES_ROLE_LABEL]: role });
    const service = (sid: string, serviceName: string, role: 'primary' | 'replica', headless: boolean) =>
      new k8s.KubeService(this, sid, {
        metadata: meta(this, c, serviceName),
        spec: {
          // Headless: per-pod DNS names, published only for ready pods, so the API never reads
          // from a replica that is still taking its base backup.
          ...(headless ? { clusterIp: 'None' } : { type: 'ClusterIP' }),
          selector: roleLabels(role),
          ports: [{ name: 'postgres', port: POSTGRES_PORT, targetPort: k8s.IntOrString.fromString('postgres') }],
        },
      });
    service('primary-service', this.primaryStatefulSet, 'primary', false);
    service('primary-headless', `${this.primaryStatefulSet}-headless`, 'primary', true);
    service('readonly-service', `${name}-readonly`, 'replica', false);
    service('replica-headless', `${this.replicaStatefulSet}-headless`, 'replica', true);

    const secretEnv = (name: string, key: string): kplus.k8s.EnvVar => ({
      name,
      valueFrom: { secretKeyRef: { name: p.credentialsSecret, key } },
    });
    const commonEnv: kplus.k8s.EnvVar[] = [
      { name: 'PGDATA', value: `${DATA_MOUNT}/pgdata` },
      { name: 'PG_CONFIG_DIR', value: CONFIG_DIR },
      { name: 'PG_SOCKET_DIR', value: SOCKET_DIR },
      { name: 'TMPDIR', value: '/tmp' },
      { name: 'POSTGRES_USER', value: p.user },
      { name: 'POSTGRES_DB', value: p.database },
      secretEnv('REPLICATION_PASSWORD', POSTGRES_SECRET_KEYS.replication),
    ];
    // pg_isready over the socket: answers without credentials, and without the network.
    const isReady = (t: Partial<kplus.k8s.Probe>): kplus.k8s.Probe => ({
      exec: { command: ['pg_isready', '-q', '-h', SOCKET_DIR, '-p', String(POSTGRES_PORT)] },
      timeoutSeconds: 5,
      ...t,
    });
    const exporter: kplus.k8s.Container = {
      name: 'exporter',
      image: p.exporterImage,
      ports: [{ name: 'metrics', containerPort: POSTGRES_EXPORTER_PORT }],
      env: [
        { name: 'DATA_SOURCE_URI', value: `127.0.0.1:${POSTGRES_PORT}/postgres?sslmode=disable` },
        { name: 'DATA_SOURCE_USER', value: 'postgres' },
        secretEnv('DATA_SOURCE_PASS', POSTGRES_SECRET_KEYS.superuser),
      ],
      resources: resourcesOf(p.exporterResources),
      securityContext: containerSecurityContext(),
      readinessProbe: { httpGet: { path: '/', port: k8s.IntOrString.fromString('metrics') }, periodSeconds: 10 },
      livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('metrics') }, periodSeconds: 20 },
    };

    const statefulSet = (sid: string, setName: string, role: 'primary' | 'replica', replicas: number) => {
      const script = role === 'primary' ? POSTGRES_FILES.primaryStart : POSTGRES_FILES.replicaStart;
      const env =
        role === 'primary'
          ? [
              ...commonEnv,
              secretEnv('POSTGRES_PASSWORD', POSTGRES_SECRET_KEYS.password),
              secretEnv('POSTGRES_SUPERUSER_PASSWORD', POSTGRES_SECRET_KEYS.superuser),
            ]
          : [
              ...commonEnv,
              { name: 'PRIMARY_HOST', value: this.primaryHost },
              { name: 'PRIMARY_PORT', value: String(POSTGRES_PORT) },
              { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            ];
      return new k8s.KubeStatefulSet(this, sid, {
        metadata: meta(this, c, setName, {
          annotations: externalSecretsAnnotations(props.pod, props.imagePullSecrets),
        }),
        spec: {
          replicas,
          serviceName: `${setName}-headless`,
          podManagementPolicy: 'OrderedReady',
          updateStrategy: { type: 'RollingUpdate' },
          persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
          selector: { matchLabels: roleLabels(role) },
          template: withPodOptions(
            {
              metadata: {
                labels: { ...meta(this, c, setName).labels, ...roleLabels(role) },
                annotations: scrapeAnnotations(POSTGRES_EXPORTER_PORT),
              },
              spec: {
                serviceAccountName: c,
                automountServiceAccountToken: false,
                securityContext: podSecurityContext(POSTGRES_UID),
                // Fast shutdown takes seconds; a checkpoint on a busy primary can take longer.
                terminationGracePeriodSeconds: 120,
                topologySpreadConstraints: topologySpread(c),
                containers: [
                  {
                    name: 'postgres',
                    image: p.image,
                    command: ['sh', `${CONFIG_DIR}/${script}`],
                    ports: [{ name: 'postgres', containerPort: POSTGRES_PORT }],
                    env,
                    resources: resourcesOf(p.resources),
                    securityContext: containerSecurityContext(),
                    // initdb, or a base backup of a large database, before the first answer.
                    startupProbe: isReady({ periodSeconds: 10, failureThreshold: 360 }),
                    readinessProbe: isReady({ periodSeconds: 5, failureThreshold: 3 }),
                    livenessProbe: {
                      exec: {
                        command: ['pg_isready', '-q', '-h', SOCKET_DIR, '-p', String(POSTGRES_PORT), '-t', '10'],
                      },
                      periodSeconds: 20,
                      timeoutSeconds: 15,
                      failureThreshold: 6,
                    },
                    volumeMounts: [
                      { name: 'data', mountPath: DATA_MOUNT },
                      { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
                      { name: 'run', mountPath: SOCKET_DIR },
                      { name: 'tmp', mountPath: '/tmp' },
                      { name: 'shm', mountPath: '/dev/shm' },
                    ],
                  },
                  exporter,
                ],
                volumes: [
                  { name: 'config', configMap: { name: this.configMapName, defaultMode: 0o444 } },
                  emptyDir('run', '16Mi'),
                  emptyDir('tmp', '256Mi'),
                  emptyDir('shm', '256Mi', 'Memory'),
                ],
              },
            },
            'postgres',
            props.pod,
            props.imagePullSecrets,
          ),
          volumeClaimTemplates: [dataVolumeClaim(c, p.storage)],
        },
      });
    };
    statefulSet('primary', this.primaryStatefulSet, 'primary', 1);
    statefulSet('replicas', this.replicaStatefulSet, 'replica', p.replicas);

    podDisruptionBudget(this, 'pdb', c, 1);
    networkPolicy(this, 'network-policy', c, {
      ingress: [
        // Clients; replicas streaming from the primary; the scraper.
        { from: [...props.clients], ports: tcpPorts(POSTGRES_PORT) },
        { from: [podsOf(c)], ports: tcpPorts(POSTGRES_PORT) },
        { from: [...(props.scrapers ?? [podsOf(PROMETHEUS_COMPONENT)])], ports: tcpPorts(POSTGRES_EXPORTER_PORT) },
      ],
      egress: [dnsEgress(props.dnsResolvers), { to: [podsOf(c)], ports: tcpPorts(POSTGRES_PORT) }],
    });
  }
}

function checkPostgresSettings(p: Required<PostgresClusterSettings>): void {
  checkImage('image', p.image);
  checkImage('exporterImage', p.exporterImage);
  checkInt('replicas', p.replicas, 0, 5);
  checkInt('synchronousReplicas', p.synchronousReplicas, 0, 5);
  if (p.synchronousReplicas > p.replicas) {
    fail(
      'synchronousReplicas',
      p.synchronousReplicas,
      `must be <= 'replicas' (${p.replicas}): a commit cannot wait for replicas that do not exist`,
    );
  }
  if (!SYNCHRONOUS_COMMIT.includes(p.synchronousCommit)) {
    fail('synchronousCommit', p.synchronousCommit, `must be one of ${SYNCHRONOUS_COMMIT.join(', ')}`);
  }
  checkInt('maxConnections', p.maxConnections, 20, 10000);
  checkName('database', p.database);
  checkName('user', p.user);
  checkName('credentialsSecret', p.credentialsSecret);
  checkStorage('storage', p.storage);
  checkResources('resources', p.resources);
  checkResources('exporterResources', p.exporterResources);
}

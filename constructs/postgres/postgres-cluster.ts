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
import type { EnvironmentConfig } from '../../stacks/config';
import {
  containerSecurityContext,
  dataVolumeClaim,
  dnsEgress,
  emptyDir,
  meta,
  networkPolicy,
  podDisruptionBudget,
  podSecurityContext,
  podsOf,
  PROMETHEUS_COMPONENT,
  resourcesOf,
  scrapeAnnotations,
  selectorLabels,
  serviceAccount,
  tcpPorts,
  topologySpread,
} from '../core/common';
import { POSTGRES_FILES, POSTGRES_PORT, postgresConfigFiles } from './files';
import { GeneratedSecret } from '../core/generated-secret';

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

export interface PostgresClusterProps {
  readonly config: EnvironmentConfig;
  /** Components whose pods may connect to 5432 (the API, its maintenance CronJob). */
  readonly clients: readonly string[];
  /** Pod networks allowed by pg_hba.conf (the NetworkPolicy narrows further). @default the RFC 1918 ranges */
  readonly podCidrs?: readonly string[];
  /**
   * Where the pods may send DNS queries (UDP and TCP 53).
   * @default DEFAULT_DNS_RESOLVER_PEERS: kube-dns and node-local-dns pods, 169.254.20.10/32, 169.254.169.254/32
   */
  readonly dnsResolvers?: readonly kplus.k8s.NetworkPolicyPeer[];
}

export class PostgresCluster extends Construct {
  static readonly COMPONENT = 'postgres';
  readonly component = PostgresCluster.COMPONENT;
  /** RW Service (the primary). */
  readonly primaryHost: string;
  /** RO Service over every replica (the primary when there are no replicas). */
  readonly readOnlyHost: string;
  /** Per-replica DNS names, so a client can skip a lagging replica. */
  readonly replicaHosts: readonly string[];
  readonly port = POSTGRES_PORT;
  readonly database: string;
  readonly user: string;
  /** Secret with `password` (application role), `replication-password`, `superuser-password`. */
  readonly credentialsSecret: string;
  /** Pods clients connect to (for their egress NetworkPolicies). */
  readonly peers: kplus.k8s.NetworkPolicyPeer[];
  readonly configMapName = 'postgres-config';
  readonly primaryStatefulSet = 'postgres-primary';
  readonly replicaStatefulSet = 'postgres-replica';
  /** Rendered files of the ConfigMap (what the launcher runs). */
  readonly files: Record<string, string>;

  constructor(scope: Construct, id: string, props: PostgresClusterProps) {
    super(scope, id);
    const { config } = props;
    const p = config.postgres;
    if (!(Number.isInteger(p.replicas) && p.replicas >= 0 && p.replicas <= 5)) {
      throw new Error(`'postgres.replicas' (${p.replicas}) must be an integer from 0 to 5`);
    }
    if (p.synchronousReplicas > p.replicas) {
      throw new Error(
        `'postgres.synchronousReplicas' (${p.synchronousReplicas}) must be <= 'postgres.replicas' (${p.replicas}): ` +
          'a commit cannot wait for replicas that do not exist',
      );
    }
    if (props.clients.length === 0) {
      // An ingress rule with an empty 'from' would admit every pod in the cluster.
      throw new Error("'clients' is empty: name the components allowed to connect to PostgreSQL (e.g. 'api')");
    }
    const c = PostgresCluster.COMPONENT;
    const ns = config.namespace;
    const svc = (name: string) => `${name}.${ns}.svc.cluster.local`;
    this.database = p.database;
    this.user = p.user;
    this.credentialsSecret = p.credentialsSecret;
    this.primaryHost = svc('postgres-primary');
    this.replicaHosts = Array.from({ length: p.replicas }, (_, i) =>
      svc(`${this.replicaStatefulSet}-${i}.postgres-replica-headless`),
    );
    this.readOnlyHost = p.replicas > 0 ? svc('postgres-readonly') : this.primaryHost;
    this.peers = [podsOf(c)];
    this.files = postgresConfigFiles(p, props.podCidrs);

    new GeneratedSecret(this, 'credentials', {
      config,
      dnsResolvers: props.dnsResolvers,
      secretName: p.credentialsSecret,
      keys: Object.values(POSTGRES_SECRET_KEYS),
    });
    new k8s.KubeConfigMap(this, 'config', { metadata: meta(config, c, this.configMapName), data: this.files });
    serviceAccount(this, 'service-account', config, c);

    const roleLabels = (role: 'primary' | 'replica') => ({ ...selectorLabels(c), [POSTGRES_ROLE_LABEL]: role });
    const service = (sid: string, name: string, role: 'primary' | 'replica', headless: boolean) =>
      new k8s.KubeService(this, sid, {
        metadata: meta(config, c, name),
        spec: {
          // Headless: per-pod DNS names, published only for ready pods, so the API never reads
          // from a replica that is still taking its base backup.
          ...(headless ? { clusterIp: 'None' } : { type: 'ClusterIP' }),
          selector: roleLabels(role),
          ports: [{ name: 'postgres', port: POSTGRES_PORT, targetPort: k8s.IntOrString.fromString('postgres') }],
        },
      });
    service('primary-service', 'postgres-primary', 'primary', false);
    service('primary-headless', 'postgres-primary-headless', 'primary', true);
    service('readonly-service', 'postgres-readonly', 'replica', false);
    service('replica-headless', 'postgres-replica-headless', 'replica', true);

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

    const statefulSet = (sid: string, name: string, role: 'primary' | 'replica', replicas: number) => {
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
        metadata: meta(config, c, name),
        spec: {
          replicas,
          serviceName: `${name}-headless`,
          podManagementPolicy: 'OrderedReady',
          updateStrategy: { type: 'RollingUpdate' },
          persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
          selector: { matchLabels: roleLabels(role) },
          template: {
            metadata: {
              labels: { ...meta(config, c, name).labels, ...roleLabels(role) },
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
                    exec: { command: ['pg_isready', '-q', '-h', SOCKET_DIR, '-p', String(POSTGRES_PORT), '-t', '10'] },
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
          volumeClaimTemplates: [dataVolumeClaim(config, c, p.storage)],
        },
      });
    };
    statefulSet('primary', this.primaryStatefulSet, 'primary', 1);
    statefulSet('replicas', this.replicaStatefulSet, 'replica', p.replicas);

    podDisruptionBudget(this, 'pdb', config, c, 1);
    networkPolicy(this, 'network-policy', config, c, {
      ingress: [
        // Clients; replicas streaming from the primary; the scraper.
        { from: props.clients.map(podsOf), ports: tcpPorts(POSTGRES_PORT) },
        { from: [podsOf(c)], ports: tcpPorts(POSTGRES_PORT) },
        { from: [podsOf(PROMETHEUS_COMPONENT)], ports: tcpPorts(POSTGRES_EXPORTER_PORT) },
      ],
      egress: [dnsEgress(props.dnsResolvers), { to: [podsOf(c)], ports: tcpPorts(POSTGRES_PORT) }],
    });
  }
}

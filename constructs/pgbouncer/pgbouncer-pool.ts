/**
 * PgBouncer in transaction pooling between the API and the PostgreSQL primary Service:
 * a Deployment of at least 2 pods (PDB, spread, probes), a rendered pgbouncer.ini, the
 * userlist written from the credentials Secret at start, a prometheus-pgbouncer-exporter
 * sidecar, and a NetworkPolicy. It follows a failover by itself: the primary Service
 * re-points to the new leader, and `server_login_retry` is low enough to notice at once.
 */
import { createHash } from 'node:crypto';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import * as core from '../core';
import {
  PGBOUNCER_CREDENTIAL_FILES,
  PGBOUNCER_CREDENTIALS_DIR,
  PGBOUNCER_FILES,
  PGBOUNCER_RUN_DIR,
  PGBOUNCER_TLS_DIR,
  pgbouncerConfigFiles,
  pgbouncerExporterArgs,
  serverConnectionsPerPod,
} from './pgbouncer-files';

export const PGBOUNCER_PORT = 6432;
export const PGBOUNCER_EXPORTER_PORT = 9127;
/** uid of the `postgres` user images/pgbouncer creates before installing Debian's pgbouncer. */
export const PGBOUNCER_UID = 999;
const CONFIG_DIR = '/etc/pgbouncer';

/** The database the pool serves (the PatroniCluster's readonly fields fit). */
export interface PooledDatabase {
  /** The Service PgBouncer connects to: the primary (follows the leader) or the read-only one. */
  readonly primaryHost: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  /** Secret holding the role's password. */
  readonly credentialsSecret: string;
  /** Its key (`postgres.credentials.keys.password`). @default 'password' */
  readonly passwordKey?: string;
  /** Pods of the database, for the egress rule. */
  readonly peers: readonly k8s.NetworkPolicyPeer[];
  /**
   * The application's second login (its password under `passwordKey` of `credentialsSecret`): PgBouncer
   * admits both, from a mounted Secret it re-reads, so a rotation needs no restart. @default - one login
   */
  readonly alternateLogin?: { readonly user: string; readonly passwordKey: string };
  /**
   * TLS: the Secret with the database's certificate (tls.crt, tls.key, ca.crt), which PgBouncer also
   * presents to its clients (its Service is among the certificate's names). @default - plaintext
   */
  readonly tls?: { readonly secretName: string };
}

/** The settings of a PgBouncer pool that have defaults (what an environment may override). */
export interface PgBouncerPoolSettings extends core.ContainerSettings, core.ExporterSettings {
  /** Pods (>= 2: one may be evicted while the other serves). @default 2 */
  readonly replicas?: number;
  /** Client connections each pod accepts. @default 1500 */
  readonly maxClientConnections?: number;
  /** Server connections each pod keeps for the database. @default 20 */
  readonly poolSize?: number;
  /** Extra server connections per pod under a backlog. @default 5 */
  readonly reservePoolSize?: number;
}

/** What a pool takes and opens: the numbers the connection budget counts (stacks/connection-budget.ts). */
export interface PoolCapacity {
  /** Server connections all pods together may open to the database (pool + reserve, per pod). */
  readonly serverConnections: number;
  /** Client connections the pool accepts with one pod gone (evicted, rolling). */
  readonly clientConnectionsOnePodDown: number;
}

/** The capacity of a pool of these settings. */
export function poolCapacity(
  p: Required<Pick<PgBouncerPoolSettings, 'replicas' | 'maxClientConnections' | 'poolSize' | 'reservePoolSize'>>,
): PoolCapacity {
  return {
    serverConnections: p.replicas * serverConnectionsPerPod(p),
    clientConnectionsOnePodDown: (p.replicas - 1) * p.maxClientConnections,
  };
}

export const PGBOUNCER_POOL_DEFAULTS: Required<PgBouncerPoolSettings> = {
  // Debian's pgbouncer 1.18 (images/pgbouncer).
  image: 'ghcr.io/fastnext/pgbouncer:1.18.0-1',
  // prometheus-community pgbouncer_exporter 0.10.x: the version the metrics are proven against.
  exporterImage: 'quay.io/prometheuscommunity/pgbouncer-exporter:v0.10.2',
  replicas: 2,
  maxClientConnections: 1500,
  poolSize: 20,
  reservePoolSize: 5,
  resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '1', memory: '128Mi' } },
  exporterResources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '100m', memory: '64Mi' } },
};

export interface PgBouncerPoolProps extends PgBouncerPoolSettings, core.WorkloadProps, core.ScrapedProps {
  readonly database: PooledDatabase;
  /** Pods allowed to connect (the API). */
  readonly clients: readonly k8s.NetworkPolicyPeer[];
  /** @default 3 */
  readonly reservePoolTimeoutSeconds?: number;
  /** @default 30 */
  readonly queryWaitTimeoutSeconds?: number;
  /** @default 1 */
  readonly serverLoginRetrySeconds?: number;
  /** Name of every object and the pods' component label (a second pool needs its own). @default 'pgbouncer' */
  readonly name?: string;
}

export class PgBouncerPool extends Construct implements core.ServiceEndpoint {
  static readonly COMPONENT = 'pgbouncer';
  readonly component: string;
  /** The Service clients connect to. */
  readonly host: string;
  readonly port = PGBOUNCER_PORT;
  readonly exporterPort = PGBOUNCER_EXPORTER_PORT;
  readonly replicas: number;
  /** What the pool takes and opens (the connection budget's numbers). */
  readonly capacity: PoolCapacity;
  readonly peers: k8s.NetworkPolicyPeer[];
  readonly files: Record<string, string>;
  readonly configMapName: string;

  constructor(scope: Construct, id: string, props: PgBouncerPoolProps) {
    super(scope, id);
    const p = core.withDefaults(PGBOUNCER_POOL_DEFAULTS, props);
    core.checkCommonSettings(p);
    if (!(Number.isInteger(p.replicas) && p.replicas >= 2)) {
      core.fail('replicas', p.replicas, 'must be an integer >= 2: with one pod, its eviction cuts every client off');
    }
    core.checkInt('maxClientConnections', p.maxClientConnections, 1);
    core.checkInt('poolSize', p.poolSize, 1);
    core.checkInt('reservePoolSize', p.reservePoolSize, 0);
    core.checkNotEmpty('clients', props.clients, 'name the pods allowed to connect to PgBouncer (e.g. the API)');
    const input = {
      database: props.database.database,
      user: props.database.user,
      alternateUser: props.database.alternateLogin?.user,
      serverHost: props.database.primaryHost,
      serverPort: props.database.port,
      listenPort: PGBOUNCER_PORT,
      maxClientConnections: p.maxClientConnections,
      poolSize: p.poolSize,
      reservePoolSize: p.reservePoolSize,
      reservePoolTimeoutSeconds: props.reservePoolTimeoutSeconds ?? 3,
      queryWaitTimeoutSeconds: props.queryWaitTimeoutSeconds ?? 30,
      serverLoginRetrySeconds: props.serverLoginRetrySeconds ?? 1,
      tls: props.database.tls !== undefined,
    };
    if (input.serverLoginRetrySeconds > 5) {
      core.fail(
        'serverLoginRetrySeconds',
        input.serverLoginRetrySeconds,
        'must be <= 5: every query stalls that long after a failover',
      );
    }
    const c = core.workloadName(props.name, PgBouncerPool.COMPONENT);
    this.component = c;
    this.configMapName = `${c}-config`;
    this.host = core.serviceHost(this, c);
    this.replicas = p.replicas;
    this.capacity = poolCapacity(p);
    this.peers = [core.podsOf(c)];
    this.files = pgbouncerConfigFiles(input);

    new k8s.KubeConfigMap(this, 'config', { metadata: core.meta(this, c, this.configMapName), data: this.files });
    core.serviceAccount(this, 'service-account', c, props.pod?.serviceAccountAnnotations);
    new k8s.KubeService(this, 'service', {
      metadata: core.meta(this, c, c),
      spec: {
        type: 'ClusterIP',
        selector: core.selectorLabels(c),
        ports: [{ name: 'pgbouncer', port: PGBOUNCER_PORT, targetPort: k8s.IntOrString.fromString('pgbouncer') }],
      },
    });

    const tcp = (p: string, t: Partial<k8s.Probe>): k8s.Probe => ({
      tcpSocket: { port: k8s.IntOrString.fromString(p) },
      timeoutSeconds: 3,
      ...t,
    });
    const runMount = { name: 'run', mountPath: PGBOUNCER_RUN_DIR };
    const tls = props.database.tls;
    const tlsMount = { name: 'tls', mountPath: PGBOUNCER_TLS_DIR, readOnly: true };
    const alternate = props.database.alternateLogin;
    const passwordKey = props.database.passwordKey ?? 'password';
    // Two logins: their passwords as files (a Secret volume follows a changed Secret; env does not).
    const credentialsMount = { name: 'credentials', mountPath: PGBOUNCER_CREDENTIALS_DIR, readOnly: true };
    new k8s.KubeDeployment(this, 'deployment', {
      metadata: core.workloadMeta(this, c, c, props),
      spec: {
        replicas: p.replicas,
        selector: { matchLabels: core.selectorLabels(c) },
        strategy: core.surgeRollout(1),
        template: core.podTemplate(
          this,
          c,
          'pgbouncer',
          props,
          {
            annotations: {
              ...core.scrapeAnnotations(PGBOUNCER_EXPORTER_PORT),
              // A changed pgbouncer.ini rolls the pods (PgBouncer reads it at start).
              'fastnext.io/config-hash': hashOf(JSON.stringify(this.files)),
            },
          },
          {
            serviceAccountName: c,
            automountServiceAccountToken: false,
            securityContext: core.podSecurityContext(PGBOUNCER_UID),
            terminationGracePeriodSeconds: 40,
            topologySpreadConstraints: core.topologySpread(c),
            containers: [
              {
                name: 'pgbouncer',
                image: p.image,
                command: ['sh', `${CONFIG_DIR}/${PGBOUNCER_FILES.start}`],
                ports: [{ name: 'pgbouncer', containerPort: PGBOUNCER_PORT }],
                env: [
                  { name: 'PGBOUNCER_CONFIG_DIR', value: CONFIG_DIR },
                  ...(alternate
                    ? [
                        { name: 'PGBOUNCER_CREDENTIALS_DIR', value: PGBOUNCER_CREDENTIALS_DIR },
                        { name: 'CREDENTIALS_RELOAD_INTERVAL_SECONDS', value: '5' },
                      ]
                    : [
                        {
                          name: 'PGBOUNCER_PASSWORD',
                          valueFrom: { secretKeyRef: { name: props.database.credentialsSecret, key: passwordKey } },
                        },
                      ]),
                  ...(tls
                    ? [
                        { name: 'PGBOUNCER_TLS_DIR', value: PGBOUNCER_TLS_DIR },
                        { name: 'TLS_RELOAD_INTERVAL_SECONDS', value: '30' },
                      ]
                    : []),
                ],
                resources: core.resourcesOf(p.resources),
                securityContext: core.containerSecurityContext(),
                readinessProbe: tcp('pgbouncer', { periodSeconds: 2, failureThreshold: 2 }),
                // The process itself: a PgBouncer that cannot reach PostgreSQL must not be restarted for it.
                livenessProbe: {
                  exec: { command: ['sh', '-c', 'kill -0 1'] },
                  periodSeconds: 10,
                  failureThreshold: 3,
                },
                // SIGINT = PgBouncer's safe shutdown: wait for in-flight transactions, then exit.
                lifecycle: { preStop: { exec: { command: ['sh', '-c', 'sleep 5; kill -INT 1'] } } },
                volumeMounts: [
                  { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
                  runMount,
                  ...(tls ? [tlsMount] : []),
                  ...(alternate ? [credentialsMount] : []),
                ],
              },
              {
                name: 'exporter',
                image: p.exporterImage,
                args: pgbouncerExporterArgs(
                  { host: '127.0.0.1', port: PGBOUNCER_PORT },
                  `:${PGBOUNCER_EXPORTER_PORT}`,
                  tls ? `${PGBOUNCER_TLS_DIR}/ca.crt` : undefined,
                ),
                ports: [{ name: 'metrics', containerPort: PGBOUNCER_EXPORTER_PORT }],
                // The stats user's password, made per pod by the PgBouncer entry point.
                env: [{ name: 'PGPASSFILE', value: `${PGBOUNCER_RUN_DIR}/stats.pgpass` }],
                resources: core.resourcesOf(p.exporterResources),
                securityContext: core.containerSecurityContext(),
                readinessProbe: {
                  httpGet: { path: '/metrics', port: k8s.IntOrString.fromString('metrics') },
                  periodSeconds: 15,
                },
                livenessProbe: tcp('metrics', { periodSeconds: 20 }),
                volumeMounts: [{ ...runMount, readOnly: true }, ...(tls ? [tlsMount] : [])],
              },
            ],
            volumes: [
              { name: 'config', configMap: { name: this.configMapName, defaultMode: 0o444 } },
              core.emptyDir('run', '1Mi', 'Memory'),
              ...(tls ? [{ name: 'tls', secret: { secretName: tls.secretName, defaultMode: 0o440 } }] : []),
              ...(alternate
                ? [
                    {
                      name: 'credentials',
                      projected: {
                        defaultMode: 0o440,
                        sources: [
                          {
                            secret: {
                              name: props.database.credentialsSecret,
                              items: [
                                { key: passwordKey, path: PGBOUNCER_CREDENTIAL_FILES.password },
                                { key: alternate.passwordKey, path: PGBOUNCER_CREDENTIAL_FILES.alternatePassword },
                              ],
                            },
                          },
                        ],
                      },
                    },
                  ]
                : []),
            ],
          },
        ),
      },
    });

    core.podDisruptionBudget(this, 'pdb', c, 1);
    core.networkPolicy(this, 'network-policy', c, {
      ingress: [
        { from: [...props.clients], ports: core.tcpPorts(PGBOUNCER_PORT) },
        {
          from: [...(props.scrapers ?? [core.podsOf(core.PROMETHEUS_COMPONENT)])],
          ports: core.tcpPorts(PGBOUNCER_EXPORTER_PORT),
        },
      ],
      egress: [
        core.dnsEgress(props.dnsResolvers),
        { to: [...props.database.peers], ports: core.tcpPorts(props.database.port) },
      ],
    });
  }
}

function hashOf(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

/**
 * Redis Cluster: one StatefulSet of masters x (1 + replicasPerMaster) nodes started
 * in parallel, nodes.conf and data on a PVC, hostnames announced so the cluster
 * survives pods coming back on new IPs, an idempotent cluster-create Job, a
 * redis_exporter sidecar, a generated password, PDB, spread and a NetworkPolicy.
 */
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import type { EnvironmentConfig } from '../../stacks/config';
import {
  containerSecurityContext,
  dataVolumeClaim,
  dnsEgress,
  emptyDir,
  jobNameFor,
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
import { REDIS_BUS_PORT_OFFSET, REDIS_FILES, REDIS_PORT, redisConfigFiles, redisNodeCount } from './files';
import { GeneratedSecret } from '../core/generated-secret';

const k8s = kplus.k8s;

/** uid/gid of the `redis` user in the official image. */
export const REDIS_UID = 999;
export const REDIS_EXPORTER_PORT = 9121;
export const REDIS_BUS_PORT = REDIS_PORT + REDIS_BUS_PORT_OFFSET;
const CONFIG_DIR = '/etc/redis';

export interface RedisClusterProps {
  readonly config: EnvironmentConfig;
  /** Components whose pods may connect to 6379 (the API). */
  readonly clients: readonly string[];
  /**
   * Where the pods may send DNS queries (UDP and TCP 53).
   * @default DEFAULT_DNS_RESOLVER_PEERS: kube-dns and node-local-dns pods, 169.254.20.10/32, 169.254.169.254/32
   */
  readonly dnsResolvers?: readonly kplus.k8s.NetworkPolicyPeer[];
}

export class RedisCluster extends Construct {
  static readonly COMPONENT = 'redis';
  /** Component of the cluster-create Job's pods. */
  static readonly CREATE_COMPONENT = 'redis-cluster-create';
  readonly component = RedisCluster.COMPONENT;
  /** Every node's stable DNS name (clients need any one; all make start-up robust). */
  readonly seedHosts: readonly string[];
  readonly port = REDIS_PORT;
  /** Secret with key `password`. */
  readonly passwordSecret: string;
  readonly peers: kplus.k8s.NetworkPolicyPeer[];
  readonly statefulSetName = 'redis';
  readonly headlessServiceName = 'redis-headless';
  readonly configMapName = 'redis-config';
  /** Name of this configuration's cluster-create Job (hash of its spec: a changed topology gets a new Job). */
  readonly createJobName: string;
  readonly files: Record<string, string>;

  constructor(scope: Construct, id: string, props: RedisClusterProps) {
    super(scope, id);
    const { config } = props;
    const r = config.redis;
    if (!(Number.isInteger(r.masters) && r.masters >= 3)) {
      throw new Error(
        `'redis.masters' (${r.masters}) must be >= 3: Redis Cluster needs a majority of masters to fail over`,
      );
    }
    if (props.clients.length === 0) {
      throw new Error("'clients' is empty: name the components allowed to connect to Redis (e.g. 'api')");
    }
    const c = RedisCluster.COMPONENT;
    const ns = config.namespace;
    const nodes = redisNodeCount(r);
    this.passwordSecret = r.passwordSecret;
    this.seedHosts = Array.from(
      { length: nodes },
      (_, i) => `${this.statefulSetName}-${i}.${this.headlessServiceName}.${ns}.svc.cluster.local`,
    );
    this.peers = [podsOf(c)];
    this.files = redisConfigFiles(r);

    new GeneratedSecret(this, 'password', {
      config,
      dnsResolvers: props.dnsResolvers,
      secretName: r.passwordSecret,
      keys: ['password'],
    });
    new k8s.KubeConfigMap(this, 'config', { metadata: meta(config, c, this.configMapName), data: this.files });
    serviceAccount(this, 'service-account', config, c);
    new k8s.KubeService(this, 'headless', {
      metadata: meta(config, c, this.headlessServiceName),
      spec: {
        clusterIp: 'None',
        // Nodes must find each other (and the create Job them) before the cluster, hence readiness, exists.
        publishNotReadyAddresses: true,
        selector: selectorLabels(c),
        ports: [
          { name: 'redis', port: REDIS_PORT, targetPort: k8s.IntOrString.fromString('redis') },
          { name: 'bus', port: REDIS_BUS_PORT, targetPort: k8s.IntOrString.fromString('bus') },
        ],
      },
    });

    const password: kplus.k8s.EnvVar = {
      name: 'REDIS_PASSWORD',
      valueFrom: { secretKeyRef: { name: r.passwordSecret, key: 'password' } },
    };
    const cliAuth: kplus.k8s.EnvVar = { ...password, name: 'REDISCLI_AUTH' };
    const cli = `redis-cli -h 127.0.0.1 -p ${REDIS_PORT} --no-auth-warning`;
    new k8s.KubeStatefulSet(this, 'statefulset', {
      metadata: meta(config, c, this.statefulSetName),
      spec: {
        replicas: nodes,
        serviceName: this.headlessServiceName,
        // All nodes at once: the cluster needs every node up before it can form.
        podManagementPolicy: 'Parallel',
        updateStrategy: { type: 'RollingUpdate' },
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
        selector: { matchLabels: selectorLabels(c) },
        template: {
          metadata: {
            labels: { ...meta(config, c, c).labels },
            annotations: scrapeAnnotations(REDIS_EXPORTER_PORT),
          },
          spec: {
            serviceAccountName: c,
            automountServiceAccountToken: false,
            securityContext: podSecurityContext(REDIS_UID),
            terminationGracePeriodSeconds: 30,
            topologySpreadConstraints: topologySpread(c),
            containers: [
              {
                name: 'redis',
                image: r.image,
                command: ['sh', `${CONFIG_DIR}/${REDIS_FILES.start}`],
                ports: [
                  { name: 'redis', containerPort: REDIS_PORT },
                  { name: 'bus', containerPort: REDIS_BUS_PORT },
                ],
                env: [
                  { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                  { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
                  {
                    name: 'REDIS_HOSTNAME',
                    value: `$(POD_NAME).${this.headlessServiceName}.${ns}.svc.cluster.local`,
                  },
                  { name: 'REDIS_ANNOUNCE_IP', value: '$(POD_IP)' },
                  { name: 'REDIS_PORT', value: String(REDIS_PORT) },
                  { name: 'REDIS_DATA_DIR', value: '/data' },
                  { name: 'REDIS_CONFIG_DIR', value: CONFIG_DIR },
                  { name: 'TMPDIR', value: '/tmp' },
                  password,
                  cliAuth,
                ],
                resources: resourcesOf(r.resources),
                securityContext: containerSecurityContext(),
                startupProbe: {
                  exec: { command: ['sh', '-c', `${cli} ping | grep -q PONG`] },
                  periodSeconds: 5,
                  failureThreshold: 120, // loading a large AOF
                },
                // Ready = answers and the cluster it belongs to is ok (all slots served).
                readinessProbe: {
                  exec: {
                    command: [
                      'sh',
                      '-c',
                      `${cli} ping | grep -q PONG && ${cli} cluster info | grep -q '^cluster_state:ok'`,
                    ],
                  },
                  periodSeconds: 5,
                  timeoutSeconds: 5,
                },
                livenessProbe: {
                  exec: { command: ['sh', '-c', `${cli} ping | grep -Eq 'PONG|LOADING'`] },
                  periodSeconds: 15,
                  timeoutSeconds: 5,
                  failureThreshold: 4,
                },
                volumeMounts: [
                  { name: 'data', mountPath: '/data' },
                  { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
              },
              {
                name: 'exporter',
                image: r.exporterImage,
                ports: [{ name: 'metrics', containerPort: REDIS_EXPORTER_PORT }],
                env: [{ name: 'REDIS_ADDR', value: `redis://127.0.0.1:${REDIS_PORT}` }, password],
                resources: resourcesOf(r.exporterResources),
                securityContext: containerSecurityContext(),
                readinessProbe: { httpGet: { path: '/health', port: k8s.IntOrString.fromString('metrics') } },
                livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('metrics') }, periodSeconds: 20 },
              },
            ],
            volumes: [
              { name: 'config', configMap: { name: this.configMapName, defaultMode: 0o444 } },
              emptyDir('tmp', '16Mi', 'Memory'),
            ],
          },
        },
        volumeClaimTemplates: [dataVolumeClaim(config, c, r.storage)],
      },
    });

    // The create Job: a Job's pod template is immutable, so its name carries a hash of what it runs.
    const cc = RedisCluster.CREATE_COMPONENT;
    const jobEnv: kplus.k8s.EnvVar[] = [
      { name: 'REDIS_NODES', value: this.seedHosts.map((h) => `${h}:${REDIS_PORT}`).join(' ') },
      { name: 'REDIS_REPLICAS_PER_MASTER', value: String(r.replicasPerMaster) },
      { name: 'REDIS_WAIT_SECONDS', value: '600' },
      password,
    ];
    serviceAccount(this, 'create-service-account', config, cc);
    const jobSpec: kplus.k8s.JobSpec = {
      backoffLimit: 20,
      template: {
        metadata: { labels: { ...meta(config, cc, cc).labels } },
        spec: {
          serviceAccountName: cc,
          automountServiceAccountToken: false,
          restartPolicy: 'OnFailure',
          securityContext: podSecurityContext(REDIS_UID),
          containers: [
            {
              name: 'cluster-create',
              image: r.image,
              command: ['sh', `${CONFIG_DIR}/${REDIS_FILES.clusterCreate}`],
              env: jobEnv,
              resources: resourcesOf(r.exporterResources),
              securityContext: containerSecurityContext(),
              volumeMounts: [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }],
            },
          ],
          volumes: [{ name: 'config', configMap: { name: this.configMapName, defaultMode: 0o444 } }],
        },
      },
    };
    this.createJobName = jobNameFor(cc, jobSpec, [this.files[REDIS_FILES.clusterCreate]]);
    new k8s.KubeJob(this, 'create-job', { metadata: meta(config, cc, this.createJobName), spec: jobSpec });
    networkPolicy(this, 'create-network-policy', config, cc, {
      ingress: [],
      egress: [dnsEgress(props.dnsResolvers), { to: [podsOf(c)], ports: tcpPorts(REDIS_PORT) }],
    });

    podDisruptionBudget(this, 'pdb', config, c, 1);
    networkPolicy(this, 'network-policy', config, c, {
      ingress: [
        { from: [podsOf(c)], ports: tcpPorts(REDIS_PORT, REDIS_BUS_PORT) },
        { from: [...props.clients, cc].map((x) => podsOf(x)), ports: tcpPorts(REDIS_PORT) },
        { from: [podsOf(PROMETHEUS_COMPONENT)], ports: tcpPorts(REDIS_EXPORTER_PORT) },
      ],
      egress: [dnsEgress(props.dnsResolvers), { to: [podsOf(c)], ports: tcpPorts(REDIS_PORT, REDIS_BUS_PORT) }],
    });
  }
}

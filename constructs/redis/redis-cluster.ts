/**
 * Redis Cluster: one StatefulSet of masters x (1 + replicasPerMaster) nodes started
 * in parallel, nodes.conf and data on a PVC, hostnames announced so the cluster
 * survives pods coming back on new IPs, an idempotent cluster-create Job, a
 * redis_exporter sidecar, ACL users with generated passwords (acl.ts: `default` off), PDB,
 * spread and a NetworkPolicy.
 */
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import * as core from '../core';
import {
  MAXMEMORY_POLICIES,
  REDIS_BUS_PORT_OFFSET,
  REDIS_FILES,
  REDIS_PORT,
  type RedisConfig,
  redisConfigFiles,
  redisMemoryProblem,
  redisNodeCount,
} from './files';
import {
  APP_COMMANDS,
  appCommandsProblem,
  REDIS_USER_ROLES,
  REDIS_USERS,
  type RedisUserRole,
  redisPasswordKey,
} from './acl';

/** uid/gid of the `redis` user in the official image. */
export const REDIS_UID = 999;
export const REDIS_EXPORTER_PORT = 9121;
export const REDIS_BUS_PORT = REDIS_PORT + REDIS_BUS_PORT_OFFSET;
const CONFIG_DIR = '/etc/redis';
/** The users' Secret, mounted whole: the start script reads every `<user>-password*` file. */
const USERS_DIR = '/etc/redis-users';
/** The TLS Secret (tls.enabled), mounted whole: the start script reads tls.crt, tls.key and ca.crt. */
const TLS_DIR = '/etc/redis-tls';

/** The settings of the Redis tier that have defaults (what an environment may override). */
export interface RedisClusterSettings
  extends Partial<RedisConfig>, core.ContainerSettings, core.ExporterSettings, core.VolumeSettings {
  /**
   * Secret with one key per ACL user (`app-password`, `exporter-password`, `admin-password`,
   * `replication-password`); generated in-cluster when absent. The default is a new name: the
   * single-password Secret of before (`redis-password`) is no longer read (docs/redis-acl.md).
   * @default 'redis-users'
   */
  readonly passwordSecret?: string;
  /** TLS on the client port, the cluster bus and replication. @default - off (plaintext) */
  readonly tls?: RedisTlsSettings;
}

/**
 * TLS of the Redis tier: from a Secret with cert-manager's keys (`tls.crt`, `tls.key`, `ca.crt`).
 * The certificate must name every node as the clients reach it: `*.<name>-headless.<namespace>.svc.cluster.local`
 * (the API and the exporter check the host name; Redis itself and redis-cli check the chain only).
 */
export interface RedisTlsSettings {
  readonly enabled: boolean;
  /** The Secret, e.g. a cert-manager Certificate's `secretName`. Required when `enabled`. */
  readonly secretName?: string;
}

/**
 * Defaults of every Redis setting: 3 masters x (1 + 1 replica), 2gb each, production values.
 * `maxmemory` must fit under the memory limit of `resources`; `exporterResources` also size the create Job.
 */
export const REDIS_CLUSTER_DEFAULTS: Required<RedisClusterSettings> = {
  // Redis 7.x.
  image: 'redis:7.0.15-bookworm',
  exporterImage: 'oliver006/redis_exporter:v1.62.0',
  masters: 3,
  replicasPerMaster: 1,
  maxmemory: '2gb',
  maxmemoryPolicy: 'allkeys-lru',
  nodeTimeoutMs: 5000,
  appCommands: APP_COMMANDS,
  passwordSecret: 'redis-users',
  tls: { enabled: false },
  // Each node's data and nodes.conf.
  storage: { size: '5Gi' },
  resources: { requests: { cpu: '250m', memory: '2560Mi' }, limits: { cpu: '1', memory: '3Gi' } },
  exporterResources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '32Mi' } },
};

export interface RedisClusterProps extends RedisClusterSettings, core.WorkloadProps, core.ScrapedProps {
  /**
   * Name of the StatefulSet and component label; prefixes the headless Service
   * (`<name>-headless`), the ConfigMap (`<name>-config`) and the create Job. Renaming
   * it replaces the volumes. @default 'redis'
   */
  readonly name?: string;
  /** Pods that may connect to 6379 (e.g. `[podsOf('api')]`). */
  readonly clients: readonly k8s.NetworkPolicyPeer[];
  /**
   * The topology the running cluster has, while this configuration shrinks it (fewer nodes). The
   * StatefulSet then runs after the create Job (`fastnext.io/runs-after`: Pulumi's dependsOn), so
   * the Job moves the slots off the leaving nodes and removes them before their pods go. Only for
   * a scale-in; remove it once applied (docs/redis-scaling.md).
   * @default - no scale-in: the StatefulSet and the Job run side by side (the Job waits for new nodes)
   */
  readonly scaleFrom?: RedisTopology;
}

/** Masters and replicas per master: what the node count and the create Job follow. */
export interface RedisTopology {
  readonly masters: number;
  /** @default - the target's replicasPerMaster */
  readonly replicasPerMaster?: number;
}

/** Component of the cluster-create Job's pods of the cluster `name`. */
const createComponentOf = (name: string) => `${name}-cluster-create`;

export class RedisCluster extends Construct implements core.ServiceEndpoint {
  /** Default component name. */
  static readonly COMPONENT = 'redis';
  /** Default component of the cluster-create Job's pods. */
  static readonly CREATE_COMPONENT = createComponentOf(RedisCluster.COMPONENT);
  readonly component: string;
  /** In-cluster DNS name of the headless Service (every node; clients use seedHosts). */
  readonly host: string;
  /** Every node's stable DNS name (clients need any one; all make start-up robust). */
  readonly seedHosts: readonly string[];
  readonly port = REDIS_PORT;
  /** Secret with one key per ACL user (`redisPasswordKey(role)`). */
  readonly passwordSecret: string;
  /** The ACL user the application authenticates as. */
  readonly appUsername = REDIS_USERS.app;
  /** Key of the application user's password in `passwordSecret`. */
  readonly appPasswordKey = redisPasswordKey('app');
  /** TLS (tls.enabled): clients verify against `caKey` of `secretName`. */
  readonly tls?: { readonly secretName: string; readonly caKey: string };
  readonly statefulSetName: string;
  readonly headlessServiceName: string;
  readonly configMapName: string;
  /** Name of this configuration's cluster-create Job (hash of its spec: a changed topology gets a new Job). */
  readonly createJobName: string;
  readonly files: Record<string, string>;

  constructor(scope: Construct, id: string, props: RedisClusterProps) {
    super(scope, id);
    const r = core.withDefaults(REDIS_CLUSTER_DEFAULTS, props);
    checkRedisSettings(r);
    const scaleIn = props.scaleFrom !== undefined;
    if (props.scaleFrom) {
      const problem = scaleFromProblem(props.scaleFrom, r);
      if (problem) core.fail('scaleFrom', props.scaleFrom, problem);
    }
    core.checkNotEmpty('clients', props.clients, "name the pods allowed to connect to Redis (e.g. [podsOf('api')])");
    const name = core.workloadName(props.name, RedisCluster.COMPONENT);
    const c = name;
    this.component = c;
    this.statefulSetName = name;
    this.headlessServiceName = `${name}-headless`;
    this.configMapName = `${name}-config`;
    this.host = core.serviceHost(this, this.headlessServiceName);
    const ns = core.namespaceOf(this);
    const nodes = redisNodeCount(r);
    this.passwordSecret = r.passwordSecret;
    this.seedHosts = Array.from({ length: nodes }, (_, i) =>
      core.serviceHost(this, `${this.statefulSetName}-${i}.${this.headlessServiceName}`),
    );
    this.files = redisConfigFiles(r);
    if (r.tls.enabled && r.tls.secretName !== undefined) {
      this.tls = { secretName: r.tls.secretName, caKey: core.TLS_SECRET_KEYS.ca };
    }
    const tls = this.tls;
    // The CA alone, for the containers that only connect (exporter, create Job): they never see the key.
    const tlsCaVolume: k8s.Volume[] = tls
      ? [{ name: 'tls-ca', secret: { secretName: tls.secretName, items: [{ key: tls.caKey, path: tls.caKey }] } }]
      : [];
    const tlsCaMount: k8s.VolumeMount[] = tls ? [{ name: 'tls-ca', mountPath: TLS_DIR, readOnly: true }] : [];
    const tlsDirEnv: k8s.EnvVar[] = tls ? [{ name: 'REDIS_TLS_DIR', value: TLS_DIR }] : [];
    const placement = core.podPlacement(props.pod, props.imagePullSecrets);

    new core.GeneratedSecret(this, 'password', {
      dnsResolvers: props.dnsResolvers,
      secretName: r.passwordSecret,
      keys: REDIS_USER_ROLES.map(redisPasswordKey),
      pod: props.pod,
      imagePullSecrets: props.imagePullSecrets,
    });
    new k8s.KubeConfigMap(this, 'config', { metadata: core.meta(this, c, this.configMapName), data: this.files });
    core.serviceAccount(this, 'service-account', c, props.pod?.serviceAccountAnnotations);
    new k8s.KubeService(this, 'headless', {
      metadata: core.meta(this, c, this.headlessServiceName),
      spec: {
        clusterIp: 'None',
        // Nodes must find each other (and the create Job them) before the cluster, hence readiness, exists.
        publishNotReadyAddresses: true,
        selector: core.selectorLabels(c),
        ports: [
          { name: 'redis', port: REDIS_PORT, targetPort: k8s.IntOrString.fromString('redis') },
          { name: 'bus', port: REDIS_BUS_PORT, targetPort: k8s.IntOrString.fromString('bus') },
        ],
      },
    });

    const passwordOf = (name: string, role: RedisUserRole): k8s.EnvVar => ({
      name,
      valueFrom: { secretKeyRef: { name: r.passwordSecret, key: redisPasswordKey(role) } },
    });
    // The probes run as the read-only exporter user, with its password as the mounted Secret holds
    // it now (a rotation changes it while the pod runs; an env var would keep the old one). An exec
    // probe runs with the container's env, so REDIS_USERS_DIR is set.
    const tlsCli = tls ? ` --tls --cacert ${TLS_DIR}/${tls.caKey}` : '';
    const cli = `REDISCLI_AUTH="$(cat "$REDIS_USERS_DIR"/${redisPasswordKey('exporter')})" redis-cli${tlsCli} -h 127.0.0.1 -p ${REDIS_PORT} --user ${REDIS_USERS.exporter} --no-auth-warning`;
    const statefulSet = new k8s.KubeStatefulSet(this, 'statefulset', {
      metadata: core.workloadMeta(this, c, this.statefulSetName, props),
      spec: core.statefulSetSpec(c, {
        replicas: nodes,
        serviceName: this.headlessServiceName,
        // All nodes at once: the cluster needs every node up before it can form.
        podManagementPolicy: 'Parallel',
        template: core.podTemplate(
          this,
          c,
          'redis',
          props,
          { annotations: core.scrapeAnnotations(REDIS_EXPORTER_PORT) },
          {
            serviceAccountName: c,
            automountServiceAccountToken: false,
            securityContext: core.podSecurityContext(REDIS_UID),
            terminationGracePeriodSeconds: 30,
            topologySpreadConstraints: core.topologySpread(c),
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
                  { name: 'REDIS_USERS_DIR', value: USERS_DIR },
                  ...tlsDirEnv,
                ],
                resources: core.resourcesOf(r.resources),
                securityContext: core.containerSecurityContext(),
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
                  { name: 'users', mountPath: USERS_DIR, readOnly: true },
                  { name: 'tmp', mountPath: '/tmp' },
                  ...(tls ? [{ name: 'tls', mountPath: TLS_DIR, readOnly: true }] : []),
                ],
              },
              {
                name: 'exporter',
                image: r.exporterImage,
                ports: [{ name: 'metrics', containerPort: REDIS_EXPORTER_PORT }],
                env: [
                  ...(tls
                    ? [
                        // Over TLS to the node's own DNS name: the name its certificate holds (the exporter checks it).
                        { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                        {
                          name: 'REDIS_ADDR',
                          value: `rediss://$(POD_NAME).${this.headlessServiceName}.${ns}.svc.cluster.local:${REDIS_PORT}`,
                        },
                        { name: 'REDIS_EXPORTER_TLS_CA_CERT_FILE', value: `${TLS_DIR}/${tls.caKey}` },
                      ]
                    : [{ name: 'REDIS_ADDR', value: `redis://127.0.0.1:${REDIS_PORT}` }]),
                  { name: 'REDIS_USER', value: REDIS_USERS.exporter },
                  passwordOf('REDIS_PASSWORD', 'exporter'),
                ],
                ...(tls ? { volumeMounts: tlsCaMount } : {}),
                resources: core.resourcesOf(r.exporterResources),
                securityContext: core.containerSecurityContext(),
                readinessProbe: { httpGet: { path: '/health', port: k8s.IntOrString.fromString('metrics') } },
                livenessProbe: { tcpSocket: { port: k8s.IntOrString.fromString('metrics') }, periodSeconds: 20 },
              },
            ],
            volumes: [
              { name: 'config', configMap: { name: this.configMapName, defaultMode: 0o444 } },
              // Group-readable: the files belong to root and the pod's fsGroup (the redis group).
              { name: 'users', secret: { secretName: r.passwordSecret, defaultMode: 0o440 } },
              core.emptyDir('tmp', '16Mi', 'Memory'),
              // The key is group-readable as the users' files are (owner root, group the pod's fsGroup).
              ...(tls ? [{ name: 'tls', secret: { secretName: tls.secretName, defaultMode: 0o440 } }] : []),
              ...tlsCaVolume,
            ],
          },
        ),
        volumeClaimTemplates: [core.dataVolumeClaim(c, r.storage)],
      }),
    });

    // The create Job: a Job's pod template is immutable, so its name carries a hash of what it runs.
    // The Job's pods are the construct's own: its NetworkPolicies admit them; no peer wires to them.
    const cc = createComponentOf(name);
    const jobEnv: k8s.EnvVar[] = [
      { name: 'REDIS_NODES', value: this.seedHosts.map((h) => `${h}:${REDIS_PORT}`).join(' ') },
      { name: 'REDIS_MASTERS', value: String(r.masters) },
      { name: 'REDIS_REPLICAS_PER_MASTER', value: String(r.replicasPerMaster) },
      { name: 'REDIS_WAIT_SECONDS', value: '600' },
      passwordOf('REDIS_ADMIN_PASSWORD', 'admin'),
      ...tlsDirEnv,
    ];
    core.serviceAccount(this, 'create-service-account', cc);
    const jobSpec: k8s.JobSpec = {
      backoffLimit: 20,
      template: {
        metadata: { labels: { ...core.meta(this, cc, cc).labels } },
        spec: {
          serviceAccountName: cc,
          automountServiceAccountToken: false,
          restartPolicy: 'OnFailure',
          securityContext: core.podSecurityContext(REDIS_UID),
          ...placement,
          containers: [
            {
              name: 'cluster-create',
              image: r.image,
              command: ['sh', `${CONFIG_DIR}/${REDIS_FILES.clusterCreate}`],
              env: jobEnv,
              resources: core.resourcesOf(r.exporterResources),
              securityContext: core.containerSecurityContext(),
              volumeMounts: [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }, ...tlsCaMount],
            },
          ],
          volumes: [{ name: 'config', configMap: { name: this.configMapName, defaultMode: 0o444 } }, ...tlsCaVolume],
        },
      },
    };
    this.createJobName = core.jobNameFor(cc, jobSpec, [this.files[REDIS_FILES.clusterCreate]]);
    new k8s.KubeJob(this, 'create-job', { metadata: core.meta(this, cc, this.createJobName), spec: jobSpec });
    // A scale-in: no pod may go before the Job moved its slots away and removed it from the cluster.
    // Otherwise the Job must not wait for the StatefulSet, whose new pods are ready only once it ran.
    if (scaleIn) statefulSet.metadata.addAnnotation(core.RUNS_AFTER_ANNOTATION, `Job/${this.createJobName}`);
    core.networkPolicy(this, 'create-network-policy', cc, {
      ingress: [],
      egress: [core.dnsEgress(props.dnsResolvers), { to: [core.podsOf(c)], ports: core.tcpPorts(REDIS_PORT) }],
    });

    core.podDisruptionBudget(this, 'pdb', c, 1);
    core.networkPolicy(this, 'network-policy', c, {
      ingress: [
        { from: [core.podsOf(c)], ports: core.tcpPorts(REDIS_PORT, REDIS_BUS_PORT) },
        { from: [...props.clients, core.podsOf(cc)], ports: core.tcpPorts(REDIS_PORT) },
        {
          from: [...(props.scrapers ?? [core.podsOf(core.PROMETHEUS_COMPONENT)])],
          ports: core.tcpPorts(REDIS_EXPORTER_PORT),
        },
      ],
      egress: [
        core.dnsEgress(props.dnsResolvers),
        { to: [core.podsOf(c)], ports: core.tcpPorts(REDIS_PORT, REDIS_BUS_PORT) },
      ],
    });
  }
}

function checkRedisSettings(r: Required<RedisClusterSettings>): void {
  core.checkCommonSettings(r);
  if (!(Number.isInteger(r.masters) && r.masters >= 3 && r.masters <= 50)) {
    core.fail(
      'masters',
      r.masters,
      'must be an integer from 3 to 50: Redis Cluster needs a majority of masters to fail over',
    );
  }
  core.checkInt('replicasPerMaster', r.replicasPerMaster, 0, 5);
  if (!MAXMEMORY_POLICIES.includes(r.maxmemoryPolicy)) {
    core.fail('maxmemoryPolicy', r.maxmemoryPolicy, `must be one of ${MAXMEMORY_POLICIES.join(', ')}`);
  }
  core.checkInt('nodeTimeoutMs', r.nodeTimeoutMs, 500, 60000);
  core.checkName('passwordSecret', r.passwordSecret);
  const tlsProblem = redisTlsProblem(r.tls);
  if (tlsProblem) core.fail('tls.secretName', r.tls.secretName, tlsProblem);
  if (r.tls.secretName !== undefined) core.checkName('tls.secretName', r.tls.secretName);
  const acl = appCommandsProblem(r.appCommands);
  if (acl) core.fail('appCommands', r.appCommands, acl);
  const memory = redisMemoryProblem(r.maxmemory, r.resources.limits.memory);
  if (memory) core.fail('maxmemory', r.maxmemory, memory);
}

/** Why `scaleFrom` does not describe a scale-in to `target`; undefined when it does. */
export function scaleFromProblem(
  from: RedisTopology,
  target: Pick<RedisConfig, 'masters' | 'replicasPerMaster'>,
): string | undefined {
  const replicasPerMaster = from.replicasPerMaster ?? target.replicasPerMaster;
  if (!(Number.isInteger(from.masters) && from.masters >= 3 && from.masters <= 50)) {
    return 'must name the masters the running cluster has now: an integer from 3 to 50';
  }
  if (!(Number.isInteger(replicasPerMaster) && replicasPerMaster >= 0 && replicasPerMaster <= 5)) {
    return 'must name the replicas per master the running cluster has now: an integer from 0 to 5';
  }
  const now = redisNodeCount({ masters: from.masters, replicasPerMaster });
  const next = redisNodeCount(target);
  if (now > next) return undefined;
  return (
    `has ${now} nodes, not more than the ${next} of masters x (1 + replicasPerMaster): scaleFrom is only for a ` +
    'scale-in (the StatefulSet then waits for the create Job); a scale-out or an applied scale-in needs none: remove it'
  );
}

/** Why these TLS settings cannot work (TLS on without a certificate source); undefined when they can. */
export function redisTlsProblem(tls: RedisTlsSettings): string | undefined {
  if (!tls.enabled || tls.secretName !== undefined) return undefined;
  return (
    'TLS is on without a certificate: name the Secret holding tls.crt, tls.key and ca.crt ' +
    "(e.g. a cert-manager Certificate's secretName covering *.redis-headless.<namespace>.svc.cluster.local), " +
    'or turn TLS off (enabled: false)'
  );
}

/**
 * Prometheus: a one-replica StatefulSet on a PVC, discovering the namespace's
 * pods and endpoints with a Role that can only get/list/watch pods, endpoints
 * and services. A configmap-reload sidecar POSTs /-/reload when the rendered
 * config or rules change, so a rule edit needs no restart.
 */
import { createHash } from 'crypto';
import { JsonPatch } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import * as core from '../core';
import { renderAlertRules, renderRecordingRules } from './alert-rules';
import type { MonitoredPlatform } from './monitored';
import {
  KUBELET_PORT,
  type KubeStateMetricsTarget,
  PROMETHEUS_CONFIG_DIR,
  PROMETHEUS_FILES,
  PROMETHEUS_PORT,
  renderPrometheusConfig,
} from './prometheus-config';
import { CONFIG_RELOADER_IMAGE, configReloaderContainer, type ConfigReloaderSettings } from './config-reloader';

/** uid/gid `nobody`, which the prom/prometheus image runs as. */
export const PROMETHEUS_UID = 65534;
/**
 * What kubernetes_sd (roles pod and endpoints) reads, in the namespace only. Discovery itself
 * lists and watches (test/prometheus-discovery.test.ts records its requests); `get` is the
 * customary read verb beside them and grants nothing list does not already show.
 */
export const DISCOVERY_RULE = {
  apiGroups: [''],
  resources: ['pods', 'endpoints', 'services'],
  verbs: ['get', 'list', 'watch'],
};
/**
 * What the kubelet scrape needs, cluster-wide (nodes are not namespaced): discover nodes,
 * and read a kubelet's /metrics (`nodes/metrics`; not `nodes/proxy`, which would also allow
 * exec through the kubelet).
 */
export const KUBELET_RULES = [
  { apiGroups: [''], resources: ['nodes'], verbs: ['list', 'watch'] },
  { apiGroups: [''], resources: ['nodes/metrics'], verbs: ['get'] },
];
/** Ports the kube-apiserver answers on (443 via the kubernetes Service, 6443 on most control planes). */
const API_SERVER_PORTS = [443, 6443];

/** A pod port Prometheus scrapes, for its egress NetworkPolicy. */
export type ScrapeTarget = core.PodPort;

/** A Prometheus retention such as `15d`. */
export const RETENTION = /^\d+[hdwy]$/;

/** The settings of Prometheus that have defaults (what an environment may override). */
export interface PrometheusSettings extends ConfigReloaderSettings, core.ContainerSettings, core.VolumeSettings {
  /** How long samples are kept (`15d`). @default '15d' */
  readonly retention?: string;
}

/** Defaults of every Prometheus setting. */
export const PROMETHEUS_DEFAULTS: Required<PrometheusSettings> = {
  image: 'prom/prometheus:v2.53.3',
  reloaderImage: CONFIG_RELOADER_IMAGE,
  retention: '15d',
  // The TSDB.
  storage: { size: '50Gi' },
  resources: { requests: { cpu: '250m', memory: '1Gi' }, limits: { cpu: '1', memory: '2Gi' } },
};

export interface PrometheusProps extends PrometheusSettings, core.WorkloadProps {
  /** Name of the StatefulSet, Services and component label; renaming it replaces the volume. @default 'prometheus' */
  readonly name?: string;
  /** What the rules watch (tier bounds, thresholds, scrape interval, environment label). */
  readonly monitored: MonitoredPlatform;
  /** Components and metrics ports Prometheus may connect to. */
  readonly scrapeTargets: readonly ScrapeTarget[];
  /** Pods allowed to query Prometheus. @default - the bundled Grafana's pods */
  readonly clients?: readonly k8s.NetworkPolicyPeer[];
  /** The Alertmanager replicas alerts go to: each replica's `host:port` and their component. @default - none */
  readonly alertmanagers?: { readonly addresses: readonly string[]; readonly component: string; readonly port: number };
  /** A kube-state-metrics to scrape (its component and metrics port name). @default - none */
  readonly kubeStateMetrics?: KubeStateMetricsTarget;
  /**
   * Scrape every node's kubelet for this namespace's volume stats (the PVC alerts). Needs a
   * ClusterRole (list/watch nodes, get nodes/metrics) and egress to port 10250 of the nodes.
   * @default false
   */
  readonly scrapeKubelets?: boolean;
}

export class Prometheus extends Construct implements core.ServiceEndpoint {
  /** Default component name. */
  static readonly COMPONENT = core.PROMETHEUS_COMPONENT;
  readonly component: string;
  /** In-namespace Service name of the query API. */
  readonly serviceName: string;
  /** DNS name of the query API's Service (`<service>.<namespace>.svc`). */
  readonly host: string;
  readonly port = PROMETHEUS_PORT;
  readonly configMapName: string;
  /** Rendered files exactly as shipped in the ConfigMap (promtool checks these bytes). */
  readonly files: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: PrometheusProps) {
    super(scope, id);
    const { monitored, scrapeTargets } = props;
    const p = core.withDefaults(PROMETHEUS_DEFAULTS, props);
    core.checkCommonSettings(p);
    if (!RETENTION.test(p.retention)) core.fail('retention', p.retention, "must be a duration such as '15d'");
    for (const t of scrapeTargets) {
      if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) {
        throw new Error(`'scrapeTargets' port of '${t.component}' (${t.port}) must be an integer in 1..65535`);
      }
    }
    const name = core.workloadName(props.name, Prometheus.COMPONENT);
    const c = name;
    const ns = core.namespaceOf(this);
    this.component = c;
    this.serviceName = name;
    this.host = `${name}.${ns}.svc`;
    this.configMapName = `${name}-config`;

    this.files = {
      [PROMETHEUS_FILES.config]: renderPrometheusConfig({
        ...monitored,
        namespace: ns,
        alertmanagers: props.alertmanagers?.addresses,
        kubeStateMetrics: props.kubeStateMetrics,
        scrapeKubelets: props.scrapeKubelets,
      }),
      [PROMETHEUS_FILES.recordingRules]: renderRecordingRules(),
      [PROMETHEUS_FILES.alertRules]: renderAlertRules(monitored),
    };
    new k8s.KubeConfigMap(this, 'config', {
      metadata: core.meta(this, c, this.configMapName),
      data: { ...this.files },
    });

    core.serviceAccount(this, 'service-account', c, props.pod?.serviceAccountAnnotations);
    new k8s.KubeRole(this, 'role', { metadata: core.meta(this, c, `${name}-discovery`), rules: [DISCOVERY_RULE] });
    new k8s.KubeRoleBinding(this, 'role-binding', {
      metadata: core.meta(this, c, `${name}-discovery`),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${name}-discovery` },
      subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
    });
    if (props.scrapeKubelets) {
      // Cluster-scoped: the name carries the namespace, so two environments in one cluster do not collide.
      const clusterName = `${ns}-${name}-kubelet`;
      const role = new k8s.KubeClusterRole(this, 'kubelet-cluster-role', {
        metadata: clusterScoped(core.meta(this, c, clusterName)),
        rules: KUBELET_RULES,
      });
      const binding = new k8s.KubeClusterRoleBinding(this, 'kubelet-cluster-role-binding', {
        metadata: clusterScoped(core.meta(this, c, clusterName)),
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterName },
        subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
      });
      // The Chart gives every object its namespace; a cluster-scoped one has none.
      for (const o of [role, binding]) o.addJsonPatch(JsonPatch.remove('/metadata/namespace'));
    }

    const web = k8s.IntOrString.fromString('web');
    const prometheus: k8s.Container = {
      name: 'prometheus',
      image: p.image,
      imagePullPolicy: 'IfNotPresent',
      args: [
        `--config.file=${PROMETHEUS_CONFIG_DIR}/${PROMETHEUS_FILES.config}`,
        '--storage.tsdb.path=/prometheus',
        `--storage.tsdb.retention.time=${p.retention}`,
        `--web.listen-address=:${PROMETHEUS_PORT}`,
        // /-/reload for the sidecar; the port is reachable only from Grafana and the pod itself.
        '--web.enable-lifecycle',
      ],
      ports: [{ name: 'web', containerPort: PROMETHEUS_PORT, protocol: 'TCP' }],
      resources: core.resourcesOf(p.resources),
      securityContext: core.containerSecurityContext(),
      volumeMounts: [
        { name: 'config', mountPath: PROMETHEUS_CONFIG_DIR, readOnly: true },
        { name: 'data', mountPath: '/prometheus' },
      ],
      // WAL replay after a restart can take minutes on a full volume: startup allows 10.
      startupProbe: core.httpProbe('/-/ready', 'web', { periodSeconds: 10, failureThreshold: 60, timeoutSeconds: 3 }),
      readinessProbe: core.httpProbe('/-/ready', 'web', { periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 3 }),
      livenessProbe: core.httpProbe('/-/healthy', 'web', { periodSeconds: 15, failureThreshold: 4, timeoutSeconds: 3 }),
    };
    const reloader = configReloaderContainer(p.reloaderImage, PROMETHEUS_CONFIG_DIR, PROMETHEUS_PORT);

    new k8s.KubeStatefulSet(this, 'statefulset', {
      metadata: core.workloadMeta(this, c, name, props),
      spec: core.statefulSetSpec(c, {
        replicas: 1,
        serviceName: `${name}-headless`,
        podManagementPolicy: 'OrderedReady',
        template: core.podTemplate(
          this,
          c,
          'prometheus',
          props,
          {
            annotations: {
              // Recorded for humans and rollouts; the sidecar reloads without a restart.
              'fastnext.io/prometheus-config-sha256': createHash('sha256')
                .update(Object.values(this.files).join('\0'))
                .digest('hex'),
            },
          },
          {
            serviceAccountName: name,
            // Discovery reads the API: this pod alone mounts its ServiceAccount token.
            automountServiceAccountToken: true,
            securityContext: core.podSecurityContext(PROMETHEUS_UID),
            terminationGracePeriodSeconds: 300,
            topologySpreadConstraints: core.topologySpread(c),
            containers: [prometheus, reloader],
            // Prometheus writes only to /prometheus (the PVC): no emptyDir is needed.
            volumes: [{ name: 'config', configMap: { name: this.configMapName } }],
          },
        ),
        volumeClaimTemplates: [core.dataVolumeClaim(c, p.storage)],
      }),
    });

    const ports = [{ name: 'web', port: PROMETHEUS_PORT, targetPort: web, protocol: 'TCP' }];
    new k8s.KubeService(this, 'service', {
      metadata: core.meta(this, c, this.serviceName),
      spec: { type: 'ClusterIP', selector: core.selectorLabels(c), ports },
    });
    new k8s.KubeService(this, 'headless', {
      metadata: core.meta(this, c, `${name}-headless`),
      spec: { clusterIp: 'None', selector: core.selectorLabels(c), ports },
    });

    // One replica: a PDB would block every node drain, so there is none (Prometheus restarts in place).
    core.networkPolicy(this, 'network-policy', c, {
      ingress: [{ from: [...(props.clients ?? [core.podsOf('grafana')])], ports: core.tcpPorts(PROMETHEUS_PORT) }],
      egress: [
        core.dnsEgress(props.dnsResolvers),
        // The API server (and the kubelets) are outside any pod selector; allow their ports to any address.
        { ports: core.tcpPorts(...API_SERVER_PORTS, ...(props.scrapeKubelets ? [KUBELET_PORT] : [])) },
        ...(props.alertmanagers
          ? [{ to: [core.podsOf(props.alertmanagers.component)], ports: core.tcpPorts(props.alertmanagers.port) }]
          : []),
        ...groupByComponent(scrapeTargets).map(([component, targetPorts]) => ({
          to: [core.podsOf(component)],
          ports: core.tcpPorts(...targetPorts),
        })),
      ],
    });
  }
}

function groupByComponent(targets: readonly ScrapeTarget[]): [string, number[]][] {
  const byComponent = new Map<string, Set<number>>();
  for (const t of targets) byComponent.set(t.component, (byComponent.get(t.component) ?? new Set()).add(t.port));
  return [...byComponent.entries()].map(([component, ports]) => [component, [...ports].sort((a, b) => a - b)]);
}

/** Metadata of a cluster-scoped object: no namespace (removed again from the JSON by a patch). */
function clusterScoped(m: k8s.ObjectMeta): k8s.ObjectMeta {
  return { ...m, namespace: undefined };
}

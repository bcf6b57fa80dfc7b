/**
 * Prometheus: a one-replica StatefulSet on a PVC, discovering the namespace's
 * pods and endpoints with a Role that can only get/list/watch pods, endpoints
 * and services. A configmap-reload sidecar POSTs /-/reload when the rendered
 * config or rules change, so a rule edit needs no restart.
 */
import { createHash } from 'crypto';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import type { EnvironmentConfig } from '../../stacks/config';
import {
  containerSecurityContext,
  httpProbe,
  dataVolumeClaim,
  dnsEgress,
  meta,
  networkPolicy,
  podSecurityContext,
  podsOf,
  PROMETHEUS_COMPONENT,
  resourcesOf,
  selectorLabels,
  serviceAccount,
  tcpPorts,
  topologySpread,
} from '../core/common';
import { renderAlertRules, renderRecordingRules } from './alert-rules';
import {
  PROMETHEUS_CONFIG_DIR,
  PROMETHEUS_FILES,
  PROMETHEUS_PORT,
  renderPrometheusConfig,
} from './prometheus-config';

const k8s = kplus.k8s;

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
/** Ports the kube-apiserver answers on (443 via the kubernetes Service, 6443 on most control planes). */
const API_SERVER_PORTS = [443, 6443];
/** configmap-reload's own HTTP port (its default). */
const RELOADER_PORT = 9533;
/** The reload sidecar idles at a few MiB; these are not worth a config field. */
const RELOADER_RESOURCES = { requests: { cpu: '5m', memory: '16Mi' }, limits: { cpu: '50m', memory: '32Mi' } };

/** A pod port Prometheus scrapes, for its egress NetworkPolicy. */
export interface ScrapeTarget {
  readonly component: string;
  readonly port: number;
}

export interface PrometheusProps {
  readonly config: EnvironmentConfig;
  /** Components and metrics ports Prometheus may connect to. */
  readonly scrapeTargets: readonly ScrapeTarget[];
  /** Component allowed to query Prometheus (Grafana). */
  readonly clientComponent: string;
  /**
   * Where the pods may send DNS queries (UDP and TCP 53).
   * @default DEFAULT_DNS_RESOLVER_PEERS: kube-dns and node-local-dns pods, 169.254.20.10/32, 169.254.169.254/32
   */
  readonly dnsResolvers?: readonly kplus.k8s.NetworkPolicyPeer[];
}

export class Prometheus extends Construct {
  static readonly COMPONENT = PROMETHEUS_COMPONENT;
  readonly component = Prometheus.COMPONENT;
  /** In-namespace Service name of the query API. */
  readonly serviceName = 'prometheus';
  readonly port = PROMETHEUS_PORT;
  readonly configMapName = 'prometheus-config';
  /** Rendered files exactly as shipped in the ConfigMap (promtool checks these bytes). */
  readonly files: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: PrometheusProps) {
    super(scope, id);
    const { config, scrapeTargets, clientComponent } = props;
    const p = config.monitoring.prometheus;
    const c = Prometheus.COMPONENT;
    const name = c;
    for (const t of scrapeTargets) {
      if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) {
        throw new Error(`'scrapeTargets' port of '${t.component}' (${t.port}) must be an integer in 1..65535`);
      }
    }

    this.files = {
      [PROMETHEUS_FILES.config]: renderPrometheusConfig(config),
      [PROMETHEUS_FILES.recordingRules]: renderRecordingRules(),
      [PROMETHEUS_FILES.alertRules]: renderAlertRules(config),
    };
    new k8s.KubeConfigMap(this, 'config', { metadata: meta(config, c, this.configMapName), data: { ...this.files } });

    serviceAccount(this, 'service-account', config, c);
    new k8s.KubeRole(this, 'role', { metadata: meta(config, c, `${name}-discovery`), rules: [DISCOVERY_RULE] });
    new k8s.KubeRoleBinding(this, 'role-binding', {
      metadata: meta(config, c, `${name}-discovery`),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: `${name}-discovery` },
      subjects: [{ kind: 'ServiceAccount', name, namespace: config.namespace }],
    });

    const web = k8s.IntOrString.fromString('web');
    const prometheus: kplus.k8s.Container = {
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
      resources: resourcesOf(p.resources),
      securityContext: containerSecurityContext(),
      volumeMounts: [
        { name: 'config', mountPath: PROMETHEUS_CONFIG_DIR, readOnly: true },
        { name: 'data', mountPath: '/prometheus' },
      ],
      // WAL replay after a restart can take minutes on a full volume: startup allows 10.
      startupProbe: httpProbe('/-/ready', 'web', { periodSeconds: 10, failureThreshold: 60, timeoutSeconds: 3 }),
      readinessProbe: httpProbe('/-/ready', 'web', { periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 3 }),
      livenessProbe: httpProbe('/-/healthy', 'web', { periodSeconds: 15, failureThreshold: 4, timeoutSeconds: 3 }),
    };
    const reloader: kplus.k8s.Container = {
      name: 'config-reload',
      image: p.reloaderImage,
      imagePullPolicy: 'IfNotPresent',
      args: [
        `--volume-dir=${PROMETHEUS_CONFIG_DIR}`,
        `--webhook-url=http://127.0.0.1:${PROMETHEUS_PORT}/-/reload`,
        `--web.listen-address=:${RELOADER_PORT}`,
      ],
      // Not named 'metrics': its counters are not worth a scrape target (the NetworkPolicy keeps the port in-pod).
      ports: [{ name: 'reloader', containerPort: RELOADER_PORT, protocol: 'TCP' }],
      resources: resourcesOf(RELOADER_RESOURCES),
      securityContext: containerSecurityContext(),
      volumeMounts: [{ name: 'config', mountPath: PROMETHEUS_CONFIG_DIR, readOnly: true }],
      readinessProbe: {
        httpGet: { path: '/metrics', port: k8s.IntOrString.fromString('reloader') },
        periodSeconds: 30,
        timeoutSeconds: 3,
      },
      livenessProbe: {
        tcpSocket: { port: k8s.IntOrString.fromString('reloader') },
        periodSeconds: 30,
        timeoutSeconds: 3,
      },
    };

    new k8s.KubeStatefulSet(this, 'statefulset', {
      metadata: meta(config, c, name),
      spec: {
        replicas: 1,
        serviceName: `${name}-headless`,
        selector: { matchLabels: selectorLabels(c) },
        podManagementPolicy: 'OrderedReady',
        updateStrategy: { type: 'RollingUpdate' },
        persistentVolumeClaimRetentionPolicy: { whenDeleted: 'Retain', whenScaled: 'Retain' },
        template: {
          metadata: {
            labels: meta(config, c, name).labels,
            annotations: {
              // Recorded for humans and rollouts; the sidecar reloads without a restart.
              'fastnext.io/prometheus-config-sha256': createHash('sha256')
                .update(Object.values(this.files).join('\0'))
                .digest('hex'),
            },
          },
          spec: {
            serviceAccountName: name,
            // Discovery reads the API: this pod alone mounts its ServiceAccount token.
            automountServiceAccountToken: true,
            securityContext: podSecurityContext(PROMETHEUS_UID),
            terminationGracePeriodSeconds: 300,
            topologySpreadConstraints: topologySpread(c),
            containers: [prometheus, reloader],
            // Prometheus writes only to /prometheus (the PVC): no emptyDir is needed.
            volumes: [{ name: 'config', configMap: { name: this.configMapName } }],
          },
        },
        volumeClaimTemplates: [dataVolumeClaim(config, c, p.storage)],
      },
    });

    const ports = [{ name: 'web', port: PROMETHEUS_PORT, targetPort: web, protocol: 'TCP' }];
    new k8s.KubeService(this, 'service', {
      metadata: meta(config, c, this.serviceName),
      spec: { type: 'ClusterIP', selector: selectorLabels(c), ports },
    });
    new k8s.KubeService(this, 'headless', {
      metadata: meta(config, c, `${name}-headless`),
      spec: { clusterIp: 'None', selector: selectorLabels(c), ports },
    });

    // One replica: a PDB would block every node drain, so there is none (Prometheus restarts in place).
    networkPolicy(this, 'network-policy', config, c, {
      ingress: [{ from: [podsOf(clientComponent)], ports: tcpPorts(PROMETHEUS_PORT) }],
      egress: [
        dnsEgress(props.dnsResolvers),
        // The API server is outside any pod selector; allow its ports to any address.
        { ports: tcpPorts(...API_SERVER_PORTS) },
        ...groupByComponent(scrapeTargets).map(([component, targetPorts]) => ({
          to: [podsOf(component)],
          ports: tcpPorts(...targetPorts),
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

/**
 * kube-state-metrics, optional in the bundled mode: the pod status series the OOM-kill and
 * crash-loop alerts read. It watches pods of this namespace only (`--namespaces`), so a
 * namespaced Role that lists and watches pods is all the access it needs: no ClusterRole,
 * as its "limited privileges" mode documents. `--metric-allowlist` keeps it to the series
 * the rules use (health-alerts.ts KUBE_STATE_METRICS), so cardinality stays small.
 *
 * Its pods are not annotated for the generic scrape job: Prometheus scrapes them in a job
 * of their own (prometheus-config.ts) that keeps the `pod`/`namespace` labels of the
 * objects kube-state-metrics describes, instead of overwriting them with its own.
 */
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import * as core from '../core';
import { KUBE_STATE_METRICS } from './health-alerts';

/** uid/gid `nobody` of the distroless kube-state-metrics image. */
export const KUBE_STATE_METRICS_UID = 65534;
export const KUBE_STATE_METRICS_PORT = 8080;
/** Its own telemetry (and readiness) port. */
export const KUBE_STATE_METRICS_TELEMETRY_PORT = 8081;
/** The container port Prometheus' kube-state-metrics job keeps. */
export const KUBE_STATE_METRICS_PORT_NAME = 'http-metrics';
/** Ports the kube-apiserver answers on (443 via the kubernetes Service, 6443 on most control planes). */
const API_SERVER_PORTS = [443, 6443];
/** What it watches: pods, in its namespace. */
export const KUBE_STATE_METRICS_RULE = { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] };

export type KubeStateMetricsSettings = core.ContainerSettings;

export const KUBE_STATE_METRICS_DEFAULTS: Required<KubeStateMetricsSettings> = {
  image: 'registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.13.0',
  resources: { requests: { cpu: '10m', memory: '32Mi' }, limits: { cpu: '100m', memory: '128Mi' } },
};

export interface KubeStateMetricsProps extends KubeStateMetricsSettings, core.WorkloadProps {
  /** Name of the Deployment, Service and component label. @default 'kube-state-metrics' */
  readonly name?: string;
  /** Pods allowed to scrape it. @default - the bundled Prometheus' pods */
  readonly scrapers?: readonly k8s.NetworkPolicyPeer[];
}

export class KubeStateMetrics extends Construct {
  static readonly COMPONENT = 'kube-state-metrics';
  readonly component: string;
  readonly port = KUBE_STATE_METRICS_PORT;

  constructor(scope: Construct, id: string, props: KubeStateMetricsProps = {}) {
    super(scope, id);
    const s = core.withDefaults(KUBE_STATE_METRICS_DEFAULTS, props);
    core.checkCommonSettings(s);
    const name = core.workloadName(props.name, KubeStateMetrics.COMPONENT);
    const c = name;
    const ns = core.namespaceOf(this);
    this.component = c;

    const sa = core.serviceAccount(this, 'service-account', c, props.pod?.serviceAccountAnnotations);
    new k8s.KubeRole(this, 'role', { metadata: core.meta(this, c, name), rules: [KUBE_STATE_METRICS_RULE] });
    new k8s.KubeRoleBinding(this, 'role-binding', {
      metadata: core.meta(this, c, name),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name: sa.name, namespace: ns }],
    });

    const container: k8s.Container = {
      name: 'kube-state-metrics',
      image: s.image,
      imagePullPolicy: 'IfNotPresent',
      args: [
        `--namespaces=${ns}`,
        `--resources=${KUBE_STATE_METRICS_RULE.resources.join(',')}`,
        `--metric-allowlist=${Object.values(KUBE_STATE_METRICS).join(',')}`,
        `--port=${KUBE_STATE_METRICS_PORT}`,
        `--telemetry-port=${KUBE_STATE_METRICS_TELEMETRY_PORT}`,
      ],
      ports: [
        { name: KUBE_STATE_METRICS_PORT_NAME, containerPort: KUBE_STATE_METRICS_PORT, protocol: 'TCP' },
        { name: 'telemetry', containerPort: KUBE_STATE_METRICS_TELEMETRY_PORT, protocol: 'TCP' },
      ],
      resources: core.resourcesOf(s.resources),
      securityContext: core.containerSecurityContext(),
      readinessProbe: core.httpProbe('/readyz', 'telemetry', {
        periodSeconds: 10,
        failureThreshold: 3,
        timeoutSeconds: 5,
      }),
      livenessProbe: core.httpProbe('/livez', KUBE_STATE_METRICS_PORT_NAME, {
        periodSeconds: 15,
        failureThreshold: 4,
        timeoutSeconds: 5,
      }),
    };
    new k8s.KubeDeployment(this, 'deployment', {
      metadata: core.workloadMeta(this, c, name, props),
      spec: core.deploymentSpec(c, {
        // One replica: its series are rebuilt from the API on restart; two would double every series.
        replicas: 1,
        template: core.podTemplate(
          this,
          c,
          'kube-state-metrics',
          props,
          {},
          {
            serviceAccountName: sa.name,
            // It reads the API: this pod mounts its ServiceAccount token.
            automountServiceAccountToken: true,
            securityContext: core.podSecurityContext(KUBE_STATE_METRICS_UID),
            topologySpreadConstraints: core.topologySpread(c),
            containers: [container],
          },
        ),
      }),
    });
    // No Service: Prometheus finds the pod through discovery (its own job), nothing else connects to it.
    core.networkPolicy(this, 'network-policy', c, {
      ingress: [
        {
          from: [...(props.scrapers ?? [core.podsOf(core.PROMETHEUS_COMPONENT)])],
          ports: core.tcpPorts(KUBE_STATE_METRICS_PORT),
        },
      ],
      egress: [core.dnsEgress(props.dnsResolvers), { ports: core.tcpPorts(...API_SERVER_PORTS) }],
    });
  }
}

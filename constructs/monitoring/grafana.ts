/**
 * Grafana: one replica (its state is provisioned, so an emptyDir data dir is
 * enough), the Prometheus datasource and dashboard provider from one ConfigMap,
 * and each dashboard from a ConfigMap of its own, all mounted read-only through
 * one projected volume. The admin password comes from a Secret generated in-cluster.
 */
import { createHash } from 'crypto';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import * as core from '../core';
import { dashboards, renderDashboard } from './dashboards';
import {
  GRAFANA_DASHBOARDS_DIR,
  renderGrafanaDashboardProvider,
  renderGrafanaDatasources,
} from './grafana-provisioning';
import type { MonitoredPlatform } from './monitored';

/** uid/gid of the grafana user in grafana/grafana. */
export const GRAFANA_UID = 472;
export const GRAFANA_PORT = 3000;
/** Keys of the admin Secret (`monitoring.grafana.adminSecret`). */
export const GRAFANA_ADMIN_KEYS = { user: 'admin-user', password: 'admin-password' } as const;
/**
 * The annotation limit kubectl's last-applied-configuration hits (262144 bytes);
 * every dashboard ConfigMap must stay well under it.
 */
export const DASHBOARD_CONFIGMAP_LIMIT_BYTES = 256 * 1024;

/** The settings of Grafana that have defaults (what an environment may override). */
export interface GrafanaSettings extends core.ContainerSettings {
  /** Secret with `admin-user` / `admin-password`; generated in-cluster when absent. @default 'grafana-admin' */
  readonly adminSecret?: string;
}

/** Defaults of every Grafana setting. */
export const GRAFANA_DEFAULTS: Required<GrafanaSettings> = {
  image: 'grafana/grafana:11.3.0',
  resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
  adminSecret: 'grafana-admin',
};

export interface GrafanaProps extends GrafanaSettings, core.WorkloadProps {
  /** Name of the Deployment, Service, ConfigMap prefix and component label. @default 'grafana' */
  readonly name?: string;
  /** The Prometheus Grafana queries. */
  readonly prometheus: core.ServiceEndpoint;
  /** What the dashboards show (tier bounds, thresholds, scrape interval). */
  readonly monitored: MonitoredPlatform;
}

export class Grafana extends Construct {
  /** Default component name. */
  static readonly COMPONENT = 'grafana';
  readonly component: string;
  readonly serviceName: string;
  readonly port = GRAFANA_PORT;
  /** The admin user and password Secret, generated in-cluster. */
  readonly adminSecret: core.GeneratedSecret;
  /** Dashboard ConfigMap names by dashboard short name. */
  readonly dashboardConfigMaps: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: GrafanaProps) {
    super(scope, id);
    const { prometheus, monitored } = props;
    const g = core.withDefaults(GRAFANA_DEFAULTS, props);
    core.checkCommonSettings(g);
    core.checkName('adminSecret', g.adminSecret);
    const name = core.workloadName(props.name, Grafana.COMPONENT);
    const c = name;
    this.component = c;
    this.serviceName = name;

    const provisioning = {
      'datasource-prometheus.yaml': renderGrafanaDatasources(
        prometheus,
        monitored.monitoring.prometheus.scrapeIntervalSeconds,
      ),
      'dashboards-provider.yaml': renderGrafanaDashboardProvider(),
    };
    new k8s.KubeConfigMap(this, 'provisioning', {
      metadata: core.meta(this, c, `${name}-provisioning`),
      data: provisioning,
    });

    const maps: Record<string, string> = {};
    const hash = createHash('sha256').update(Object.values(provisioning).join('\0'));
    for (const [short, dashboard] of Object.entries(dashboards(monitored))) {
      const cmName = `${name}-dashboard-${short}`;
      const json = renderDashboard(dashboard);
      if (Buffer.byteLength(json) > DASHBOARD_CONFIGMAP_LIMIT_BYTES / 2) {
        throw new Error(
          `dashboard '${short}' renders ${Buffer.byteLength(json)} bytes; keep it under ${DASHBOARD_CONFIGMAP_LIMIT_BYTES / 2} ` +
            '(half the 256 KiB annotation limit) by splitting it into two dashboards',
        );
      }
      new k8s.KubeConfigMap(this, `dashboard-${short}`, {
        metadata: core.meta(this, c, cmName, { labels: { 'fastnext.io/grafana-dashboard': short } }),
        data: { [`${short}.json`]: json },
      });
      maps[short] = cmName;
      hash.update(json);
    }
    this.dashboardConfigMaps = maps;

    // Created once by a Job when absent, never regenerated (constructs/core/generated-secret.ts).
    this.adminSecret = new core.GeneratedSecret(this, 'admin-secret', {
      dnsResolvers: props.dnsResolvers,
      secretName: g.adminSecret,
      keys: [GRAFANA_ADMIN_KEYS.user, GRAFANA_ADMIN_KEYS.password],
      pod: props.pod,
      imagePullSecrets: props.imagePullSecrets,
    });

    const http = k8s.IntOrString.fromString('http');
    const secretFile = (key: string) => `/etc/grafana/admin/${key}`;
    const env: Record<string, string> = {
      GF_PATHS_DATA: '/var/lib/grafana',
      GF_PATHS_LOGS: '/var/log/grafana',
      GF_PATHS_PLUGINS: '/var/lib/grafana/plugins',
      GF_PATHS_PROVISIONING: '/etc/grafana/provisioning',
      GF_SERVER_HTTP_PORT: String(GRAFANA_PORT),
      GF_SECURITY_ADMIN_USER__FILE: secretFile(GRAFANA_ADMIN_KEYS.user),
      GF_SECURITY_ADMIN_PASSWORD__FILE: secretFile(GRAFANA_ADMIN_KEYS.password),
      GF_USERS_ALLOW_SIGN_UP: 'false',
      GF_AUTH_ANONYMOUS_ENABLED: 'false',
      // No calls home from inside the cluster (the NetworkPolicy would drop them anyway).
      GF_ANALYTICS_REPORTING_ENABLED: 'false',
      GF_ANALYTICS_CHECK_FOR_UPDATES: 'false',
      GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES: 'false',
      GF_LOG_MODE: 'console',
    };
    const grafana: k8s.Container = {
      name: 'grafana',
      image: g.image,
      imagePullPolicy: 'IfNotPresent',
      ports: [{ name: 'http', containerPort: GRAFANA_PORT, protocol: 'TCP' }],
      env: Object.entries(env).map(([n, value]) => ({ name: n, value })),
      resources: core.resourcesOf(g.resources),
      securityContext: core.containerSecurityContext(),
      volumeMounts: [
        { name: 'provisioning', mountPath: '/etc/grafana/provisioning', readOnly: true },
        { name: 'dashboards', mountPath: GRAFANA_DASHBOARDS_DIR, readOnly: true },
        { name: 'admin', mountPath: '/etc/grafana/admin', readOnly: true },
        // Read-only root fs: Grafana's sqlite db, plugins, logs and temp files live in emptyDirs.
        { name: 'data', mountPath: '/var/lib/grafana' },
        { name: 'logs', mountPath: '/var/log/grafana' },
        { name: 'tmp', mountPath: '/tmp' },
      ],
      startupProbe: core.httpProbe('/api/health', 'http', {
        periodSeconds: 5,
        failureThreshold: 30,
        timeoutSeconds: 3,
      }),
      readinessProbe: core.httpProbe('/api/health', 'http', {
        periodSeconds: 10,
        failureThreshold: 3,
        timeoutSeconds: 3,
      }),
      livenessProbe: { tcpSocket: { port: http }, periodSeconds: 20, failureThreshold: 3, timeoutSeconds: 3 },
    };

    new k8s.KubeDeployment(this, 'deployment', {
      metadata: core.workloadMeta(this, c, name, props),
      spec: core.deploymentSpec(c, {
        // One replica: sessions and the sqlite db are per pod; dashboards come back from ConfigMaps on restart.
        replicas: 1,
        // Recreate: two pods would be harmless, but one is all the quota this tier asks for.
        strategy: { type: 'Recreate' },
        template: core.podTemplate(
          this,
          c,
          'grafana',
          props,
          {
            // Grafana reads provisioning only at start: a changed datasource or dashboard rolls the pod.
            annotations: { 'fastnext.io/grafana-config-sha256': hash.digest('hex') },
          },
          {
            serviceAccountName: name,
            automountServiceAccountToken: false,
            securityContext: core.podSecurityContext(GRAFANA_UID),
            topologySpreadConstraints: core.topologySpread(c),
            containers: [grafana],
            volumes: [
              {
                name: 'provisioning',
                configMap: {
                  name: `${name}-provisioning`,
                  items: [
                    { key: 'datasource-prometheus.yaml', path: 'datasources/prometheus.yaml' },
                    { key: 'dashboards-provider.yaml', path: 'dashboards/fastnext.yaml' },
                  ],
                },
              },
              {
                name: 'dashboards',
                projected: { sources: Object.values(maps).map((cm) => ({ configMap: { name: cm } })) },
              },
              {
                name: 'admin',
                secret: { secretName: this.adminSecret.secretName, defaultMode: 0o440 },
              },
              core.emptyDir('data', '1Gi'),
              core.emptyDir('logs', '64Mi'),
              core.emptyDir('tmp', '64Mi'),
            ],
          },
        ),
      }),
    });
    core.serviceAccount(this, 'service-account', c, props.pod?.serviceAccountAnnotations);

    new k8s.KubeService(this, 'service', {
      metadata: core.meta(this, c, this.serviceName),
      spec: {
        type: 'ClusterIP',
        selector: core.selectorLabels(c),
        ports: [{ name: 'http', port: GRAFANA_PORT, targetPort: http, protocol: 'TCP' }],
      },
    });

    core.networkPolicy(this, 'network-policy', c, {
      // Users reach Grafana through kubectl port-forward or an ingress; its login guards the port.
      ingress: [{ ports: core.tcpPorts(GRAFANA_PORT) }],
      egress: [
        core.dnsEgress(props.dnsResolvers),
        { to: [core.podsOf(prometheus.component)], ports: core.tcpPorts(prometheus.port) },
      ],
    });
  }
}

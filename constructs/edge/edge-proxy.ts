/**
 * The edge tier: nginx (unprivileged image, >= 1.27.3 for the `resolve`
 * upstream parameter) in front of the API's headless Service, with an
 * nginx-prometheus-exporter sidecar reading stub_status.
 */
import { createHash } from 'crypto';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
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
  httpProbe,
  podSecurityContext,
  topologySpread,
  withPodOptions,
} from '../core/pod';
import { checkResources, type Resources, resourcesOf } from '../core/quantity';
import { checkImage, checkInt, checkName, fail, withDefaults } from '../core/validate';
import {
  type AutoscalingProps,
  checkAutoscaling,
  horizontalPodAutoscaler,
  podDisruptionBudget,
  serviceAccount,
  type WorkloadProps,
  workloadName,
  type ScrapedProps,
} from '../core/workload';
import { EDGE_PATHS, EDGE_PORTS, type NginxSettings, renderNginxConf, SERVER_NAME } from './nginx-conf';

const k8s = kplus.k8s;

/** uid/gid of the nginx user in nginxinc/nginx-unprivileged. */
export const EDGE_UID = 101;

/** The settings of the edge tier that have defaults (what an environment may override). */
export interface EdgeProxySettings extends Partial<Omit<NginxSettings, 'tls'>> {
  /** nginx image (>= 1.27.3 for the `resolve` upstream parameter), pinned. @default 'nginxinc/nginx-unprivileged:1.28.0-alpine' */
  readonly image?: string;
  /** nginx-prometheus-exporter image, pinned. @default 'nginx/nginx-prometheus-exporter:1.4.2' */
  readonly exporterImage?: string;
  /** The autoscaler. @default 2–10 pods at CPU 70 % / memory 80 %, scale-down after 300 s */
  readonly autoscaling?: AutoscalingProps;
  /** Requests and limits of nginx. @default 100m/64Mi requested, 500m/128Mi limit */
  readonly resources?: Resources;
  /** Requests and limits of the exporter. @default 10m/16Mi requested, 100m/32Mi limit */
  readonly exporterResources?: Resources;
  /** Service type in front of nginx. @default 'LoadBalancer' */
  readonly serviceType?: 'LoadBalancer' | 'NodePort' | 'ClusterIP';
  /** Annotations of the edge Service (load-balancer settings of the cluster). @default - none */
  readonly serviceAnnotations?: Readonly<Record<string, string>>;
}

/** Defaults of every edge setting: production values. */
export const EDGE_PROXY_DEFAULTS: Required<EdgeProxySettings> = {
  image: 'nginxinc/nginx-unprivileged:1.28.0-alpine',
  exporterImage: 'nginx/nginx-prometheus-exporter:1.4.2',
  autoscaling: {
    minReplicas: 2,
    maxReplicas: 10,
    cpuTargetPercent: 70,
    memoryTargetPercent: 80,
    scaleDownStabilizationSeconds: 300,
  },
  resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '500m', memory: '128Mi' } },
  exporterResources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '32Mi' } },
  serviceType: 'LoadBalancer',
  serviceAnnotations: {},
  hostnames: [],
  rateLimit: { requestsPerSecond: 100, burst: 50 },
  upstreamKeepalive: 32,
  proxyTimeouts: { connectSeconds: 5, readSeconds: 60, sendSeconds: 60 },
  resolver: 'kube-dns.kube-system.svc.cluster.local',
};

export interface EdgeProxyProps extends EdgeProxySettings, WorkloadProps, ScrapedProps {
  /** Name of the Deployment, Service, ConfigMap prefix and component label. @default 'edge' */
  readonly name?: string;
  /** What nginx balances over: the API's headless Service (one A record per ready pod). */
  readonly upstream: ServiceEndpoint;
  /** TLS termination from a kubernetes.io/tls Secret (managed outside, e.g. by cert-manager). @default - plain HTTP */
  readonly tls?: { readonly secretName: string };
}

/** The edge tier. */
export class EdgeProxy extends Construct implements ServiceEndpoint {
  /** Default component name. */
  static readonly COMPONENT = 'edge';
  readonly component: string;
  /** Plain-HTTP port of the Service. */
  readonly port = 80;
  /** The rendered nginx.conf, exactly as shipped in the ConfigMap. */
  readonly nginxConf: string;
  readonly serviceName: string;
  /** In-cluster DNS name of the edge Service. */
  readonly host: string;
  readonly configMapName: string;

  constructor(scope: Construct, id: string, props: EdgeProxyProps) {
    super(scope, id);
    const { upstream, tls } = props;
    const edge = withDefaults(EDGE_PROXY_DEFAULTS, props);
    checkEdgeSettings(edge, tls);
    const name = workloadName(props.name, EdgeProxy.COMPONENT);
    const c = name;
    this.component = c;
    this.serviceName = name;
    this.host = serviceHost(this, name);
    this.configMapName = `${name}-nginx-conf`;
    this.nginxConf = renderNginxConf({
      edge: { ...edge, tls },
      apiHeadlessHost: upstream.host,
      apiPort: upstream.port,
    });

    serviceAccount(this, 'service-account', c, props.pod?.serviceAccountAnnotations);
    new k8s.KubeConfigMap(this, 'nginx-conf', {
      metadata: meta(this, c, this.configMapName),
      data: { 'nginx.conf': this.nginxConf },
    });

    const statusProbe = (periodSeconds: number, failureThreshold: number) =>
      httpProbe('/healthz', 'status', { periodSeconds, failureThreshold, timeoutSeconds: 2 });
    const ports: kplus.k8s.ContainerPort[] = [
      { name: 'http', containerPort: EDGE_PORTS.http, protocol: 'TCP' },
      ...(tls ? [{ name: 'https', containerPort: EDGE_PORTS.https, protocol: 'TCP' }] : []),
      { name: 'status', containerPort: EDGE_PORTS.status, protocol: 'TCP' },
    ];
    const nginx: kplus.k8s.Container = {
      name: 'nginx',
      image: edge.image,
      imagePullPolicy: 'IfNotPresent',
      // Skip the image's entrypoint scripts: they rewrite files under a read-only root fs.
      command: ['nginx', '-g', 'daemon off;', '-c', '/etc/nginx/nginx.conf'],
      ports,
      resources: resourcesOf(edge.resources),
      securityContext: containerSecurityContext(),
      volumeMounts: [
        { name: 'nginx-conf', mountPath: '/etc/nginx/nginx.conf', subPath: 'nginx.conf', readOnly: true },
        { name: 'scratch', mountPath: EDGE_PATHS.scratch },
        ...(tls ? [{ name: 'tls', mountPath: EDGE_PATHS.tls, readOnly: true }] : []),
      ],
      startupProbe: statusProbe(2, 15),
      // Liveness differs from readiness: a busy nginx that still accepts TCP is not restarted.
      livenessProbe: {
        tcpSocket: { port: k8s.IntOrString.fromString('status') },
        periodSeconds: 10,
        failureThreshold: 3,
        timeoutSeconds: 2,
      },
      readinessProbe: statusProbe(5, 2),
      // Let the load balancer stop sending new connections before nginx shuts down gracefully.
      lifecycle: { preStop: { exec: { command: ['sh', '-c', 'sleep 5 && nginx -s quit'] } } },
    };
    const exporter: kplus.k8s.Container = {
      name: 'exporter',
      image: edge.exporterImage,
      imagePullPolicy: 'IfNotPresent',
      args: [
        `--nginx.scrape-uri=http://127.0.0.1:${EDGE_PORTS.status}/stub_status`,
        `--web.listen-address=:${EDGE_PORTS.metrics}`,
      ],
      ports: [{ name: 'metrics', containerPort: EDGE_PORTS.metrics, protocol: 'TCP' }],
      resources: resourcesOf(edge.exporterResources),
      securityContext: containerSecurityContext(),
      livenessProbe: {
        tcpSocket: { port: k8s.IntOrString.fromString('metrics') },
        periodSeconds: 20,
        timeoutSeconds: 2,
      },
      readinessProbe: httpProbe('/metrics', 'metrics', { periodSeconds: 10, timeoutSeconds: 2 }),
    };

    new k8s.KubeDeployment(this, 'deployment', {
      // The TLS certificate comes from outside the platform (cert-manager or kubectl).
      metadata: meta(this, c, name, {
        annotations: externalSecretsAnnotations(props.pod, props.imagePullSecrets, tls ? [tls.secretName] : []),
      }),
      spec: {
        revisionHistoryLimit: 5,
        selector: { matchLabels: selectorLabels(c) },
        strategy: {
          type: 'RollingUpdate',
          rollingUpdate: { maxUnavailable: k8s.IntOrString.fromNumber(0), maxSurge: k8s.IntOrString.fromNumber(1) },
        },
        template: withPodOptions(
          {
            metadata: {
              labels: meta(this, c, name).labels,
              annotations: {
                ...scrapeAnnotations(EDGE_PORTS.metrics),
                // A changed nginx.conf rolls the pods (subPath mounts never see ConfigMap updates).
                'fastnext.io/nginx-conf-sha256': createHash('sha256').update(this.nginxConf).digest('hex'),
              },
            },
            spec: {
              serviceAccountName: name,
              automountServiceAccountToken: false,
              securityContext: podSecurityContext(EDGE_UID),
              terminationGracePeriodSeconds: 30,
              topologySpreadConstraints: topologySpread(c),
              containers: [nginx, exporter],
              volumes: [
                { name: 'nginx-conf', configMap: { name: this.configMapName } },
                emptyDir('scratch', '256Mi'),
                ...(tls ? [{ name: 'tls', secret: { secretName: tls.secretName } }] : []),
              ],
            },
          },
          'nginx',
          props.pod,
          props.imagePullSecrets,
        ),
      },
    });

    const servicePorts: kplus.k8s.ServicePort[] = [
      { name: 'http', port: 80, targetPort: k8s.IntOrString.fromString('http'), protocol: 'TCP' },
      ...(tls ? [{ name: 'https', port: 443, targetPort: k8s.IntOrString.fromString('https'), protocol: 'TCP' }] : []),
    ];
    new k8s.KubeService(this, 'service', {
      // Load-balancer annotations come from the cluster (a profile of the environment).
      metadata: meta(this, c, name, { annotations: { ...edge.serviceAnnotations } }),
      spec: {
        type: edge.serviceType,
        selector: selectorLabels(c),
        ports: servicePorts,
        // Keep client IPs visible to the per-client rate limit behind a cloud load balancer.
        ...(edge.serviceType === 'ClusterIP' ? {} : { externalTrafficPolicy: 'Local' }),
      },
    });

    horizontalPodAutoscaler(this, 'hpa', c, { kind: 'Deployment', name }, edge.autoscaling);
    podDisruptionBudget(this, 'pdb', c, 1);
    networkPolicy(this, 'network-policy', c, {
      ingress: [
        // Public traffic comes from anywhere (load balancer, node ports).
        { ports: tcpPorts(EDGE_PORTS.http, ...(tls ? [EDGE_PORTS.https] : [])) },
        { from: [...(props.scrapers ?? [podsOf(PROMETHEUS_COMPONENT)])], ports: tcpPorts(EDGE_PORTS.metrics) },
      ],
      egress: [dnsEgress(props.dnsResolvers), { to: [podsOf(upstream.component)], ports: tcpPorts(upstream.port) }],
    });
  }
}

function checkEdgeSettings(edge: Required<EdgeProxySettings>, tls: { readonly secretName: string } | undefined): void {
  checkImage('image', edge.image);
  checkImage('exporterImage', edge.exporterImage);
  checkAutoscaling('autoscaling', edge.autoscaling);
  checkResources('resources', edge.resources);
  checkResources('exporterResources', edge.exporterResources);
  edge.hostnames.forEach((h, i) => {
    if (h.length > 253 || !SERVER_NAME.test(h)) {
      fail(
        `hostnames[${i}]`,
        h,
        'must be a lowercase DNS name such as api.example.com, or a wildcard such as *.example.com',
      );
    }
  });
  checkInt('rateLimit.requestsPerSecond', edge.rateLimit.requestsPerSecond, 1);
  checkInt('rateLimit.burst', edge.rateLimit.burst, 0);
  if (tls) checkName('tls.secretName', tls.secretName);
  checkInt('upstreamKeepalive', edge.upstreamKeepalive, 1);
  for (const [key, value] of Object.entries(edge.proxyTimeouts)) checkInt(`proxyTimeouts.${key}`, value, 1);
}

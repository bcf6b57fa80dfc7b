/**
 * The edge tier: nginx (unprivileged image, >= 1.27.3 for the `resolve`
 * upstream parameter) in front of the API's headless Service, with an
 * nginx-prometheus-exporter sidecar reading stub_status.
 */
import { createHash } from 'crypto';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import type { EnvironmentConfig } from '../../stacks/config';
import {
  containerSecurityContext,
  httpProbe,
  dnsEgress,
  emptyDir,
  horizontalPodAutoscaler,
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
import { EDGE_PATHS, EDGE_PORTS, renderNginxConf } from './nginx-conf';
import { EXTERNAL_SECRETS_ANNOTATION } from '../core/generated-secret';

const k8s = kplus.k8s;

/** uid/gid of the nginx user in nginxinc/nginx-unprivileged. */
export const EDGE_UID = 101;

export interface EdgeProxyProps {
  readonly config: EnvironmentConfig;
  /** The API tier's headless Service host and port, and its component name (for the NetworkPolicy). */
  readonly upstream: { readonly headlessHost: string; readonly port: number; readonly component: string };
  /**
   * Where the pods may send DNS queries (UDP and TCP 53).
   * @default DEFAULT_DNS_RESOLVER_PEERS: kube-dns and node-local-dns pods, 169.254.20.10/32, 169.254.169.254/32
   */
  readonly dnsResolvers?: readonly kplus.k8s.NetworkPolicyPeer[];
}

/** The edge tier. */
export class EdgeProxy extends Construct {
  static readonly COMPONENT = 'edge';
  readonly component = EdgeProxy.COMPONENT;
  /** The rendered nginx.conf, exactly as shipped in the ConfigMap. */
  readonly nginxConf: string;
  readonly serviceName: string;
  /** In-cluster DNS name of the edge Service. */
  readonly host: string;
  readonly configMapName: string;

  constructor(scope: Construct, id: string, props: EdgeProxyProps) {
    super(scope, id);
    const { config, upstream } = props;
    const edge = config.edge;
    const c = EdgeProxy.COMPONENT;
    const name = c;
    this.serviceName = name;
    this.host = `${name}.${config.namespace}.svc.cluster.local`;
    this.configMapName = `${name}-nginx-conf`;
    this.nginxConf = renderNginxConf({ edge, apiHeadlessHost: upstream.headlessHost, apiPort: upstream.port });
    const tls = edge.tls;

    serviceAccount(this, 'service-account', config, c);
    new k8s.KubeConfigMap(this, 'nginx-conf', {
      metadata: meta(config, c, this.configMapName),
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
      metadata: meta(config, c, name, tls ? { annotations: { [EXTERNAL_SECRETS_ANNOTATION]: tls.secretName } } : {}),
      spec: {
        revisionHistoryLimit: 5,
        selector: { matchLabels: selectorLabels(c) },
        strategy: {
          type: 'RollingUpdate',
          rollingUpdate: { maxUnavailable: k8s.IntOrString.fromNumber(0), maxSurge: k8s.IntOrString.fromNumber(1) },
        },
        template: {
          metadata: {
            labels: meta(config, c, name).labels,
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
      },
    });

    const servicePorts: kplus.k8s.ServicePort[] = [
      { name: 'http', port: 80, targetPort: k8s.IntOrString.fromString('http'), protocol: 'TCP' },
      ...(tls ? [{ name: 'https', port: 443, targetPort: k8s.IntOrString.fromString('https'), protocol: 'TCP' }] : []),
    ];
    new k8s.KubeService(this, 'service', {
      // Load-balancer annotations come from the cluster profile (or the environment).
      metadata: meta(
        config,
        c,
        name,
        Object.keys(edge.serviceAnnotations).length > 0 ? { annotations: edge.serviceAnnotations } : {},
      ),
      spec: {
        type: edge.serviceType,
        selector: selectorLabels(c),
        ports: servicePorts,
        // Keep client IPs visible to the per-client rate limit behind a cloud load balancer.
        ...(edge.serviceType === 'ClusterIP' ? {} : { externalTrafficPolicy: 'Local' }),
      },
    });

    horizontalPodAutoscaler(this, 'hpa', config, c, { kind: 'Deployment', name }, edge.autoscaling);
    podDisruptionBudget(this, 'pdb', config, c, 1);
    networkPolicy(this, 'network-policy', config, c, {
      ingress: [
        // Public traffic comes from anywhere (load balancer, node ports).
        { ports: tcpPorts(EDGE_PORTS.http, ...(tls ? [EDGE_PORTS.https] : [])) },
        { from: [podsOf(PROMETHEUS_COMPONENT)], ports: tcpPorts(EDGE_PORTS.metrics) },
      ],
      egress: [dnsEgress(props.dnsResolvers), { to: [podsOf(upstream.component)], ports: tcpPorts(upstream.port) }],
    });
  }
}

/**
 * The edge tier: nginx (unprivileged image, >= 1.27.3 for the `resolve`
 * upstream parameter) in front of the API's headless Service, with an
 * nginx-prometheus-exporter sidecar reading stub_status and, with TLS, a
 * cert-reload sidecar that reloads nginx when its certificate is renewed.
 * Optionally attached to a Gateway (Gateway API HTTPRoute).
 */
import { createHash } from 'crypto';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import * as core from '../core';
import { CERT_RELOAD_KEY, CERT_RELOAD_PATH, certReloadProbes, renderCertReloadScript } from './cert-reload';
import {
  DEFAULT_CERT_RELOAD_CHECK_SECONDS,
  EDGE_PROXY_DEFAULTS,
  edgeProblems,
  type EdgeProxySettings,
  type EdgeTlsProps,
  type GatewayRef,
} from './edge-settings';
import { httpRoute } from './gateway-route';
import { EDGE_PATHS, EDGE_PORTS, type RealIpSettings, renderNginxConf, SERVER_NAME, workersFor } from './nginx-conf';

export {
  EDGE_EXPOSE,
  EDGE_PROXY_DEFAULTS,
  type EdgeExpose,
  type EdgeProxySettings,
  type EdgeTlsProps,
  type GatewayRef,
} from './edge-settings';

/** uid/gid of the nginx user in nginxinc/nginx-unprivileged. */
export const EDGE_UID = 101;

export interface EdgeProxyProps extends EdgeProxySettings, core.WorkloadProps, core.ScrapedProps {
  /** Name of the Deployment, Service, ConfigMap prefix and component label. @default 'edge' */
  readonly name?: string;
  /** What nginx balances over: the API's headless Service (one A record per ready pod). */
  readonly upstream: core.ServiceEndpoint;
  /**
   * TLS termination from a kubernetes.io/tls Secret (managed outside, e.g. by cert-manager),
   * with HTTP/2; a sidecar reloads nginx when the Secret is renewed. @default - plain HTTP
   */
  readonly tls?: EdgeTlsProps;
  /** The client's address from a trusted load balancer (X-Forwarded-For or PROXY protocol). @default - the peer address (off) */
  readonly realIp?: RealIpSettings;
  /** The Gateway the HTTPRoute attaches to; required with `expose: 'gateway'`. @default - none */
  readonly gateway?: GatewayRef;
}

/** The edge tier. */
export class EdgeProxy extends Construct implements core.ServiceEndpoint {
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
  /** The cert-reload script, exactly as shipped in the ConfigMap; undefined without TLS. */
  readonly certReloadScript?: string;

  constructor(scope: Construct, id: string, props: EdgeProxyProps) {
    super(scope, id);
    const { upstream, tls, realIp, gateway } = props;
    const settings = core.withDefaults(EDGE_PROXY_DEFAULTS, props);
    // Nested settings given in part keep the defaults of what they leave out.
    const edge = {
      ...settings,
      rateLimit: { ...EDGE_PROXY_DEFAULTS.rateLimit, ...settings.rateLimit },
      gzip: { ...EDGE_PROXY_DEFAULTS.gzip, ...settings.gzip },
    };
    checkEdgeSettings(edge, tls);
    const problem = edgeProblems({ ...edge, tls, realIp, gateway })[0];
    if (problem) core.fail(problem.path, problem.value, problem.message);
    const name = core.workloadName(props.name, EdgeProxy.COMPONENT);
    const c = name;
    this.component = c;
    this.serviceName = name;
    this.host = core.serviceHost(this, name);
    this.configMapName = `${name}-nginx-conf`;
    this.nginxConf = renderNginxConf({
      edge: { ...edge, tls, realIp },
      workerProcesses: workersFor(edge.resources.limits.cpu),
      apiHeadlessHost: upstream.host,
      apiPort: upstream.port,
    });
    const certReloadInput = { checkSeconds: tls?.reloadCheckSeconds ?? DEFAULT_CERT_RELOAD_CHECK_SECONDS };
    this.certReloadScript = tls ? renderCertReloadScript(certReloadInput) : undefined;

    core.serviceAccount(this, 'service-account', c, props.pod?.serviceAccountAnnotations);
    new k8s.KubeConfigMap(this, 'nginx-conf', {
      metadata: core.meta(this, c, this.configMapName),
      data: {
        'nginx.conf': this.nginxConf,
        ...(this.certReloadScript ? { [CERT_RELOAD_KEY]: this.certReloadScript } : {}),
      },
    });

    const statusProbe = (periodSeconds: number, failureThreshold: number) =>
      core.httpProbe('/healthz', 'status', { periodSeconds, failureThreshold, timeoutSeconds: 2 });
    const ports: k8s.ContainerPort[] = [
      { name: 'http', containerPort: EDGE_PORTS.http, protocol: 'TCP' },
      ...(tls ? [{ name: 'https', containerPort: EDGE_PORTS.https, protocol: 'TCP' }] : []),
      { name: 'status', containerPort: EDGE_PORTS.status, protocol: 'TCP' },
    ];
    const nginx: k8s.Container = {
      name: 'nginx',
      image: edge.image,
      imagePullPolicy: 'IfNotPresent',
      // Skip the image's entrypoint scripts: they rewrite files under a read-only root fs.
      command: ['nginx', '-g', 'daemon off;', '-c', '/etc/nginx/nginx.conf'],
      ports,
      resources: core.resourcesOf(edge.resources),
      securityContext: core.containerSecurityContext(),
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
    const exporter: k8s.Container = {
      name: 'exporter',
      image: edge.exporterImage,
      imagePullPolicy: 'IfNotPresent',
      args: [
        `--nginx.scrape-uri=http://127.0.0.1:${EDGE_PORTS.status}/stub_status`,
        `--web.listen-address=:${EDGE_PORTS.metrics}`,
      ],
      ports: [{ name: 'metrics', containerPort: EDGE_PORTS.metrics, protocol: 'TCP' }],
      resources: core.resourcesOf(edge.exporterResources),
      securityContext: core.containerSecurityContext(),
      livenessProbe: {
        tcpSocket: { port: k8s.IntOrString.fromString('metrics') },
        periodSeconds: 20,
        timeoutSeconds: 2,
      },
      readinessProbe: core.httpProbe('/metrics', 'metrics', { periodSeconds: 10, timeoutSeconds: 2 }),
    };
    // The nginx image's own shell runs the loop (no second image to pin); it signals nginx's
    // master, which needs the pod's one process namespace and the same user (no capability).
    const probes = certReloadProbes(certReloadInput);
    const certReload: k8s.Container | undefined = tls && {
      name: 'cert-reload',
      image: edge.image,
      imagePullPolicy: 'IfNotPresent',
      command: ['sh', CERT_RELOAD_PATH],
      resources: core.resourcesOf(edge.certReloadResources),
      securityContext: core.containerSecurityContext(),
      volumeMounts: [
        { name: 'nginx-conf', mountPath: CERT_RELOAD_PATH, subPath: CERT_RELOAD_KEY, readOnly: true },
        // nginx.pid (which process to signal) and the loop's heartbeat.
        { name: 'scratch', mountPath: EDGE_PATHS.scratch },
        { name: 'tls', mountPath: EDGE_PATHS.tls, readOnly: true },
      ],
      readinessProbe: { exec: { command: probes.readiness }, periodSeconds: 10, timeoutSeconds: 2 },
      livenessProbe: { exec: { command: probes.liveness }, periodSeconds: 20, timeoutSeconds: 2, failureThreshold: 3 },
    };

    new k8s.KubeDeployment(this, 'deployment', {
      // The TLS certificate comes from outside the platform (cert-manager or kubectl).
      metadata: core.workloadMeta(this, c, name, props, tls ? [tls.secretName] : []),
      spec: core.deploymentSpec(c, {
        strategy: core.surgeRollout(1),
        template: core.podTemplate(
          this,
          c,
          'nginx',
          props,
          {
            annotations: {
              ...core.scrapeAnnotations(EDGE_PORTS.metrics),
              // A changed nginx.conf or script rolls the pods (subPath mounts never see ConfigMap updates).
              'fastnext.io/nginx-conf-sha256': createHash('sha256')
                .update(this.nginxConf)
                .update(this.certReloadScript ?? '')
                .digest('hex'),
            },
          },
          {
            serviceAccountName: name,
            automountServiceAccountToken: false,
            // The cert-reload sidecar signals nginx's master: one process namespace for the pod.
            ...(certReload ? { shareProcessNamespace: true } : {}),
            securityContext: core.podSecurityContext(EDGE_UID),
            terminationGracePeriodSeconds: 30,
            topologySpreadConstraints: core.topologySpread(c),
            containers: [nginx, exporter, ...(certReload ? [certReload] : [])],
            volumes: [
              { name: 'nginx-conf', configMap: { name: this.configMapName } },
              core.emptyDir('scratch', '256Mi'),
              ...(tls ? [{ name: 'tls', secret: { secretName: tls.secretName } }] : []),
            ],
          },
        ),
      }),
    });

    const servicePorts: k8s.ServicePort[] = [
      { name: 'http', port: 80, targetPort: k8s.IntOrString.fromString('http'), protocol: 'TCP' },
      ...(tls ? [{ name: 'https', port: 443, targetPort: k8s.IntOrString.fromString('https'), protocol: 'TCP' }] : []),
    ];
    new k8s.KubeService(this, 'service', {
      // Load-balancer annotations come from the cluster (a profile of the environment).
      metadata: core.meta(this, c, name, { annotations: { ...edge.serviceAnnotations } }),
      spec: {
        type: edge.serviceType,
        selector: core.selectorLabels(c),
        ports: servicePorts,
        // Keep client IPs visible to the per-client rate limit behind a cloud load balancer.
        ...(edge.serviceType === 'ClusterIP' ? {} : { externalTrafficPolicy: 'Local' }),
      },
    });
    if (edge.expose === 'gateway' && gateway) {
      httpRoute(this, 'http-route', {
        metadata: core.meta(this, c, name),
        gateway,
        hostnames: edge.hostnames,
        service: { name, port: this.port },
      });
    }

    core.horizontalPodAutoscaler(this, 'hpa', c, { kind: 'Deployment', name }, edge.autoscaling);
    core.podDisruptionBudget(this, 'pdb', c, 1);
    core.networkPolicy(this, 'network-policy', c, {
      ingress: [
        // Public traffic comes from anywhere (load balancer, node ports).
        { ports: core.tcpPorts(EDGE_PORTS.http, ...(tls ? [EDGE_PORTS.https] : [])) },
        {
          from: [...(props.scrapers ?? [core.podsOf(core.PROMETHEUS_COMPONENT)])],
          ports: core.tcpPorts(EDGE_PORTS.metrics),
        },
      ],
      egress: [
        core.dnsEgress(props.dnsResolvers),
        { to: [core.podsOf(upstream.component)], ports: core.tcpPorts(upstream.port) },
      ],
    });
  }
}

function checkEdgeSettings(edge: Required<EdgeProxySettings>, tls: EdgeTlsProps | undefined): void {
  core.checkCommonSettings(edge);
  core.checkAutoscaling('autoscaling', edge.autoscaling);
  edge.hostnames.forEach((h, i) => {
    if (h.length > 253 || !SERVER_NAME.test(h)) {
      core.fail(
        `hostnames[${i}]`,
        h,
        'must be a lowercase DNS name such as api.example.com, or a wildcard such as *.example.com',
      );
    }
  });
  core.checkInt('rateLimit.requestsPerSecond', edge.rateLimit.requestsPerSecond, 1);
  core.checkInt('rateLimit.burst', edge.rateLimit.burst, 0);
  if (tls) core.checkName('tls.secretName', tls.secretName);
  core.checkInt('upstreamKeepalive', edge.upstreamKeepalive, 1);
  for (const [key, value] of Object.entries(edge.proxyTimeouts)) core.checkInt(`proxyTimeouts.${key}`, value, 1);
}

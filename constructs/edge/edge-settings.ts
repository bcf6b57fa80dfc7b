import * as core from '../core';
import type { NginxSettings, RealIpSettings } from './nginx-conf';
import { CIDR_FORMAT, rateLimitProblems, type SettingProblem } from './rate-limit';

/** How traffic reaches the edge Service. */
export const EDGE_EXPOSE = ['service', 'gateway'] as const;
export type EdgeExpose = (typeof EDGE_EXPOSE)[number];

/** The settings of the edge tier that have defaults (what an environment may override). */
export interface EdgeProxySettings
  extends Partial<Omit<NginxSettings, 'tls' | 'realIp'>>, core.ContainerSettings, core.ExporterSettings {
  /** The autoscaler. @default 2–10 pods at CPU 70 % / memory 80 %, scale-down after 300 s */
  readonly autoscaling?: core.AutoscalingProps;
  /** Requests and limits of the cert-reload sidecar (with `tls` only). @default 5m/8Mi requested, 50m/16Mi limit */
  readonly certReloadResources?: core.Resources;
  /** Service type in front of nginx. @default 'LoadBalancer' */
  readonly serviceType?: 'LoadBalancer' | 'NodePort' | 'ClusterIP';
  /** Annotations of the edge Service (load-balancer settings of the cluster). @default - none */
  readonly serviceAnnotations?: Readonly<Record<string, string>>;
  /**
   * `service`: clients reach the edge Service (its type decides how). `gateway`: an
   * HTTPRoute (gateway.networking.k8s.io/v1) attaches the edge Service to the Gateway
   * named in `gateway`, which terminates TLS. @default 'service'
   */
  readonly expose?: EdgeExpose;
}

/** Defaults of every edge setting: production values. */
export const EDGE_PROXY_DEFAULTS: Required<EdgeProxySettings> = {
  // nginx >= 1.27.3: the `resolve` upstream parameter and `http2 on;`.
  image: 'nginxinc/nginx-unprivileged:1.28.0-alpine',
  exporterImage: 'nginx/nginx-prometheus-exporter:1.4.2',
  autoscaling: { minReplicas: 2, maxReplicas: 10, ...core.AUTOSCALING_TARGETS },
  resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '500m', memory: '128Mi' } },
  exporterResources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { cpu: '100m', memory: '32Mi' } },
  certReloadResources: { requests: { cpu: '5m', memory: '8Mi' }, limits: { cpu: '50m', memory: '16Mi' } },
  serviceType: 'LoadBalancer',
  serviceAnnotations: {},
  expose: 'service',
  hostnames: [],
  rateLimit: { requestsPerSecond: 100, burst: 50, allowlist: [], routes: [] },
  http2: true,
  // Level 1: most of the saving for the least CPU. Below ~1 KB a body fits one TCP segment
  // (MSS 1448) compressed or not, so gzip would cost CPU and save no round trip.
  gzip: { enabled: true, minLengthBytes: 1024, level: 1 },
  // Idle connections kept per worker: enough for the requests one worker has in flight at once, or
  // each one past it opens and closes an upstream connection (32 did that for 4 % of requests at
  // 3,000 req/s over 100 clients; 128 cut the edge's CPU per request 13 %, bench/results.md).
  // ingress-nginx keeps 320.
  upstreamKeepalive: 128,
  proxyTimeouts: { connectSeconds: 5, readSeconds: 60, sendSeconds: 60 },
  resolver: 'kube-dns.kube-system.svc.cluster.local',
};

/** TLS termination at the edge. */
export interface EdgeTlsProps {
  /** A kubernetes.io/tls Secret (managed outside, e.g. by cert-manager). */
  readonly secretName: string;
  /**
   * Seconds between two looks of the cert-reload sidecar at the Secret's files: nginx
   * serves a renewed certificate within this (plus the kubelet's own delay in updating
   * the volume, about a minute). @default 2
   */
  readonly reloadCheckSeconds?: number;
}

/** The Gateway an HTTPRoute attaches the edge to (`expose: 'gateway'`). */
export interface GatewayRef {
  /** Name of the Gateway. */
  readonly name: string;
  /** Its namespace (it must allow routes from the edge's). @default - the edge's namespace */
  readonly namespace?: string;
  /** One of its listeners. @default - every listener that admits the route */
  readonly sectionName?: string;
}

export const DEFAULT_CERT_RELOAD_CHECK_SECONDS = 2;

/** The error of `expose: 'gateway'` without a Gateway name. */
export const GATEWAY_NAME_REQUIRED =
  "is required with expose 'gateway': name the Gateway the HTTPRoute attaches to, e.g. gateway: { name: 'shared-gateway', namespace: 'infra' }";

/** The settings the checks read: the resolved settings plus the optional blocks. */
export interface EdgeCheckInput {
  readonly rateLimit: NginxSettings['rateLimit'];
  readonly gzip: NginxSettings['gzip'];
  readonly expose: EdgeExpose;
  readonly serviceType: string;
  readonly image: string;
  readonly tls?: EdgeTlsProps;
  readonly realIp?: RealIpSettings;
  readonly gateway?: GatewayRef;
}

/** nginx >= 1.27.3: the conf uses `resolve` on the upstream server (1.27.3) and `http2 on;` (1.25.1). */
const MIN_NGINX = [1, 27, 3] as const;

/** Problems of the edge settings beyond each field's own type and range. */
export function edgeProblems(e: EdgeCheckInput): SettingProblem[] {
  const problems: SettingProblem[] = [];
  const add = (path: string, value: unknown, message: string) => problems.push({ path, value, message });

  // An nginx image whose tag starts with its version (nginx:1.28.0-alpine, registry:5000/nginx-unprivileged:1.27.4).
  const ref = e.image.split('@')[0];
  const colon = ref.indexOf(':', ref.lastIndexOf('/') + 1);
  const repo = colon === -1 ? ref : ref.slice(0, colon);
  const version = colon === -1 ? null : /^(\d+)\.(\d+)\.(\d+)/.exec(ref.slice(colon + 1));
  if (version && /(^|\/)nginx[^/]*$/.test(repo)) {
    if (core.versionBefore(version.slice(1, 4).map(Number), MIN_NGINX)) {
      add(
        'image',
        e.image,
        `must be nginx >= ${MIN_NGINX.join('.')}: nginx.conf uses \`resolve\` on the upstream server and \`http2 on;\``,
      );
    }
  }
  for (const p of rateLimitProblems(e.rateLimit)) add(`rateLimit.${p.path}`, p.value, p.message);
  if (!Number.isInteger(e.gzip.minLengthBytes) || e.gzip.minLengthBytes < 0) {
    add(
      'gzip.minLengthBytes',
      e.gzip.minLengthBytes,
      'must be an integer >= 0 (bytes; 1024 compresses what does not fit one TCP segment)',
    );
  }
  if (!Number.isInteger(e.gzip.level) || e.gzip.level < 1 || e.gzip.level > 9) {
    add('gzip.level', e.gzip.level, 'must be an integer from 1 (fastest) to 9 (smallest)');
  }
  if (e.realIp) {
    if (e.realIp.trustedProxies.length === 0) {
      add(
        'realIp.trustedProxies',
        e.realIp.trustedProxies,
        "is empty: list the load balancer's CIDRs (only they may name the client), or leave realIp out",
      );
    }
    e.realIp.trustedProxies.forEach((c, i) => {
      if (!core.isCidr(c)) add(`realIp.trustedProxies[${i}]`, c, CIDR_FORMAT);
    });
    if (e.realIp.header !== 'X-Forwarded-For' && e.realIp.header !== 'proxy_protocol') {
      add('realIp.header', e.realIp.header, "must be 'X-Forwarded-For' or 'proxy_protocol'");
    }
  }
  if (e.tls?.reloadCheckSeconds !== undefined) {
    const s = e.tls.reloadCheckSeconds;
    if (!Number.isInteger(s) || s < 1 || s > 300) add('tls.reloadCheckSeconds', s, 'must be an integer from 1 to 300');
  }
  if (e.expose === 'gateway') {
    if (!e.gateway?.name) {
      add('gateway.name', e.gateway?.name ?? '', GATEWAY_NAME_REQUIRED);
    }
    if (e.tls) {
      add(
        'tls',
        e.tls,
        "cannot be combined with expose 'gateway': the Gateway terminates TLS (its listener's certificateRefs); remove edge.tls",
      );
    }
    if (e.serviceType !== 'ClusterIP') {
      add(
        'serviceType',
        e.serviceType,
        "must be 'ClusterIP' with expose 'gateway': the Gateway is the load balancer in front of the edge Service",
      );
    }
  } else if (e.expose !== 'service') {
    add('expose', e.expose, "must be 'service' or 'gateway'");
  } else if (e.gateway) {
    add(
      'gateway',
      e.gateway,
      "is set but expose is 'service': set expose 'gateway' to attach the edge to it, or remove gateway",
    );
  }
  if (e.gateway?.name && (e.gateway.name.length > 253 || !core.DNS1123_SUBDOMAIN.test(e.gateway.name))) {
    add('gateway.name', e.gateway.name, "must be a lowercase DNS name (the Gateway object's name)");
  }
  if (
    e.gateway?.namespace !== undefined &&
    (e.gateway.namespace.length > 63 || !core.DNS1123_LABEL.test(e.gateway.namespace))
  ) {
    add('gateway.namespace', e.gateway.namespace, 'must be a DNS-1123 label (a namespace name)');
  }
  if (
    e.gateway?.sectionName !== undefined &&
    (e.gateway.sectionName.length > 253 || !core.DNS1123_SUBDOMAIN.test(e.gateway.sectionName))
  ) {
    add(
      'gateway.sectionName',
      e.gateway.sectionName,
      "must be the name of one of the Gateway's listeners (a lowercase DNS name)",
    );
  }
  return problems;
}

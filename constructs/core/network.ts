/**
 * How tiers reach each other: the endpoint a tier hands its clients, and the
 * NetworkPolicy pieces (peers, ports, DNS egress) that open exactly those flows.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import { meta, selectorLabels } from './labels';

/** A port of a component's pods (what a NetworkPolicy opens, what Prometheus scrapes). */
export interface PodPort {
  /** Component name of the pods (label `app.kubernetes.io/name`). */
  readonly component: string;
  readonly port: number;
}

/** A tier as its clients see it: an in-cluster DNS name, a port, and the pods behind them. */
export interface ServiceEndpoint extends PodPort {
  /** In-cluster DNS name of the Service. */
  readonly host: string;
}

/** Name of the bundled Prometheus component; by default its pods may scrape every metrics port. */
export const PROMETHEUS_COMPONENT = 'prometheus';

/** NetworkPolicy peer: pods of a component in the same namespace. */
export function podsOf(component: string): k8s.NetworkPolicyPeer {
  return { podSelector: { matchLabels: selectorLabels(component) } };
}

/**
 * Where pods send DNS queries, as written in config: a CIDR (`169.254.20.10/32`) for a
 * host-network or link-local resolver, or a pod label selector (`k8s-app=kube-dns`,
 * any namespace; `kube-system/k8s-app=kube-dns` for one namespace) for resolver pods.
 */
export type DnsResolver = string;

/**
 * Resolvers that cover the clusters people run: kube-dns/CoreDNS pods; `node-local-dns` pods
 * (Cilium's local redirect); NodeLocal DNSCache's link-local address; GKE Cloud DNS's
 * metadata-server address. No pod selector matches a link-local address, so a policy naming
 * only the kube-dns pods breaks every lookup on a node-local resolver.
 */
export const DEFAULT_DNS_RESOLVERS: readonly DnsResolver[] = [
  'k8s-app=kube-dns',
  'k8s-app=node-local-dns',
  '169.254.20.10/32',
  '169.254.169.254/32',
];

const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** What a resolver must look like (the tail of every error about one). */
export const DNS_RESOLVER_FORMAT =
  'must be a CIDR such as "169.254.20.10/32" or a pod label selector such as "k8s-app=kube-dns" (or "kube-system/k8s-app=kube-dns")';

/** Whether `s` is an IPv4 or IPv6 CIDR (`169.254.20.10/32`, `fd00::a/128`). */
export function isCidr(s: string): boolean {
  const [address, bits, ...rest] = s.split('/');
  const maxBits = isIPv4(address) ? 32 : isIPv6(address) ? 128 : -1;
  return rest.length === 0 && /^\d{1,3}$/.test(bits ?? '') && Number(bits) <= maxBits;
}

/** The NetworkPolicy peer of one resolver, or undefined when it is neither a CIDR nor a label selector. */
export function dnsResolverPeer(resolver: DnsResolver): k8s.NetworkPolicyPeer | undefined {
  if (isCidr(resolver)) return { ipBlock: { cidr: resolver } };
  const slash = resolver.indexOf('/');
  // `<namespace>/` before the selector: a name without dots. A label key's prefix has dots (app.kubernetes.io/name).
  const hasNamespace = slash !== -1 && slash < resolver.indexOf('=') && !resolver.slice(0, slash).includes('.');
  const namespace = hasNamespace ? resolver.slice(0, slash) : undefined;
  const selector = hasNamespace ? resolver.slice(slash + 1) : resolver;
  if (namespace !== undefined && !NAMESPACE.test(namespace)) return undefined;
  const matchLabels: Record<string, string> = {};
  for (const term of selector.split(',')) {
    const [key, value, ...rest] = term.split('=');
    if (rest.length > 0 || value === undefined || !LABEL_KEY.test(key) || !LABEL_VALUE.test(value)) return undefined;
    matchLabels[key] = value;
  }
  return {
    namespaceSelector: namespace ? { matchLabels: { 'kubernetes.io/metadata.name': namespace } } : {},
    podSelector: { matchLabels },
  };
}

/** The peers of a resolver list; throws naming the first entry that is neither a CIDR nor a label selector. */
export function dnsResolverPeers(resolvers: readonly DnsResolver[]): k8s.NetworkPolicyPeer[] {
  return resolvers.map((r, i) => {
    const peer = dnsResolverPeer(r);
    if (!peer) throw new Error(`'dnsResolvers[${i}]' (${JSON.stringify(r)}) ${DNS_RESOLVER_FORMAT}`);
    return peer;
  });
}

/** The peers of DEFAULT_DNS_RESOLVERS: what a construct allows DNS to when its props name none. */
export const DEFAULT_DNS_RESOLVER_PEERS: readonly k8s.NetworkPolicyPeer[] = dnsResolverPeers(DEFAULT_DNS_RESOLVERS);

/** Egress rule allowing DNS (UDP and TCP 53) to the given resolvers. */
export function dnsEgress(
  resolvers: readonly k8s.NetworkPolicyPeer[] = DEFAULT_DNS_RESOLVER_PEERS,
): k8s.NetworkPolicyEgressRule {
  if (resolvers.length === 0) {
    throw new Error("'dnsResolvers' ([]) must name at least one resolver: with none, every DNS lookup is denied");
  }
  return {
    to: [...resolvers],
    ports: [
      { protocol: 'UDP', port: k8s.IntOrString.fromNumber(53) },
      { protocol: 'TCP', port: k8s.IntOrString.fromNumber(53) },
    ],
  };
}

/** TCP NetworkPolicy ports. */
export function tcpPorts(...ports: number[]): k8s.NetworkPolicyPort[] {
  return ports.map((port) => ({ protocol: 'TCP', port: k8s.IntOrString.fromNumber(port) }));
}

/** Pod annotations that make Prometheus' kubernetes_sd scrape a metrics port. */
export function scrapeAnnotations(port: number, path = '/metrics'): Record<string, string> {
  return { 'prometheus.io/scrape': 'true', 'prometheus.io/port': String(port), 'prometheus.io/path': path };
}

/**
 * A component's NetworkPolicy: default-deny in both directions for its pods,
 * then exactly the listed ingress and egress rules.
 */
export function networkPolicy(
  scope: Construct,
  id: string,
  component: string,
  rules: { ingress: k8s.NetworkPolicyIngressRule[]; egress: k8s.NetworkPolicyEgressRule[] },
): k8s.KubeNetworkPolicy {
  return new k8s.KubeNetworkPolicy(scope, id, {
    metadata: meta(scope, component, component),
    spec: {
      podSelector: { matchLabels: selectorLabels(component) },
      policyTypes: ['Ingress', 'Egress'],
      ingress: rules.ingress,
      egress: rules.egress,
    },
  });
}

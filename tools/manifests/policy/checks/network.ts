/**
 * Isolation checks: NetworkPolicies cover every pod in both directions and
 * select something, their DNS egress reaches node-local resolvers, and
 * namespaces enforce Pod Security "restricted" (kube-score's pod-networkpolicy
 * and networkpolicy-targets-pod).
 */
import { type KubeObject, type LabelSelector, pathIn, specOf } from '../../../k8s/objects';
import type { Check } from '../types';

interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string; except?: string[] };
}

interface EgressRule {
  to?: NetworkPolicyPeer[];
  ports?: { protocol?: string; port?: number | string; endPort?: number }[];
}

interface NetworkPolicySpec {
  podSelector?: LabelSelector;
  policyTypes?: ('Ingress' | 'Egress')[];
  egress?: EgressRule[];
}

/** The directions a NetworkPolicy isolates (the API's defaulting: Ingress always, Egress when rules exist). */
function directionsOf(np: KubeObject): Set<string> {
  const spec = specOf<NetworkPolicySpec>(np);
  return new Set(spec.policyTypes ?? (spec.egress ? ['Ingress', 'Egress'] : ['Ingress']));
}

export const networkPolicyCoverage: Check = {
  id: 'network-policy-coverage',
  severity: 'error',
  explanation:
    'Every pod is selected by a NetworkPolicy for Ingress and for Egress, so it talks only to what it needs.',
  fix: "Add a NetworkPolicy with policyTypes ['Ingress', 'Egress'] whose podSelector matches the pod labels and allow only its peers.",
  run: (ctx) =>
    ctx.workloads.flatMap((w) => {
      const covering = ctx.selecting('NetworkPolicy', w, 'podSelector');
      const missing = ['Ingress', 'Egress'].filter((d) => !covering.some((np) => directionsOf(np).has(d)));
      if (missing.length === 0) return [];
      const message = `no NetworkPolicy selects these pods for ${missing.join(' or ')}`;
      return [{ object: w.object, path: pathIn(w, 'metadata.labels'), message }];
    }),
};

export const networkPolicySelectsPod: Check = {
  id: 'network-policy-selects-pod',
  severity: 'warning',
  explanation:
    'Every NetworkPolicy selects at least one pod template; one that selects none is a typo that protects nothing.',
  fix: 'Make podSelector match the labels of the pods it is meant for (selectorLabels(component)), or delete the policy.',
  run: (ctx) =>
    ctx.ofKind('NetworkPolicy').flatMap((np) => {
      const selector = specOf<NetworkPolicySpec>(np).podSelector;
      return ctx.selectedBy(np, 'podSelector').length > 0
        ? []
        : [
            {
              object: np,
              path: 'spec.podSelector',
              message: `podSelector ${JSON.stringify(selector ?? {})} matches no pod template`,
            },
          ];
    }),
};

/**
 * Link-local, host-network DNS resolvers the kubelet may point pods at: NodeLocal
 * DNSCache and GKE Cloud DNS (the metadata server). No pod selector matches them.
 */
export const NODE_LOCAL_RESOLVERS = { '169.254.20.10': 'NodeLocal DNSCache', '169.254.169.254': 'GKE Cloud DNS' };

const ipv4 = (a: string): number | undefined => {
  const parts = a.split('.').map(Number);
  return parts.length === 4 && parts.every((p) => Number.isInteger(p) && p >= 0 && p <= 255)
    ? parts.reduce((n, p) => n * 256 + p, 0)
    : undefined;
};

/** Whether an IPv4 CIDR contains an IPv4 address (an IPv6 CIDR contains none). */
function cidrContains(cidr: string, address: string): boolean {
  const [net, bits] = cidr.split('/');
  const n = ipv4(net);
  const a = ipv4(address);
  if (n === undefined || a === undefined || bits === undefined) return false;
  const size = 2 ** (32 - Number(bits));
  return Math.floor(n / size) === Math.floor(a / size);
}

/** Whether an egress rule allows port 53 (any protocol: UDP first, TCP for long answers). */
const allowsPort53 = (rule: EgressRule) =>
  !rule.ports?.length ||
  rule.ports.some(
    (p) =>
      p.port === undefined || p.port === 53 || (typeof p.port === 'number' && p.port < 53 && (p.endPort ?? 0) >= 53),
  );

/** Whether an egress rule lets traffic reach `address` (no `to` means anywhere). */
const reaches = (rule: EgressRule, address: string) =>
  !rule.to?.length ||
  rule.to.some(
    (peer) =>
      peer.ipBlock !== undefined &&
      cidrContains(peer.ipBlock.cidr, address) &&
      !(peer.ipBlock.except ?? []).some((e) => cidrContains(e, address)),
  );

const describePeer = (p: NetworkPolicyPeer) =>
  p.ipBlock
    ? p.ipBlock.cidr
    : `pods ${
        Object.entries(p.podSelector?.matchLabels ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(',') || '(any)'
      }`;

export const dnsEgressNodeLocal: Check = {
  id: 'dns-egress-node-local',
  severity: 'error',
  explanation:
    'In production, a NetworkPolicy that restricts DNS egress also allows a node-local resolver (NodeLocal DNSCache 169.254.20.10, GKE Cloud DNS 169.254.169.254): where the kubelet points pods at one, a rule naming only the kube-dns pods fails every lookup.',
  fix: 'Keep the default network.dnsResolvers (or add 169.254.20.10/32 and 169.254.169.254/32 to it); if this cluster has no node-local resolver, say so with fastnext.io/policy-skip.dns-egress-node-local: "<reason>".',
  run: (ctx) =>
    ctx.ofKind('NetworkPolicy').flatMap((np) => {
      if (!ctx.isProduction(np.metadata.namespace)) return [];
      const rules = specOf<NetworkPolicySpec>(np).egress ?? [];
      const dnsRules = rules.filter(allowsPort53);
      // A policy with no DNS rule denies DNS on purpose; one that reaches a node-local resolver is fine.
      if (dnsRules.length === 0) return [];
      if (dnsRules.some((r) => Object.keys(NODE_LOCAL_RESOLVERS).some((a) => reaches(r, a)))) return [];
      const first = rules.indexOf(dnsRules[0]);
      const targets = [...new Set(dnsRules.flatMap((r) => (r.to ?? []).map(describePeer)))].join(', ');
      const resolvers = Object.entries(NODE_LOCAL_RESOLVERS)
        .map(([a, what]) => `${a} (${what})`)
        .join(' or ');
      return [
        {
          object: np,
          path: `spec.egress[${first}]`,
          message: `DNS egress (port 53) reaches only ${targets}, not ${resolvers}: pods on a node-local resolver cannot resolve any name`,
        },
      ];
    }),
};

const ENFORCE = 'pod-security.kubernetes.io/enforce';

export const namespacePodSecurity: Check = {
  id: 'namespace-pod-security',
  severity: 'error',
  explanation:
    'Namespaces enforce the Pod Security "restricted" standard, so the API server refuses a weaker pod even if our checks are skipped.',
  fix: `Label the Namespace ${ENFORCE}: restricted (plus warn/audit: restricted).`,
  run: (ctx) =>
    ctx.ofKind('Namespace').flatMap((ns) => {
      const level = ns.metadata.labels?.[ENFORCE];
      return level === 'restricted'
        ? []
        : [{ object: ns, path: 'metadata.labels', message: `${ENFORCE} is ${level ?? 'unset'}, not restricted` }];
    }),
};

export const NETWORK_CHECKS: Check[] = [
  networkPolicyCoverage,
  networkPolicySelectsPod,
  dnsEgressNodeLocal,
  namespacePodSecurity,
];

/**
 * Isolation checks: NetworkPolicies cover every pod in both directions and
 * select something, and namespaces enforce Pod Security "restricted"
 * (kube-score's pod-networkpolicy and networkpolicy-targets-pod).
 */
import { type KubeObject, type LabelSelector, pathIn, specOf } from '../k8s';
import type { Check } from '../types';

interface NetworkPolicySpec {
  podSelector?: LabelSelector;
  policyTypes?: ('Ingress' | 'Egress')[];
  egress?: unknown[];
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

export const NETWORK_CHECKS: Check[] = [networkPolicyCoverage, networkPolicySelectsPod, namespacePodSecurity];

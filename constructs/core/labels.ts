/**
 * Labels and metadata. Namespace and common labels come from the enclosing
 * cdk8s `Chart`, so a construct placed in anyone's chart follows that chart.
 */
import { Chart } from 'cdk8s';
import type { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';

/** Value of `app.kubernetes.io/instance` on every object. */
export const INSTANCE = 'fastnext';
/**
 * Namespace label marking a production environment, so checks that read the
 * manifests alone (`npm run validate -- --dir`) know it too.
 */
export const PRODUCTION_LABEL = 'fastnext.io/production';
/** Value of `app.kubernetes.io/part-of` on every object. */
export const PART_OF = 'fastnext-platform';

/** Labels that select one component's pods; stable across releases (selectors are immutable). */
export function selectorLabels(component: string): Record<string, string> {
  return { 'app.kubernetes.io/name': component, 'app.kubernetes.io/instance': INSTANCE };
}

/**
 * Namespace of the enclosing Chart. A Chart without one gets `default`, written
 * on every object, so the in-cluster DNS names the constructs hand out resolve.
 */
export function namespaceOf(scope: Construct): string {
  return Chart.of(scope).namespace ?? 'default';
}

/** In-cluster DNS name of a Service of the chart's namespace. */
export function serviceHost(scope: Construct, service: string): string {
  return `${service}.${namespaceOf(scope)}.svc.cluster.local`;
}

/** Full label set for an object of a component: the Chart's labels + selector labels + part-of. */
export function standardLabels(scope: Construct, component: string): Record<string, string> {
  return {
    ...Chart.of(scope).labels,
    ...selectorLabels(component),
    'app.kubernetes.io/part-of': PART_OF,
    'app.kubernetes.io/managed-by': 'cdk8s',
  };
}

/** Metadata for a namespaced object of a component. */
export function meta(
  scope: Construct,
  component: string,
  name: string,
  extra: { annotations?: Record<string, string>; labels?: Record<string, string> } = {},
): k8s.ObjectMeta {
  return {
    name,
    namespace: namespaceOf(scope),
    labels: { ...standardLabels(scope, component), ...extra.labels },
    ...(extra.annotations && Object.keys(extra.annotations).length ? { annotations: extra.annotations } : {}),
  };
}

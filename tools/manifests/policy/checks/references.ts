/**
 * Reference integrity: everything an object points at exists in the output (or
 * is declared as created in-cluster / supplied from outside), so a typo is a
 * failed check rather than a pod stuck in ContainerCreating.
 */
import {
  type KubeObject,
  type LabelSelector,
  type Workload,
  annotationList,
  declaresPort,
  mapSelects,
  podReferences,
  specOf,
  templateSelector,
} from '../../../k8s/objects';
import {
  CREATES_SECRETS_ANNOTATION,
  EXTERNAL_SECRETS_ANNOTATION,
  type Check,
  type HpaSpec,
  type PolicyContext,
  type Violation,
} from '../types';

interface ServiceSpec {
  selector?: Record<string, string>;
  clusterIP?: string;
  ports?: { name?: string; port: number; targetPort?: number | string }[];
}

const sameNs = (a: KubeObject, b: KubeObject) => a.metadata.namespace === b.metadata.namespace;

/**
 * Workloads whose pod template the Service's selector matches. Selector keys the Service
 * declares as set at run time (RUNTIME_LABELS_ANNOTATION, e.g. Patroni's role label) are
 * left out: no template can carry them, the controller adds them to live pods.
 */
function selectedBy(ctx: PolicyContext, svc: KubeObject): Workload[] {
  const selector = templateSelector(svc);
  return ctx.workloads.filter((w) => sameNs(w.object, svc) && mapSelects(selector, w.labels));
}

export const serviceSelectorMatches: Check = {
  id: 'service-selector-matches',
  severity: 'error',
  explanation: 'Every Service with a selector selects at least one pod template, or it has no endpoints.',
  fix: 'Make the Service selector equal the selectorLabels(component) of the pods it fronts.',
  run: (ctx) =>
    ctx.ofKind('Service').flatMap((svc) => {
      const selector = specOf<ServiceSpec>(svc).selector;
      if (!selector || Object.keys(selector).length === 0 || selectedBy(ctx, svc).length > 0) return [];
      return [
        { object: svc, path: 'spec.selector', message: `selector ${JSON.stringify(selector)} matches no pod template` },
      ];
    }),
};

export const serviceTargetPort: Check = {
  id: 'service-target-port',
  severity: 'error',
  explanation: 'Every Service targetPort is a port declared by a container of the pods it selects (by name or number).',
  fix: "Set targetPort to the container port's name (preferred) or number, and declare that port on the container.",
  run: (ctx) =>
    ctx.ofKind('Service').flatMap((svc) => {
      const pods = selectedBy(ctx, svc);
      if (pods.length === 0) return [];
      return (specOf<ServiceSpec>(svc).ports ?? []).flatMap((p) => {
        const target = p.targetPort ?? p.port;
        const ok = pods.some((w) => w.template.spec.containers.some((c) => declaresPort(c, target)));
        const label = p.name ?? String(p.port);
        return ok
          ? []
          : [
              {
                object: svc,
                path: `spec.ports[name=${label}].targetPort`,
                message: `targetPort ${JSON.stringify(target)} is not declared by any container of the selected pods`,
              },
            ];
      });
    }),
};

export const pdbSelectorMatches: Check = {
  id: 'pdb-selector-matches',
  severity: 'error',
  explanation: 'Every PodDisruptionBudget selects the pod template of at least one workload, or it protects nothing.',
  fix: 'Make spec.selector.matchLabels equal the selectorLabels(component) of the workload it protects.',
  run: (ctx) =>
    ctx.ofKind('PodDisruptionBudget').flatMap((pdb) => {
      const selector = specOf<{ selector?: LabelSelector }>(pdb).selector;
      return ctx.selectedBy(pdb, 'selector').length > 0
        ? []
        : [
            {
              object: pdb,
              path: 'spec.selector',
              message: `selector ${JSON.stringify(selector ?? {})} matches no pod template`,
            },
          ];
    }),
};

export const statefulSetService: Check = {
  id: 'statefulset-service',
  severity: 'error',
  explanation:
    "Every StatefulSet's serviceName names a headless Service (clusterIP: None) that selects its pods, which gives each pod its DNS name.",
  fix: 'Add a Service with clusterIP: None and the StatefulSet selector, named as spec.serviceName.',
  run: (ctx) =>
    ctx.workloads
      .filter((w) => w.object.kind === 'StatefulSet')
      .flatMap((w): Violation[] => {
        const name = specOf<{ serviceName?: string }>(w.object).serviceName;
        const svc = name ? ctx.find('Service', w.object.metadata.namespace, name) : undefined;
        const path = 'spec.serviceName';
        if (!svc)
          return [
            {
              object: w.object,
              path,
              message: `serviceName ${JSON.stringify(name ?? '')} names no Service in the output`,
            },
          ];
        if (specOf<ServiceSpec>(svc).clusterIP !== 'None')
          return [{ object: w.object, path, message: `Service '${name}' is not headless (clusterIP: None)` }];
        if (!mapSelects(specOf<ServiceSpec>(svc).selector, w.labels))
          return [{ object: w.object, path, message: `Service '${name}' does not select this StatefulSet's pods` }];
        return [];
      }),
};

/** Secrets each namespace declares as created at run time or supplied from outside. */
function declaredSecrets(ctx: PolicyContext, ns: string | undefined): Set<string> {
  return new Set(
    ctx.objects
      .filter((o) => o.metadata.namespace === ns)
      .flatMap((o) => {
        const tmpl = o.kind === 'CronJob' ? specOf<{ jobTemplate?: KubeObject }>(o).jobTemplate : undefined;
        const sources = tmpl ? [o, tmpl] : [o];
        return sources.flatMap((s) => [
          ...annotationList(s, CREATES_SECRETS_ANNOTATION),
          ...annotationList(s, EXTERNAL_SECRETS_ANNOTATION),
        ]);
      }),
  );
}

/** Names of the PVCs a StatefulSet creates from its volumeClaimTemplates (`<template>-<sts>-<ordinal>`) match by prefix. */
function fromClaimTemplate(ctx: PolicyContext, ns: string | undefined, claim: string): boolean {
  return ctx
    .ofKind('StatefulSet')
    .some(
      (s) =>
        s.metadata.namespace === ns &&
        (specOf<{ volumeClaimTemplates?: { metadata: { name: string } }[] }>(s).volumeClaimTemplates ?? []).some((t) =>
          claim.startsWith(`${t.metadata.name}-${s.metadata.name}-`),
        ),
    );
}

function keysOf(o: KubeObject): Set<string> {
  return new Set([
    ...Object.keys((o.data as object) ?? {}),
    ...Object.keys((o.binaryData as object) ?? {}),
    ...Object.keys((o.stringData as object) ?? {}),
  ]);
}

/** ClusterRoles every cluster has (user-facing roles and the system: ones). */
const BUILT_IN_CLUSTER_ROLES = /^(view|edit|admin|cluster-admin|system:.*)$/;

export const referencesExist: Check = {
  id: 'references-exist',
  severity: 'error',
  explanation: `Every ServiceAccount, ConfigMap (and key), Secret (and key), PVC, HPA target and RBAC binding target exists in the output, or the Secret is declared by a '${CREATES_SECRETS_ANNOTATION}' or '${EXTERNAL_SECRETS_ANNOTATION}' annotation.`,
  fix: `Fix the name or add the object; declare a Secret made at run time with ${CREATES_SECRETS_ANNOTATION}: "<name>,..." on the Job that creates it, or one supplied from outside (TLS) with ${EXTERNAL_SECRETS_ANNOTATION}: "<name>" on the workload.`,
  run: (ctx) => {
    const out: Violation[] = [];
    for (const w of ctx.workloads) {
      const ns = w.object.metadata.namespace;
      const declared = declaredSecrets(ctx, ns);
      for (const r of podReferences(w)) {
        if (r.kind === 'Secret' && declared.has(r.name)) continue;
        if (r.kind === 'PersistentVolumeClaim' && fromClaimTemplate(ctx, ns, r.name)) continue;
        const target = ctx.find(r.kind, ns, r.name);
        if (!target) {
          out.push({
            object: w.object,
            path: r.path,
            message: `${r.kind} '${r.name}' is not in the output${r.kind === 'Secret' ? ' and not declared as created in-cluster' : ''}`,
          });
        } else if (
          r.key !== undefined &&
          (r.kind === 'ConfigMap' || keysOf(target).size > 0) &&
          !keysOf(target).has(r.key)
        ) {
          out.push({ object: w.object, path: r.path, message: `${r.kind} '${r.name}' has no key '${r.key}'` });
        }
      }
    }
    for (const hpa of ctx.ofKind('HorizontalPodAutoscaler')) {
      const ref = specOf<HpaSpec>(hpa).scaleTargetRef;
      if (!ctx.find(ref.kind, hpa.metadata.namespace, ref.name)) {
        out.push({
          object: hpa,
          path: 'spec.scaleTargetRef',
          message: `scale target ${ref.kind} '${ref.name}' is not in the output`,
        });
      }
    }
    for (const rb of [...ctx.ofKind('RoleBinding'), ...ctx.ofKind('ClusterRoleBinding')]) {
      const roleRef = rb.roleRef as { kind: string; name: string };
      const roleNs = roleRef.kind === 'Role' ? rb.metadata.namespace : undefined;
      const builtIn = roleRef.kind === 'ClusterRole' && BUILT_IN_CLUSTER_ROLES.test(roleRef.name);
      if (!builtIn && !ctx.find(roleRef.kind, roleNs, roleRef.name)) {
        out.push({ object: rb, path: 'roleRef', message: `${roleRef.kind} '${roleRef.name}' is not in the output` });
      }
      for (const s of (rb.subjects as { kind: string; name: string; namespace?: string }[] | undefined) ?? []) {
        if (s.kind === 'ServiceAccount' && !ctx.find('ServiceAccount', s.namespace ?? rb.metadata.namespace, s.name)) {
          out.push({
            object: rb,
            path: `subjects[name=${s.name}]`,
            message: `ServiceAccount '${s.name}' is not in the output`,
          });
        }
      }
    }
    return out;
  },
};

export const REFERENCE_CHECKS: Check[] = [
  serviceSelectorMatches,
  serviceTargetPort,
  pdbSelectorMatches,
  statefulSetService,
  referencesExist,
];

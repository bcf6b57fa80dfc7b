/**
 * Container checks: resources, pinned images and probes (kube-score's
 * container-resources, container-image-tag and pod-probes; kube-linter's
 * unset-cpu-requirements, latest-tag, no-readiness-probe).
 */
import { imageRef, parseQuantity } from '../../../../stacks/config';
import {
  type Container,
  type KubeObject,
  type Probe,
  type Workload,
  declaresPort,
  mapSelects,
  specOf,
} from '../../../k8s/objects';
import type { Check, PolicyContext } from '../types';
import { type ContainerFinding, containerCheck } from './define';

const RESOURCE_FIELDS = ['requests.cpu', 'requests.memory', 'limits.cpu', 'limits.memory'] as const;

interface ServiceSpec {
  selector?: Record<string, string>;
  ports?: { name?: string; port: number; targetPort?: number | string }[];
  publishNotReadyAddresses?: boolean;
  clusterIP?: string;
}

/** Containers of `w` that receive traffic from a Service (they declare a port a selecting Service targets). */
export function servedContainers(ctx: PolicyContext, w: Workload): Map<Container, KubeObject> {
  const served = new Map<Container, KubeObject>();
  const containers = w.template.spec.containers ?? [];
  for (const svc of ctx.ofKind('Service')) {
    const spec = specOf<ServiceSpec>(svc);
    // A Service that publishes not-ready addresses (a StatefulSet's peer-discovery Service) routes around readiness.
    if (spec.publishNotReadyAddresses || svc.metadata.namespace !== w.object.metadata.namespace) continue;
    if (!mapSelects(spec.selector, w.labels)) continue;
    for (const port of spec.ports ?? []) {
      const target = port.targetPort ?? port.port;
      const owners = containers.filter((c) => declaresPort(c, target));
      // An undeclared numeric port on a single-container pod still reaches that container.
      if (owners.length === 0 && containers.length === 1 && typeof target === 'number') owners.push(containers[0]);
      for (const c of owners) served.set(c, svc);
    }
  }
  return served;
}

/** The probe's handler (what it calls), without timings. */
function handlerOf(p: Probe): string {
  const { httpGet, tcpSocket, grpc, exec } = p;
  return JSON.stringify({ httpGet, tcpSocket, grpc, exec });
}

export const containerResources = containerCheck(
  {
    id: 'container-resources',
    severity: 'error',
    explanation:
      'Every container sets CPU and memory requests and limits, so the scheduler can place it and a leak cannot starve its node.',
    fix: 'Set resources.requests and resources.limits for cpu and memory (requests <= limits) in the tier config.',
  },
  ({ container }) => {
    const r = container.resources ?? {};
    const missing = RESOURCE_FIELDS.filter((f) => {
      const [group, kind] = f.split('.') as ['requests' | 'limits', string];
      return r[group]?.[kind] === undefined;
    });
    const out: ContainerFinding[] = missing.length
      ? [{ field: 'resources', problem: `has no ${missing.join(', ')}` }]
      : [];
    for (const kind of ['cpu', 'memory']) {
      const req = r.requests?.[kind];
      const lim = r.limits?.[kind];
      if (req !== undefined && lim !== undefined && parseQuantity(String(req)) > parseQuantity(String(lim))) {
        out.push({ field: `resources.requests.${kind}`, problem: `requests ${kind} ${req} above its limit ${lim}` });
      }
    }
    return out;
  },
);

export const imagePinned = containerCheck(
  {
    id: 'image-pinned',
    severity: 'error',
    explanation: "Every image carries a version tag or digest, never 'latest', so a rollout runs what was reviewed.",
    fix: 'Pin the image to a version tag or a sha256 digest (e.g. repo/name:1.2.3).',
  },
  ({ container }) => {
    const result = imageRef.safeParse(container.image ?? '');
    if (result.success) return undefined;
    return { field: 'image', problem: `image '${container.image ?? ''}' ${result.error.issues[0].message}` };
  },
);

export const readinessProbe = containerCheck(
  {
    id: 'readiness-probe',
    severity: 'error',
    explanation: 'A container behind a Service has a readiness probe, so it gets traffic only once it can answer.',
    fix: "Add a readinessProbe to the container (for the API service, the contract's readiness path).",
  },
  ({ container, init, workload, ctx }) => {
    const svc = init || container.readinessProbe ? undefined : servedContainers(ctx, workload).get(container);
    return svc
      ? { problem: `receives traffic from Service '${svc.metadata.name}' but has no readinessProbe` }
      : undefined;
  },
);

export const livenessNotReadiness = containerCheck(
  {
    id: 'liveness-not-readiness',
    severity: 'error',
    explanation:
      'Liveness and readiness probes call different handlers: a dependency outage must make a pod unready, not restart it in a loop.',
    fix: 'Point livenessProbe at a handler that checks only the process itself (e.g. the liveness path).',
  },
  ({ container: c }) =>
    c.livenessProbe && c.readinessProbe && handlerOf(c.livenessProbe) === handlerOf(c.readinessProbe)
      ? { field: 'livenessProbe', problem: 'uses the same handler for liveness and readiness' }
      : undefined,
);

export const probePortDeclared = containerCheck(
  {
    id: 'probe-port-declared',
    severity: 'error',
    explanation:
      'Every probe port is a port the container declares, so a renamed or moved port cannot silently break a probe.',
    fix: 'Declare the port in the container ports (with the name the probe uses) or point the probe at a declared port.',
  },
  ({ container: c }) =>
    (['livenessProbe', 'readinessProbe', 'startupProbe'] as const).flatMap((kind) => {
      const probe = c[kind];
      const port = probe?.httpGet?.port ?? probe?.tcpSocket?.port ?? probe?.grpc?.port;
      if (port === undefined || declaresPort(c, port)) return [];
      return [{ field: kind, problem: `${kind} uses port ${JSON.stringify(port)}, which it does not declare` }];
    }),
);

export const CONTAINER_CHECKS: Check[] = [
  containerResources,
  imagePinned,
  readinessProbe,
  livenessNotReadiness,
  probePortDeclared,
];

/**
 * GKE Autopilot's admission rules for resource requests, applied at synth to
 * the `gke-autopilot` profile's objects so the manifests say what will run.
 */
import { parseQuantity } from './config';
import type { KubeObject } from './synth';

/**
 * What GKE Autopilot (general-purpose compute class) admits for a Pod's requests:
 * at least 250m CPU and 512 MiB, CPU in steps of 250m, and between 1 and 6.5 GiB
 * of memory per vCPU. Autopilot raises anything else at admission, so manifests
 * that did not say so would differ from what runs (and re-applying an immutable
 * Job template would fail).
 */
export const AUTOPILOT = { cpuStep: 0.25, minMemory: 512 * 2 ** 20, minGiBPerCpu: 1, maxGiBPerCpu: 6.5 } as const;

const GIB = 2 ** 30;

/** Pod totals (cores, bytes) raised to what Autopilot admits. */
export function autopilotPodRequests(pod: { cpu: number; memory: number }): { cpu: number; memory: number } {
  const steps = (cores: number) => Math.ceil(cores / AUTOPILOT.cpuStep - 1e-9) * AUTOPILOT.cpuStep;
  let cpu = Math.max(AUTOPILOT.cpuStep, steps(pod.cpu));
  let memory = Math.max(AUTOPILOT.minMemory, pod.memory);
  if (memory > cpu * AUTOPILOT.maxGiBPerCpu * GIB) cpu = steps(memory / (AUTOPILOT.maxGiBPerCpu * GIB));
  if (memory < cpu * AUTOPILOT.minGiBPerCpu * GIB) memory = cpu * AUTOPILOT.minGiBPerCpu * GIB;
  return { cpu, memory };
}

const formatCpu = (cores: number) => {
  const milli = Math.round(cores * 1000);
  return milli % 1000 === 0 ? String(milli / 1000) : `${milli}m`;
};
const formatMemory = (bytes: number) => {
  const mi = Math.ceil(bytes / 2 ** 20);
  return mi % 1024 === 0 ? `${mi / 1024}Gi` : `${mi}Mi`;
};

interface ContainerResources {
  requests?: { cpu?: string; memory?: string };
  limits?: { cpu?: string; memory?: string };
}

/**
 * The first container's resources after raising the pod's requests to what Autopilot
 * admits (the delta goes to the first container, the tier's main process), with its
 * limits raised to at least its requests; undefined when the pod already fits.
 */
export function fitContainersToAutopilot(containers: readonly ContainerResources[]): ContainerResources | undefined {
  const sum = (kind: 'cpu' | 'memory') =>
    containers.reduce((total, c) => total + parseQuantity(c.requests?.[kind] ?? '0'), 0);
  const pod = { cpu: sum('cpu'), memory: sum('memory') };
  const fit = autopilotPodRequests(pod);
  if (Math.abs(fit.cpu - pod.cpu) < 1e-9 && fit.memory === pod.memory) return undefined;
  const main = containers[0];
  const cpu = parseQuantity(main.requests?.cpu ?? '0') + fit.cpu - pod.cpu;
  const memory = parseQuantity(main.requests?.memory ?? '0') + fit.memory - pod.memory;
  const requests = { cpu: formatCpu(cpu), memory: formatMemory(memory) };
  const atLeast = (limit: string | undefined, request: string) =>
    limit !== undefined && parseQuantity(limit) >= parseQuantity(request) ? limit : request;
  return {
    requests,
    limits: { cpu: atLeast(main.limits?.cpu, requests.cpu), memory: atLeast(main.limits?.memory, requests.memory) },
  };
}

/** Where each kind that carries a pod template keeps its pod spec. */
const POD_SPEC_PATH: Record<string, readonly string[]> = {
  Deployment: ['spec', 'template', 'spec'],
  StatefulSet: ['spec', 'template', 'spec'],
  DaemonSet: ['spec', 'template', 'spec'],
  Job: ['spec', 'template', 'spec'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
};

/**
 * An object with its pod template's requests raised to what Autopilot admits (a copy;
 * the object itself when it has no pod template or already fits). Init containers run
 * alone before the pod starts and are left as they are.
 */
export function fitToAutopilot(obj: KubeObject): KubeObject {
  const path = POD_SPEC_PATH[obj.kind];
  if (!path) return obj;
  const copy = structuredClone(obj);
  let spec: unknown = copy;
  for (const key of path) spec = (spec as Record<string, unknown>)[key];
  const containers = (spec as { containers: { resources?: ContainerResources }[] }).containers;
  const fitted = fitContainersToAutopilot(containers.map((c) => c.resources ?? {}));
  if (!fitted) return obj;
  containers[0].resources = fitted;
  return copy;
}

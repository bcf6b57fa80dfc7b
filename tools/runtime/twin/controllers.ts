/**
 * The cluster's control loops the twin plays around its processes: the kubelet
 * (kubelet.ts) for each API and edge pod, with the probes of the
 * synthesized pod spec, and the endpoints controller, which keeps nginx's
 * upstream list equal to the API pods whose Ready condition is true, as the
 * headless Service's EndpointSlice (and so its DNS answer) would.
 */
import type { Endpoint } from '../launcher/processes';
import type { RunningNginx } from '../nginx-runner';
import { type ApiPod, type DeploymentLike, type PodWiring, apiContainer, podProbeTarget } from './api-pods';
import { type Container, KubeletPod, type ProbeSpec, probeAttempt } from './kubelet';
import type { PodRunner } from './pod-runner';

/** An API container under the kubelet: the process and how the kubelet kills it. */
export interface ApiContainer extends Container {
  readonly pod: ApiPod;
}

/** The startup, readiness and liveness probes of a container spec. */
export const probesOf = (c: {
  readonly startupProbe?: ProbeSpec;
  readonly readinessProbe?: ProbeSpec;
  readonly livenessProbe?: ProbeSpec;
}) => ({ startup: c.startupProbe, readiness: c.readinessProbe, liveness: c.livenessProbe });

/**
 * An API pod under the twin's kubelet: init containers and the api container from the
 * Deployment, run by `runner` (a process or a container), its three probes, restarts on
 * its own ports.
 */
export function apiKubeletPod(
  runner: PodRunner,
  deployment: DeploymentLike,
  wiring: PodWiring,
  name: string,
  ports: { http: number; metrics: number },
  o: { onReadyChange: () => void; log?: (line: string) => void },
): KubeletPod<ApiContainer> {
  return new KubeletPod<ApiContainer>({
    name,
    probes: probesOf(apiContainer(deployment)),
    terminationGracePeriodSeconds: deployment.spec.template.spec.terminationGracePeriodSeconds ?? 30,
    attempt: (spec, c) => probeAttempt(spec, podProbeTarget(deployment, c.pod)),
    async start() {
      const pod = await runner.launch(deployment, wiring, name, ports);
      return { pod, pid: pod.pid, exited: pod.exited, kill: (grace) => pod.terminate(grace) };
    },
    onReadyChange: o.onReadyChange,
    log: o.log,
  });
}

/** The edge's nginx container under the kubelet (its probes hit the status and http ports). */
export interface EdgeContainer extends Container {
  readonly nginx: RunningNginx;
}

export interface RotationChange {
  /** Epoch milliseconds when nginx had reloaded with this set. */
  readonly at: number;
  readonly pods: readonly string[];
}

/**
 * The endpoints controller: nginx's upstream list = the Ready API pods. Changes are applied
 * one at a time, each to the set as it is when its turn comes, so a burst of probe
 * results costs one reload.
 */
export class EndpointsController {
  /** Every set nginx was reloaded with, in order, from the first. */
  readonly history: RotationChange[] = [];
  private applied = '';
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly pods: () => readonly KubeletPod<ApiContainer>[],
    private readonly edge: () => RunningNginx | undefined,
    private readonly log: (line: string) => void = () => undefined,
  ) {}

  /** The Ready pods now (what the EndpointSlice lists). */
  ready(): KubeletPod<ApiContainer>[] {
    return this.pods().filter((p) => p.ready && p.container);
  }

  /** Names of the pods nginx routes to now. */
  inRotation(): string[] {
    return this.history.length ? [...this.history[this.history.length - 1].pods] : [];
  }

  endpoints(): Endpoint[] {
    return this.ready().map((p) => p.container!.pod.http);
  }

  /** Brings nginx in line with the Ready pods; resolves once it has. */
  sync(): Promise<void> {
    this.chain = this.chain.then(async () => {
      const ready = this.ready();
      const key = ready.map((p) => `${p.name}=${p.container!.pod.http.port}`).join(',');
      const edge = this.edge();
      if (!edge || key === this.applied) return;
      try {
        await edge.reload(ready.map((p) => p.container!.pod.http));
      } catch (e) {
        // nginx gone (stopping, or its container restarting: it starts with the Ready set).
        this.log(`[endpoints] reload failed: ${(e as Error).message}`);
        return;
      }
      this.applied = key;
      const names = ready.map((p) => p.name);
      this.history.push({ at: Date.now(), pods: names });
      this.log(`[endpoints] api upstreams: ${names.join(', ') || '(none ready)'}`);
    });
    return this.chain;
  }

  /** Records the set nginx started with. */
  started(): void {
    const ready = this.ready();
    this.applied = ready.map((p) => `${p.name}=${p.container!.pod.http.port}`).join(',');
    this.history.push({ at: Date.now(), pods: ready.map((p) => p.name) });
  }
}

/**
 * How the twin runs an API pod's containers: as processes from this checkout's sources
 * (the default: fastest to start) or as containers from the built image (`--containers`),
 * both from the synthesized Deployment's pod spec and both giving the same ApiPod. The
 * twin's kubelet (controllers.ts `apiKubeletPod`) launches every container through
 * `launch` and probes it, so probes, restarts and rotation work alike in both modes.
 */
import { type ApiPod, type DeploymentLike, type PodWiring, launchApiPod, startApiPod } from './api-pods';
import { launchContainerPod, startContainerPod } from './container-pods';

export type PodMode = 'process' | 'container';

export interface PodRunner {
  readonly mode: PodMode;
  /**
   * Init containers to completion, then the api container; resolves once it runs, not once it
   * is ready (the kubelet's probes decide that). `ports` keeps a restarted container on its
   * pod's ports, as a container restart keeps the pod's IP.
   */
  launch(
    deployment: DeploymentLike,
    wiring: PodWiring,
    name: string,
    ports?: { http: number; metrics: number },
  ): Promise<ApiPod>;
  /** A pod no kubelet manages (the bench's variants): launched, then waited for until readiness answers 200. */
  start(deployment: DeploymentLike, wiring: PodWiring, name: string): Promise<ApiPod>;
}

export function podRunner(mode: PodMode): PodRunner {
  return mode === 'container'
    ? {
        mode,
        launch: (d, w, n, ports) => launchContainerPod(d, w, n, { ports }),
        start: (d, w, n) => startContainerPod(d, w, n),
      }
    : { mode, launch: (d, w, n, ports) => launchApiPod(d, w, n, ports), start: (d, w, n) => startApiPod(d, w, n) };
}

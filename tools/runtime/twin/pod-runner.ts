/**
 * How the twin runs an API pod: as a process from this checkout's sources (the
 * default: fastest to start) or as a container from the built image (`--containers`),
 * both from the synthesized Deployment's pod spec and both returning the same ApiPod.
 */
import { type ApiPod, type DeploymentLike, type PodWiring, startApiPod } from './api-pods';
import { startContainerPod } from './container-pods';

export type PodRunner = (deployment: DeploymentLike, wiring: PodWiring, name: string) => Promise<ApiPod>;

export type PodMode = 'process' | 'container';

export function podRunner(mode: PodMode): PodRunner {
  return mode === 'container' ? (d, w, n) => startContainerPod(d, w, n) : (d, w, n) => startApiPod(d, w, n);
}

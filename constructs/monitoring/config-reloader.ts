/**
 * The configmap-reload sidecar Prometheus and Alertmanager share: it watches the mounted
 * config volume and POSTs the server's `/-/reload` when the ConfigMap or Secret changes.
 */
import { k8s } from 'cdk8s-plus-28';
import * as core from '../core';

/** The configmap-reload image every server with a reload sidecar defaults to. */
export const CONFIG_RELOADER_IMAGE = 'ghcr.io/jimmidyson/configmap-reload:v0.13.1';

/** Settings of a server that reloads its config through the sidecar. */
export interface ConfigReloaderSettings {
  /** configmap-reload image, pinned. @default 'ghcr.io/jimmidyson/configmap-reload:v0.13.1' (CONFIG_RELOADER_IMAGE) */
  readonly reloaderImage?: string;
}
/** configmap-reload's own HTTP port (its default). */
const RELOADER_PORT = 9533;
/** The reload sidecar idles at a few MiB; these are not worth a config field. */
const RELOADER_RESOURCES = { requests: { cpu: '5m', memory: '16Mi' }, limits: { cpu: '50m', memory: '32Mi' } };

/** The `config-reload` container for a server on `serverPort` whose config volume `config` is at `configDir`. */
export function configReloaderContainer(image: string, configDir: string, serverPort: number): k8s.Container {
  return {
    name: 'config-reload',
    image,
    imagePullPolicy: 'IfNotPresent',
    args: [
      `--volume-dir=${configDir}`,
      `--webhook-url=http://127.0.0.1:${serverPort}/-/reload`,
      `--web.listen-address=:${RELOADER_PORT}`,
    ],
    // Not named 'metrics': its counters are not worth a scrape target (the NetworkPolicy keeps the port in-pod).
    ports: [{ name: 'reloader', containerPort: RELOADER_PORT, protocol: 'TCP' }],
    resources: core.resourcesOf(RELOADER_RESOURCES),
    securityContext: core.containerSecurityContext(),
    volumeMounts: [{ name: 'config', mountPath: configDir, readOnly: true }],
    readinessProbe: {
      httpGet: { path: '/metrics', port: k8s.IntOrString.fromString('reloader') },
      periodSeconds: 30,
      timeoutSeconds: 3,
    },
    livenessProbe: {
      tcpSocket: { port: k8s.IntOrString.fromString('reloader') },
      periodSeconds: 30,
      timeoutSeconds: 3,
    },
  };
}

/**
 * Security-context checks: the Pod Security "restricted" profile, per container
 * (a container's securityContext overrides its pod's for the shared fields),
 * plus host access (kube-linter's host-network, host-pid, sensitive-host-mounts, host ports).
 */
import type { Check } from '../types';
import { containerCheck, podCheck, specPath } from './define';

export const runAsNonRoot = containerCheck(
  {
    id: 'run-as-non-root',
    severity: 'error',
    explanation: 'Containers run as a non-root user, enforced by the kubelet (runAsNonRoot) and never as UID 0.',
    fix: 'Set securityContext.runAsNonRoot: true and a non-zero runAsUser (podSecurityContext(uid, gid) in constructs/core/pod.ts).',
  },
  ({ securityContext: sc }) => {
    if (sc.runAsUser === 0) return { field: 'securityContext.runAsUser', problem: 'runs as UID 0' };
    if (sc.runAsNonRoot !== true)
      return { field: 'securityContext.runAsNonRoot', problem: 'does not set runAsNonRoot: true' };
    return undefined;
  },
);

/** The booleans of a container's securityContext that Pod Security "restricted" sets. */
type SecurityFlag = 'allowPrivilegeEscalation' | 'privileged' | 'readOnlyRootFilesystem';

/** Builds a check that `flag` of every container's securityContext is `safe`; `problem` says what the container does instead. */
function flagCheck(
  info: Omit<Check, 'run'>,
  flag: SecurityFlag,
  safe: (value: boolean | undefined) => boolean,
  problem: string,
): Check {
  return containerCheck(info, ({ container }) =>
    safe(container.securityContext?.[flag]) ? undefined : { field: `securityContext.${flag}`, problem },
  );
}

export const noPrivilegeEscalation = flagCheck(
  {
    id: 'no-privilege-escalation',
    severity: 'error',
    explanation: 'Containers set allowPrivilegeEscalation: false, so setuid binaries cannot gain privileges.',
    fix: 'Set securityContext.allowPrivilegeEscalation: false (containerSecurityContext() in constructs/core/pod.ts).',
  },
  'allowPrivilegeEscalation',
  (v) => v === false,
  'does not set allowPrivilegeEscalation: false',
);

export const notPrivileged = flagCheck(
  {
    id: 'not-privileged',
    severity: 'error',
    explanation: 'No container is privileged: a privileged container owns its node.',
    fix: 'Remove securityContext.privileged (or set it to false).',
  },
  'privileged',
  (v) => v !== true,
  'is privileged',
);

export const dropAllCapabilities = containerCheck(
  {
    id: 'drop-all-capabilities',
    severity: 'error',
    explanation:
      'Containers drop ALL Linux capabilities and add back at most NET_BIND_SERVICE (Pod Security "restricted").',
    fix: "Set securityContext.capabilities.drop: ['ALL'] and remove any added capability other than NET_BIND_SERVICE.",
  },
  ({ container }) => {
    const caps = container.securityContext?.capabilities;
    if (!caps?.drop?.includes('ALL'))
      return { field: 'securityContext.capabilities.drop', problem: 'does not drop ALL capabilities' };
    const extra = (caps.add ?? []).filter((a) => a !== 'NET_BIND_SERVICE');
    return extra.length
      ? { field: 'securityContext.capabilities.add', problem: `adds capabilities ${extra.join(', ')}` }
      : undefined;
  },
);

export const seccompRuntimeDefault = containerCheck(
  {
    id: 'seccomp-runtime-default',
    severity: 'error',
    explanation: 'Containers run under the RuntimeDefault (or a Localhost) seccomp profile, never Unconfined.',
    fix: 'Set securityContext.seccompProfile.type: RuntimeDefault on the pod or the container.',
  },
  ({ securityContext: sc }) => {
    const type = sc.seccompProfile?.type;
    return type === 'RuntimeDefault' || type === 'Localhost'
      ? undefined
      : { field: 'securityContext.seccompProfile', problem: `seccomp profile is ${type ?? 'unset'}` };
  },
);

export const readOnlyRootFs = flagCheck(
  {
    id: 'read-only-root-fs',
    severity: 'error',
    explanation:
      'Containers mount their root filesystem read-only; writable paths are explicit emptyDir or PVC mounts.',
    fix: 'Set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the process must write.',
  },
  'readOnlyRootFilesystem',
  (v) => v === true,
  'has a writable root filesystem',
);

export const noHostPath = podCheck(
  {
    id: 'no-host-path',
    severity: 'error',
    explanation: "Pods mount no hostPath volume: the node's filesystem is not the application's to read or write.",
    fix: 'Use an emptyDir, a ConfigMap/Secret volume or a PersistentVolumeClaim instead of hostPath.',
  },
  (w) =>
    (w.template.spec.volumes ?? [])
      .filter((v) => v.hostPath)
      .map((v) => ({
        path: specPath(w, `volumes[name=${v.name}]`),
        message: `volume '${v.name}' mounts host path ${v.hostPath?.path}`,
      })),
);

export const noHostNamespaces = podCheck(
  {
    id: 'no-host-namespaces',
    severity: 'error',
    explanation:
      "Pods share no host namespace (hostNetwork, hostPID, hostIPC): they would see the node's processes and traffic.",
    fix: 'Remove hostNetwork, hostPID and hostIPC from the pod spec.',
  },
  (w) =>
    (['hostNetwork', 'hostPID', 'hostIPC'] as const)
      .filter((f) => w.template.spec[f] === true)
      .map((f) => ({ path: specPath(w, f), message: `pod sets ${f}: true` })),
);

export const noHostPorts = containerCheck(
  {
    id: 'no-host-ports',
    severity: 'error',
    explanation:
      "No container binds a hostPort: it opens a port on the node's address and allows one such pod per node.",
    fix: 'Remove hostPort from the container ports; reach the pod through a Service.',
  },
  ({ container }) => {
    const bound = (container.ports ?? []).filter((p) => p.hostPort !== undefined).map((p) => p.hostPort);
    return bound.length ? { field: 'ports', problem: `binds host port ${bound.join(', ')}` } : undefined;
  },
);

export const SECURITY_CHECKS: Check[] = [
  runAsNonRoot,
  noPrivilegeEscalation,
  notPrivileged,
  dropAllCapabilities,
  seccompRuntimeDefault,
  readOnlyRootFs,
  noHostPath,
  noHostNamespaces,
  noHostPorts,
];

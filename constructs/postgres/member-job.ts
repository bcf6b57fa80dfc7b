/**
 * A Job that works on a running cluster's members with a script from the `postgres-files`
 * ConfigMap: the reconfigure Job (patroni-reconfigure.ts) and the roles Job (roles-job.ts).
 * What they share: the name `<component>-<hash of the spec and inputs>` (a change is a new Job, an
 * unchanged one is left alone), a ServiceAccount with no token, a NetworkPolicy reaching only DNS and
 * the members' given ports, the PostgreSQL image's non-root pod, small fixed resources, retries, no
 * TTL, and the run-after annotation on the StatefulSet (Pulumi starts it after the rollout).
 */
import { k8s } from 'cdk8s-plus-28';
import type { Construct } from 'constructs';
import * as core from '../core';

/** One extra volume of the Job's pod and where its container mounts it. */
export interface MemberJobVolume {
  readonly volume: k8s.Volume;
  readonly mountPath: string;
}

/** The cluster a member Job works on: what the reconfigure and roles Jobs both take. */
export interface MemberJobCluster {
  /** Component label of the cluster's members (the Job is `<component>-<suffix>-<hash>`). */
  readonly component: string;
  /** The StatefulSet of the members: the Job runs after its rollout. */
  readonly statefulSet: string;
  readonly image: string;
  readonly uid: number;
  readonly configMap: string;
  readonly configDir: string;
  readonly pod?: core.PodOptions;
  readonly imagePullSecrets?: readonly string[];
  readonly dnsResolvers?: readonly k8s.NetworkPolicyPeer[];
}

export interface MemberJobProps extends MemberJobCluster {
  /** The Job's objects are `<component>-<suffix>`, their construct ids `<suffix>-job`, `<suffix>-service-account`, ... */
  readonly suffix: string;
  /** Ports of the members it reaches (nothing else but DNS). */
  readonly ports: readonly number[];
  /** The container's name, command and env. */
  readonly container: Pick<k8s.Container, 'name' | 'command' | 'env'>;
  /** More volumes, read-only. @default [] */
  readonly volumes?: readonly MemberJobVolume[];
  /** What the Job runs from outside its spec (a script in the ConfigMap): its name changes with them. */
  readonly inputs: readonly unknown[];
}

/** The Job, its ServiceAccount and NetworkPolicy; returns the Job's name and component. */
export function memberJob(scope: Construct, p: MemberJobProps): { name: string; component: string } {
  const c = `${p.component}-${p.suffix}`;
  const extra = p.volumes ?? [];
  core.serviceAccount(scope, `${p.suffix}-service-account`, c);
  core.networkPolicy(scope, `${p.suffix}-network-policy`, c, {
    ingress: [],
    egress: [core.dnsEgress(p.dnsResolvers), { to: [core.podsOf(p.component)], ports: core.tcpPorts(...p.ports) }],
  });
  const spec: k8s.JobSpec = {
    // A failed attempt (members not healthy yet, no primary during a failover) is retried from the start.
    // No ttlSecondsAfterFinished: a finished Job deleted by its TTL would be created again by the next
    // apply, and Pulumi would find it gone; the hash in the name keeps them few.
    backoffLimit: 6,
    template: {
      metadata: { labels: { ...core.meta(scope, c, c).labels, ...core.selectorLabels(c) } },
      spec: {
        serviceAccountName: c,
        automountServiceAccountToken: false,
        restartPolicy: 'OnFailure',
        securityContext: core.podSecurityContext(p.uid),
        ...core.podPlacement(p.pod, p.imagePullSecrets),
        containers: [
          {
            // In this key order: the Job's name is a hash of its spec's JSON.
            name: p.container.name,
            image: p.image,
            command: p.container.command,
            env: p.container.env,
            resources: {
              requests: { cpu: k8s.Quantity.fromString('10m'), memory: k8s.Quantity.fromString('32Mi') },
              limits: { cpu: k8s.Quantity.fromString('200m'), memory: k8s.Quantity.fromString('64Mi') },
            },
            securityContext: core.containerSecurityContext(),
            volumeMounts: [
              { name: 'config', mountPath: p.configDir, readOnly: true },
              { name: 'tmp', mountPath: '/tmp' },
              ...extra.map((v) => ({ name: v.volume.name, mountPath: v.mountPath, readOnly: true })),
            ],
          },
        ],
        volumes: [
          { name: 'config', configMap: { name: p.configMap, defaultMode: 0o444 } },
          core.emptyDir('tmp', '16Mi'),
          ...extra.map((v) => v.volume),
        ],
      },
    },
  };
  const name = core.jobNameFor(c, spec, p.inputs);
  new k8s.KubeJob(scope, `${p.suffix}-job`, {
    metadata: core.meta(scope, c, name, {
      annotations: { [core.RUNS_AFTER_ANNOTATION]: `StatefulSet/${p.statefulSet}` },
    }),
    spec,
  });
  return { name, component: c };
}

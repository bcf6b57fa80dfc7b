/**
 * The scheduled backups of a PatroniCluster: two CronJobs (full, differential) whose pods
 * run `kubectl exec svc/<name>-primary -c patroni -- sh backup.sh <type>`. The primary
 * Service selects the pod Patroni labels leader, so the backup always runs on the current
 * leader, where pgBackRest reads the data directory and WAL (as Crunchy PGO's backup Jobs
 * exec pgBackRest in the database pod). Never twice at once: each CronJob is
 * `concurrencyPolicy: Forbid`, and the two CronJobs exec into the same container, where
 * pgBackRest's stanza lock refuses a second backup (backup.sh reports it and exits 0).
 *
 * Least privilege: the Role reads the primary Service, lists pods (kubectl resolves the
 * Service to a pod) and may exec only into the members' own pod names.
 */
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import * as core from '../core';
import { PGBACKREST_FILES } from './pgbackrest-files';

/** uid of the backup Jobs' pods (kubectl needs no user of its own: `nobody`). */
export const BACKUP_JOB_UID = 65534;

export interface BackupJobsProps {
  /** The cluster's name (StatefulSet, Patroni scope). */
  readonly cluster: string;
  readonly members: number;
  /** The primary Service (selects the leader). */
  readonly primaryService: string;
  /** Where backup.sh is mounted in the patroni container. */
  readonly configDir: string;
  readonly image: string;
  readonly schedule: { readonly full: string; readonly differential: string };
  readonly pod?: core.PodOptions;
  readonly imagePullSecrets?: readonly string[];
  readonly dnsResolvers?: readonly k8s.NetworkPolicyPeer[];
}

export class BackupJobs extends Construct {
  /** Component label of the Jobs' pods. */
  readonly component: string;
  /** CronJob names by backup type. */
  readonly cronJobs: { readonly full: string; readonly diff: string };

  constructor(scope: Construct, id: string, props: BackupJobsProps) {
    super(scope, id);
    const c = `${props.cluster}-backup`;
    this.component = c;
    this.cronJobs = { full: `${c}-full`, diff: `${c}-diff` };
    new k8s.KubeServiceAccount(this, 'service-account', {
      metadata: core.meta(this, c, c, { annotations: props.pod?.serviceAccountAnnotations }),
      automountServiceAccountToken: false,
    });
    const members = Array.from({ length: props.members }, (_, i) => `${props.cluster}-${i}`);
    new k8s.KubeRole(this, 'role', {
      metadata: core.meta(this, c, c),
      rules: [
        { apiGroups: [''], resources: ['services'], resourceNames: [props.primaryService], verbs: ['get'] },
        // kubectl lists the Service's pods by its selector, then reads the chosen one.
        { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
        { apiGroups: [''], resources: ['pods'], resourceNames: members, verbs: ['get'] },
        { apiGroups: [''], resources: ['pods/exec'], resourceNames: members, verbs: ['create'] },
      ],
    });
    new k8s.KubeRoleBinding(this, 'role-binding', {
      metadata: core.meta(this, c, c),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: c },
      subjects: [{ kind: 'ServiceAccount', name: c, namespace: core.meta(this, c, c).namespace }],
    });

    const placement = core.podPlacement(props.pod, props.imagePullSecrets);
    const cronJob = (type: 'full' | 'diff', schedule: string) =>
      new k8s.KubeCronJob(this, `${type}-cron-job`, {
        metadata: core.meta(this, c, this.cronJobs[type]),
        spec: {
          schedule,
          concurrencyPolicy: 'Forbid',
          // A run missed by more than an hour (controller down) is skipped, not started late.
          startingDeadlineSeconds: 3600,
          successfulJobsHistoryLimit: 3,
          failedJobsHistoryLimit: 3,
          jobTemplate: {
            spec: {
              // A failover between the Service lookup and the exec: the retry finds the new leader.
              backoffLimit: 3,
              activeDeadlineSeconds: 6 * 3600,
              ttlSecondsAfterFinished: 7 * 86400,
              template: {
                metadata: { labels: { ...core.meta(this, c, c).labels, ...core.selectorLabels(c) } },
                spec: {
                  serviceAccountName: c,
                  // kubectl talks to the API server with this token.
                  automountServiceAccountToken: true,
                  securityContext: core.podSecurityContext(BACKUP_JOB_UID),
                  restartPolicy: 'Never',
                  ...placement,
                  containers: [
                    {
                      name: 'backup',
                      image: props.image,
                      command: [
                        'kubectl',
                        'exec',
                        `svc/${props.primaryService}`,
                        '-c',
                        'patroni',
                        '--',
                        'sh',
                        `${props.configDir}/${PGBACKREST_FILES.backup}`,
                        type,
                      ],
                      // kubectl's discovery cache.
                      env: [{ name: 'HOME', value: '/tmp' }],
                      resources: core.resourcesOf({
                        requests: { cpu: '10m', memory: '32Mi' },
                        limits: { cpu: '200m', memory: '128Mi' },
                      }),
                      securityContext: core.containerSecurityContext(),
                      volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
                    },
                  ],
                  volumes: [core.emptyDir('tmp', '32Mi')],
                },
              },
            },
          },
        },
      });
    cronJob('full', props.schedule.full);
    cronJob('diff', props.schedule.differential);
    core.networkPolicy(this, 'network-policy', c, {
      ingress: [],
      // Only the API server (exec goes through it): its address is the cluster's, so only the port is fixed.
      egress: [core.dnsEgress(props.dnsResolvers), { ports: core.tcpPorts(443, 6443) }],
    });
  }
}

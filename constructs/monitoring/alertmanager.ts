/**
 * Alertmanager: a StatefulSet whose replicas form one cluster over the mesh port (gossiped
 * silences and notification log, so two replicas notify once), alertmanager.yml rendered by
 * alerting.ts into a Secret, and each receiver's Secret mounted read-only for its `*_file`
 * field. A configmap-reload sidecar POSTs /-/reload when alertmanager.yml changes.
 * Prometheus sends every alert to every replica (its `alerting:` block names each pod).
 */
import { createHash } from 'crypto';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import * as core from '../core';
import { ALERTMANAGER_SECRETS_DIR, type AlertingProps, checkAlerting, receiverPorts, receiverSecret } from './alerting';
import { renderAlertmanagerConfig } from './alertmanager-config';
import { type Inhibition, WATCHDOG } from './health-alerts';
import { CONFIG_RELOADER_IMAGE, configReloaderContainer, type ConfigReloaderSettings } from './config-reloader';

/** uid/gid `nobody`, which the prom/alertmanager image runs as. */
export const ALERTMANAGER_UID = 65534;
export const ALERTMANAGER_PORT = 9093;
/** The cluster mesh (gossip over TCP and UDP). */
export const ALERTMANAGER_MESH_PORT = 9094;
/** Where the config Secret is mounted, and its key. */
export const ALERTMANAGER_CONFIG_DIR = '/etc/alertmanager/config';
export const ALERTMANAGER_CONFIG_FILE = 'alertmanager.yml';

/** The settings of Alertmanager that have defaults (what an environment may override). */
export interface AlertmanagerSettings extends ConfigReloaderSettings, core.ContainerSettings, core.VolumeSettings {
  /** Replicas, clustered over the mesh port; 2 or more survive a node loss. @default 2 */
  readonly replicas?: number;
}

/** Defaults of every Alertmanager setting. */
export const ALERTMANAGER_DEFAULTS: Required<AlertmanagerSettings> = {
  image: 'prom/alertmanager:v0.28.1',
  reloaderImage: CONFIG_RELOADER_IMAGE,
  replicas: 2,
  // Silences and the notification log.
  storage: { size: '1Gi' },
  resources: { requests: { cpu: '20m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } },
};

export interface AlertmanagerProps extends AlertmanagerSettings, core.WorkloadProps {
  /** Name of the StatefulSet, Services, config Secret prefix and component label; renaming replaces the volumes. @default 'alertmanager' */
  readonly name?: string;
  /** Receivers, routes and inhibit rules. */
  readonly alerting: AlertingProps;
  /** Inhibitions the shipped alert rules declare (alert-rules.ts `shippedInhibitions`). @default - none */
  readonly inhibitions?: readonly Inhibition[];
  /** Pods that send alerts and scrape /metrics. @default - the bundled Prometheus' pods */
  readonly clients?: readonly k8s.NetworkPolicyPeer[];
}

export class Alertmanager extends Construct {
  /** Default component name. */
  static readonly COMPONENT = 'alertmanager';
  readonly component: string;
  readonly serviceName: string;
  readonly port = ALERTMANAGER_PORT;
  /** `host:port` of every replica (its stable DNS name), for Prometheus' `alerting:` block. */
  readonly replicaAddresses: readonly string[];
  readonly configSecretName: string;
  /** alertmanager.yml exactly as shipped in the Secret. */
  readonly config: string;
  /** Secrets the receivers read (created by you), by name with their keys. */
  readonly receiverSecrets: Readonly<Record<string, readonly string[]>>;

  constructor(scope: Construct, id: string, props: AlertmanagerProps) {
    super(scope, id);
    const a = core.withDefaults(ALERTMANAGER_DEFAULTS, props);
    core.checkCommonSettings(a);
    core.checkInt('replicas', a.replicas, 1, 5);
    checkAlerting('alerting', props.alerting);
    const name = core.workloadName(props.name, Alertmanager.COMPONENT);
    const c = name;
    const ns = core.namespaceOf(this);
    const headless = `${name}-headless`;
    this.component = c;
    this.serviceName = name;
    this.configSecretName = `${name}-config`;
    this.replicaAddresses = Array.from(
      { length: a.replicas },
      (_, i) => `${name}-${i}.${headless}.${ns}.svc:${ALERTMANAGER_PORT}`,
    );

    this.config = renderAlertmanagerConfig(props.alerting, props.inhibitions ?? [], WATCHDOG);
    new k8s.KubeSecret(this, 'config', {
      metadata: core.meta(this, c, this.configSecretName),
      type: 'Opaque',
      stringData: { [ALERTMANAGER_CONFIG_FILE]: this.config },
    });

    const secrets = new Map<string, Set<string>>();
    for (const r of props.alerting.receivers) {
      const s = receiverSecret(r);
      secrets.set(s.name, (secrets.get(s.name) ?? new Set()).add(s.key));
    }
    this.receiverSecrets = Object.fromEntries([...secrets].map(([n, keys]) => [n, [...keys].sort()]));

    core.serviceAccount(this, 'service-account', c, props.pod?.serviceAccountAnnotations);

    const web = k8s.IntOrString.fromString('web');
    const clustered = a.replicas > 1;
    const alertmanager: k8s.Container = {
      name: 'alertmanager',
      image: a.image,
      imagePullPolicy: 'IfNotPresent',
      args: [
        `--config.file=${ALERTMANAGER_CONFIG_DIR}/${ALERTMANAGER_CONFIG_FILE}`,
        '--storage.path=/alertmanager',
        `--web.listen-address=:${ALERTMANAGER_PORT}`,
        // One replica: no mesh at all (an empty address turns clustering off).
        ...(clustered
          ? [
              `--cluster.listen-address=:${ALERTMANAGER_MESH_PORT}`,
              `--cluster.advertise-address=$(POD_IP):${ALERTMANAGER_MESH_PORT}`,
              ...Array.from(
                { length: a.replicas },
                (_, i) => `--cluster.peer=${name}-${i}.${headless}.${ns}.svc:${ALERTMANAGER_MESH_PORT}`,
              ),
            ]
          : ['--cluster.listen-address=']),
      ],
      env: clustered ? [{ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }] : undefined,
      ports: [
        { name: 'web', containerPort: ALERTMANAGER_PORT, protocol: 'TCP' },
        ...(clustered
          ? [
              { name: 'mesh-tcp', containerPort: ALERTMANAGER_MESH_PORT, protocol: 'TCP' },
              { name: 'mesh-udp', containerPort: ALERTMANAGER_MESH_PORT, protocol: 'UDP' },
            ]
          : []),
      ],
      resources: core.resourcesOf(a.resources),
      securityContext: core.containerSecurityContext(),
      volumeMounts: [
        { name: 'config', mountPath: ALERTMANAGER_CONFIG_DIR, readOnly: true },
        { name: 'receiver-secrets', mountPath: ALERTMANAGER_SECRETS_DIR, readOnly: true },
        { name: 'data', mountPath: '/alertmanager' },
      ],
      readinessProbe: core.httpProbe('/-/ready', 'web', { periodSeconds: 10, failureThreshold: 3, timeoutSeconds: 3 }),
      livenessProbe: core.httpProbe('/-/healthy', 'web', { periodSeconds: 15, failureThreshold: 4, timeoutSeconds: 3 }),
    };
    const reloader = configReloaderContainer(a.reloaderImage, ALERTMANAGER_CONFIG_DIR, ALERTMANAGER_PORT);

    new k8s.KubeStatefulSet(this, 'statefulset', {
      metadata: core.workloadMeta(this, c, name, props, [...secrets.keys()]),
      spec: core.statefulSetSpec(c, {
        replicas: a.replicas,
        serviceName: headless,
        // Peers find each other by DNS as they start: no need to start them one by one.
        podManagementPolicy: 'Parallel',
        template: core.podTemplate(
          this,
          c,
          'alertmanager',
          props,
          {
            annotations: {
              ...core.scrapeAnnotations(ALERTMANAGER_PORT),
              // Recorded for humans and rollouts; the sidecar reloads without a restart.
              'fastnext.io/alertmanager-config-sha256': createHash('sha256').update(this.config).digest('hex'),
            },
          },
          {
            serviceAccountName: name,
            automountServiceAccountToken: false,
            securityContext: core.podSecurityContext(ALERTMANAGER_UID),
            terminationGracePeriodSeconds: 60,
            topologySpreadConstraints: core.topologySpread(c),
            containers: [alertmanager, reloader],
            volumes: [
              { name: 'config', secret: { secretName: this.configSecretName, defaultMode: 0o440 } },
              {
                // Optional: a receiver whose Secret is not created yet fails its notifications
                // (AlertmanagerNotificationsFailing), it does not keep the pod from starting.
                name: 'receiver-secrets',
                projected: {
                  defaultMode: 0o440,
                  sources: [...secrets].map(([secretName, keys]) => ({
                    secret: {
                      name: secretName,
                      optional: true,
                      items: [...keys].sort().map((key) => ({ key, path: `${secretName}/${key}` })),
                    },
                  })),
                },
              },
            ],
          },
        ),
        volumeClaimTemplates: [core.dataVolumeClaim(c, a.storage)],
      }),
    });

    const webPort = { name: 'web', port: ALERTMANAGER_PORT, targetPort: web, protocol: 'TCP' };
    new k8s.KubeService(this, 'service', {
      metadata: core.meta(this, c, this.serviceName),
      spec: { type: 'ClusterIP', selector: core.selectorLabels(c), ports: [webPort] },
    });
    new k8s.KubeService(this, 'headless', {
      metadata: core.meta(this, c, headless),
      spec: {
        clusterIp: 'None',
        selector: core.selectorLabels(c),
        // Peers must resolve each other before they are ready: the mesh forms first.
        publishNotReadyAddresses: true,
        ports: [
          webPort,
          ...(clustered
            ? [
                {
                  name: 'mesh-tcp',
                  port: ALERTMANAGER_MESH_PORT,
                  targetPort: k8s.IntOrString.fromString('mesh-tcp'),
                  protocol: 'TCP',
                },
                {
                  name: 'mesh-udp',
                  port: ALERTMANAGER_MESH_PORT,
                  targetPort: k8s.IntOrString.fromString('mesh-udp'),
                  protocol: 'UDP',
                },
              ]
            : []),
        ],
      },
    });
    core.podDisruptionBudget(this, 'pdb', c, 1);

    const mesh: k8s.NetworkPolicyPort[] = clustered
      ? [
          { protocol: 'TCP', port: k8s.IntOrString.fromNumber(ALERTMANAGER_MESH_PORT) },
          { protocol: 'UDP', port: k8s.IntOrString.fromNumber(ALERTMANAGER_MESH_PORT) },
        ]
      : [];
    const receiverPortList = [...new Set(props.alerting.receivers.flatMap(receiverPorts))].sort((x, y) => x - y);
    core.networkPolicy(this, 'network-policy', c, {
      ingress: [
        {
          from: [...(props.clients ?? [core.podsOf(core.PROMETHEUS_COMPONENT)])],
          ports: core.tcpPorts(ALERTMANAGER_PORT),
        },
        ...(clustered ? [{ from: [core.podsOf(c)], ports: mesh }] : []),
      ],
      egress: [
        core.dnsEgress(props.dnsResolvers),
        ...(clustered ? [{ to: [core.podsOf(c)], ports: mesh }] : []),
        // Receivers live outside the cluster (Slack, PagerDuty, SMTP, webhooks): their ports to any address.
        { ports: core.tcpPorts(...receiverPortList) },
      ],
    });
  }
}

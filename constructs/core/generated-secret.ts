/**
 * Secrets generated in the cluster, once. A Job POSTs the Secret to the API server:
 * a POST never replaces an existing object (409 AlreadyExists), so a password is
 * created the first time and never regenerated on later applies, restores or
 * upgrades — the drift Bitnami's charts cause by rendering a new random password
 * into every release. Nothing secret is ever in the synthesized output.
 *
 * Least privilege: the Job's ServiceAccount may only `create` Secrets in its own
 * namespace (the API cannot scope `create` to a name) and reads nothing.
 */
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { meta, namespaceOf, selectorLabels } from './labels';
import { dnsEgress, networkPolicy, tcpPorts } from './network';
import {
  containerSecurityContext,
  externalSecretsAnnotations,
  podPlacement,
  podSecurityContext,
  type PodOptions,
} from './pod';
import { checkInt, checkName, checkNotEmpty, fail } from './validate';
import { jobNameFor, type WorkloadProps } from './workload';

const k8s = kplus.k8s;

/** The image running the generator: busybox sh + curl, non-root (uid 100). */
export const SECRET_GENERATOR_IMAGE = 'curlimages/curl:8.11.1';
const CURL_UID = 100;
const CURL_GID = 101;
/** Annotation the policy checks read: this Job creates these Secrets at run time. */
export const CREATES_SECRETS_ANNOTATION = 'fastnext.io/creates-secrets';
export { EXTERNAL_SECRETS_ANNOTATION } from './pod';

export interface GeneratedSecretProps extends Omit<WorkloadProps, 'pod'> {
  /** Name of the Secret (also the prefix of the generator's objects: `<secretName>-generator`). */
  readonly secretName: string;
  /** Keys, each filled with an independent random alphanumeric value. */
  readonly keys: readonly string[];
  /** Length of each value, 16 to 128. @default 32 */
  readonly length?: number;
  /** Placement of the generator Job's pod (its node selector, tolerations and priority class). @default - none */
  readonly pod?: Pick<PodOptions, 'nodeSelector' | 'tolerations' | 'priorityClassName'>;
}

/**
 * The generator script. Inputs (env): SECRET_NAME, SECRET_KEYS (space-separated),
 * SECRET_LENGTH, NAMESPACE; optional KUBE_API and SA_DIR (defaults: the in-cluster
 * API server and service-account mount). Exit 0 when created or already present.
 */
export function secretGeneratorScript(): string {
  return `#!/bin/sh
# Rendered by constructs/credentials.ts: create Secret $SECRET_NAME once, never overwrite it.
set -eu
: "\${SECRET_NAME:?}" "\${SECRET_KEYS:?}" "\${NAMESPACE:?}"
LEN="\${SECRET_LENGTH:-32}"
SA_DIR="\${SA_DIR:-/var/run/secrets/kubernetes.io/serviceaccount}"
KUBE_API="\${KUBE_API:-https://kubernetes.default.svc}"
random() { tr -dc 'A-Za-z0-9' < /dev/urandom | head -c "$LEN" | base64 | tr -d '\\n'; }
data=""
for k in $SECRET_KEYS; do data="$data\${data:+,}\\"$k\\":\\"$(random)\\""; done
body=$(printf '{"apiVersion":"v1","kind":"Secret","type":"Opaque","metadata":{"name":"%s","namespace":"%s","labels":{"app.kubernetes.io/managed-by":"fastnext-secret-generator"}},"data":{%s}}' "$SECRET_NAME" "$NAMESPACE" "$data")
cacert=""
if [ -f "$SA_DIR/ca.crt" ]; then cacert="--cacert $SA_DIR/ca.crt"; fi
# shellcheck disable=SC2086
code=$(printf '%s' "$body" | curl -sS -o /dev/null -w '%{http_code}' $cacert -X POST \\
  -H "Authorization: Bearer $(cat "$SA_DIR/token")" -H 'Content-Type: application/json' \\
  --data-binary @- "$KUBE_API/api/v1/namespaces/$NAMESPACE/secrets")
case "$code" in
  201) echo "created Secret $SECRET_NAME with keys: $SECRET_KEYS" ;;
  409) echo "Secret $SECRET_NAME exists: left unchanged" ;;
  *) echo "creating Secret $SECRET_NAME failed: HTTP $code" >&2; exit 1 ;;
esac
`;
}

/** A Secret created in the cluster when absent (ServiceAccount, Role, RoleBinding, NetworkPolicy, Job). */
export class GeneratedSecret extends Construct {
  readonly secretName: string;
  readonly keys: readonly string[];
  /** Component label of the generator Job's pods. */
  readonly component: string;

  constructor(scope: Construct, id: string, props: GeneratedSecretProps) {
    super(scope, id);
    const { secretName, keys } = props;
    const length = props.length ?? 32;
    checkName('secretName', secretName);
    checkNotEmpty('keys', keys, `name at least one key of Secret '${secretName}'`);
    keys.forEach((key, i) => {
      if (!/^[-._a-zA-Z0-9]+$/.test(key))
        fail(`keys[${i}]`, key, `of Secret '${secretName}' must match [-._a-zA-Z0-9]+`);
    });
    checkInt('length', length, 16, 128);
    this.secretName = secretName;
    this.keys = keys;
    const c = `${secretName}-generator`;
    this.component = c;
    const m = (extra = {}) => meta(this, c, c, extra);

    new k8s.KubeServiceAccount(this, 'service-account', { metadata: m(), automountServiceAccountToken: false });
    new k8s.KubeRole(this, 'role', {
      metadata: m(),
      rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['create'] }],
    });
    new k8s.KubeRoleBinding(this, 'role-binding', {
      metadata: m(),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: c },
      subjects: [{ kind: 'ServiceAccount', name: c, namespace: namespaceOf(this) }],
    });
    networkPolicy(this, 'network-policy', c, {
      ingress: [],
      // The API server's address is not known here; 443 and 6443 are where every distribution serves it.
      egress: [dnsEgress(props.dnsResolvers), { ports: tcpPorts(443, 6443) }],
    });
    const labels = { ...m().labels!, ...selectorLabels(c) };
    const spec: kplus.k8s.JobSpec = {
      backoffLimit: 10,
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: c,
          // Only this pod gets a token; the ServiceAccount itself does not mount one everywhere.
          automountServiceAccountToken: true,
          restartPolicy: 'OnFailure',
          securityContext: podSecurityContext(CURL_UID, CURL_GID),
          ...podPlacement(props.pod, props.imagePullSecrets),
          containers: [
            {
              name: 'generate',
              image: SECRET_GENERATOR_IMAGE,
              command: ['sh', '-c', secretGeneratorScript()],
              env: [
                { name: 'SECRET_NAME', value: secretName },
                { name: 'SECRET_KEYS', value: keys.join(' ') },
                { name: 'SECRET_LENGTH', value: String(length) },
                { name: 'NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
              ],
              resources: {
                requests: { cpu: k8s.Quantity.fromString('10m'), memory: k8s.Quantity.fromString('16Mi') },
                limits: { cpu: k8s.Quantity.fromString('100m'), memory: k8s.Quantity.fromString('32Mi') },
              },
              securityContext: containerSecurityContext(),
            },
          ],
        },
      },
    };
    // The Job's name carries a hash of its spec: a changed generator (image, keys) is a new Job.
    new k8s.KubeJob(this, 'job', {
      metadata: meta(this, c, jobNameFor(c, spec), {
        annotations: {
          [CREATES_SECRETS_ANNOTATION]: secretName,
          ...externalSecretsAnnotations({}, props.imagePullSecrets),
        },
      }),
      spec,
    });
  }
}

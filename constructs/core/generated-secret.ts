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
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { meta, namespaceOf, selectorLabels } from './labels';
import { dnsEgress, networkPolicy, tcpPorts } from './network';
import {
  containerSecurityContext,
  emptyDir,
  externalSecretsAnnotations,
  podPlacement,
  podSecurityContext,
  type PodOptions,
} from './pod';
import { checkInt, checkName, checkNotEmpty, fail } from './validate';
import { jobNameFor, type WorkloadProps } from './workload';

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
  /**
   * Make a `kubernetes.io/tls` Secret instead (`tls.crt`, `tls.key`, `ca.crt`, the keys cert-manager
   * writes): a self-signed CA, discarded once it has signed one server certificate for these names.
   * Runs `tlsSecretGeneratorScript` in `image` (openssl and python3, as the PostgreSQL image has). `keys`
   * must then be the three TLS keys. @default - random values
   */
  readonly tls?: GeneratedTlsProps;
}

/** A server certificate made in-cluster. */
export interface GeneratedTlsProps {
  /** DNS names of the certificate (the first is its common name). */
  readonly dnsNames: readonly string[];
  /** IP addresses of the certificate (e.g. 127.0.0.1 for a sidecar on loopback). @default [] */
  readonly ipAddresses?: readonly string[];
  /** Image with sh, openssl and python3. */
  readonly image: string;
  /** uid (and gid) the image runs as. */
  readonly uid: number;
  /** Validity of the CA and the certificate, in days. @default 3650 */
  readonly days?: number;
}

/** Keys of a `kubernetes.io/tls` Secret as cert-manager writes them. */
export const TLS_SECRET_KEYS = { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt' } as const;

/**
 * The TLS generator script: a P-256 CA and a server certificate signed by it (SANs from TLS_DNS_NAMES
 * and TLS_IP_ADDRESSES, space-separated), POSTed as a `kubernetes.io/tls` Secret with tls.crt,
 * tls.key and ca.crt. The CA's key never leaves the pod. Inputs (env) as secretGeneratorScript's, plus
 * TLS_DAYS, and optionally TLS_CA_CERT_FILE + TLS_CA_KEY_FILE (sign with that CA instead of a new one). Exit 0 when created or already present (never overwritten: a POST does not replace).
 */
export function tlsSecretGeneratorScript(): string {
  return `#!/bin/sh
# Rendered by constructs/core/generated-secret.ts: create TLS Secret $SECRET_NAME once, never overwrite it.
set -eu
: "\${SECRET_NAME:?}" "\${NAMESPACE:?}" "\${TLS_DNS_NAMES:?}"
DAYS="\${TLS_DAYS:-3650}"
export SA_DIR="\${SA_DIR:-/var/run/secrets/kubernetes.io/serviceaccount}"
export KUBE_API="\${KUBE_API:-https://kubernetes.default.svc}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
san=""
for n in $TLS_DNS_NAMES; do san="$san\${san:+,}DNS:$n"; done
for a in \${TLS_IP_ADDRESSES:-}; do san="$san\${san:+,}IP:$a"; done
cn=\${TLS_DNS_NAMES%% *}
if [ -n "\${TLS_CA_CERT_FILE:-}" ]; then
  # An existing CA signs instead (a test harness, or an organisation's internal CA).
  cp "$TLS_CA_CERT_FILE" ca.crt
  cp "\${TLS_CA_KEY_FILE:?TLS_CA_KEY_FILE must name the key of TLS_CA_CERT_FILE}" ca.key
else
  openssl req -x509 -new -noenc -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout ca.key -out ca.crt \\
    -days "$DAYS" -subj "/CN=$SECRET_NAME CA" -addext 'basicConstraints=critical,CA:TRUE' \\
    -addext 'keyUsage=critical,keyCertSign,cRLSign' 2>/dev/null
fi
openssl req -new -noenc -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout tls.key -out tls.csr -subj "/CN=$cn" 2>/dev/null
# clientAuth too: a Redis node presents this certificate as a client on the cluster bus and to its master.
printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' "$san" >ext.cnf
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -days "$DAYS" -extfile ext.cnf 2>/dev/null
rm -f ca.key
python3 - <<'PY'
import base64, json, os, ssl, sys, urllib.error, urllib.request
name, ns, sa = os.environ['SECRET_NAME'], os.environ['NAMESPACE'], os.environ['SA_DIR']
data = {k: base64.b64encode(open(f, 'rb').read()).decode() for k, f in
        (('tls.crt', 'tls.crt'), ('tls.key', 'tls.key'), ('ca.crt', 'ca.crt'))}
body = json.dumps({'apiVersion': 'v1', 'kind': 'Secret', 'type': 'kubernetes.io/tls',
                   'metadata': {'name': name, 'namespace': ns,
                                'labels': {'app.kubernetes.io/managed-by': 'fastnext-secret-generator'}},
                   'data': data}).encode()
ca = os.path.join(sa, 'ca.crt')
ctx = ssl.create_default_context(cafile=ca) if os.path.exists(ca) else None
req = urllib.request.Request(os.environ['KUBE_API'] + '/api/v1/namespaces/' + ns + '/secrets', data=body, method='POST',
                             headers={'Authorization': 'Bearer ' + open(os.path.join(sa, 'token')).read().strip(),
                                      'Content-Type': 'application/json'})
try:
    code = urllib.request.urlopen(req, context=ctx).status
except urllib.error.HTTPError as e:
    code = e.code
if code == 201:
    print('created TLS Secret ' + name)
elif code == 409:
    print('Secret ' + name + ' exists: left unchanged')
else:
    sys.exit('creating Secret ' + name + ' failed: HTTP ' + str(code))
PY
`;
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
    if (props.tls) {
      checkNotEmpty('tls.dnsNames', props.tls.dnsNames, `name at least one DNS name of Secret '${secretName}'`);
      const want = Object.values(TLS_SECRET_KEYS);
      if (keys.join(' ') !== want.join(' ')) fail('keys', keys, `of a TLS Secret must be ${want.join(', ')}`);
    }
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
    const spec: k8s.JobSpec = {
      backoffLimit: 10,
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: c,
          // Only this pod gets a token; the ServiceAccount itself does not mount one everywhere.
          automountServiceAccountToken: true,
          restartPolicy: 'OnFailure',
          securityContext: props.tls ? podSecurityContext(props.tls.uid) : podSecurityContext(CURL_UID, CURL_GID),
          ...podPlacement(props.pod, props.imagePullSecrets),
          containers: [
            {
              name: 'generate',
              image: props.tls?.image ?? SECRET_GENERATOR_IMAGE,
              command: ['sh', '-c', props.tls ? tlsSecretGeneratorScript() : secretGeneratorScript()],
              env: [
                { name: 'SECRET_NAME', value: secretName },
                ...(props.tls
                  ? [
                      { name: 'TLS_DNS_NAMES', value: props.tls.dnsNames.join(' ') },
                      { name: 'TLS_IP_ADDRESSES', value: (props.tls.ipAddresses ?? []).join(' ') },
                      { name: 'TLS_DAYS', value: String(props.tls.days ?? 3650) },
                      // mktemp and openssl's scratch files: the root filesystem is read-only.
                      { name: 'TMPDIR', value: '/tmp' },
                    ]
                  : [
                      { name: 'SECRET_KEYS', value: keys.join(' ') },
                      { name: 'SECRET_LENGTH', value: String(length) },
                    ]),
                { name: 'NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
              ],
              resources: {
                requests: { cpu: k8s.Quantity.fromString('10m'), memory: k8s.Quantity.fromString('16Mi') },
                limits: {
                  cpu: k8s.Quantity.fromString('100m'),
                  // python3 (the POST) needs more than curl.
                  memory: k8s.Quantity.fromString(props.tls ? '64Mi' : '32Mi'),
                },
              },
              securityContext: containerSecurityContext(),
              ...(props.tls ? { volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }] } : {}),
            },
          ],
          ...(props.tls ? { volumes: [emptyDir('tmp', '16Mi', 'Memory')] } : {}),
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

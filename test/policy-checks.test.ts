/**
 * Every policy check fires on a bad object and stays quiet on a good one. Each
 * case takes the compliant baseline (test/fixtures/policy/baseline.ts), breaks
 * one thing, runs only the check under test and matches its exact messages.
 */
import { dnsEgress } from '../constructs/core/network';
import type { KubeObject } from '../stacks/synth';
import { CHECKS, runPolicy } from '../tools/manifests/policy/engine';
import type { PolicyOptions } from '../tools/manifests/policy/types';
import { goodObjects, pick } from './fixtures/policy/baseline';

const web = (o: KubeObject[]) => pick(o, 'Deployment', 'web').spec.template.spec;
const webC = (o: KubeObject[]) => web(o).containers[0];
const db = (o: KubeObject[]) => pick(o, 'StatefulSet', 'db').spec.template.spec;

/** The DNS rule every policy had before node-local resolvers were allowed: kube-dns pods only. */
const KUBE_DNS_ONLY = {
  to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
  ports: [
    { protocol: 'UDP', port: 53 },
    { protocol: 'TCP', port: 53 },
  ],
};
const NODE_LOCAL_MESSAGE =
  'DNS egress (port 53) reaches only pods k8s-app=kube-dns, not 169.254.20.10 (NodeLocal DNSCache) or 169.254.169.254 (GKE Cloud DNS): pods on a node-local resolver cannot resolve any name';
/** The web pods may talk DNS through `dns` and HTTPS anywhere. */
const withDnsRule = (o: KubeObject[], dns: object) =>
  (pick(o, 'NetworkPolicy', 'web').spec.egress = [dns, { ports: [{ protocol: 'TCP', port: 443 }] }]);

interface Case {
  check: string;
  when: string;
  mutate: (objects: KubeObject[]) => void;
  /** `Kind/name: message` of every finding, in order. */
  expected: string[];
  options?: PolicyOptions;
}

function findings(check: string, objects: KubeObject[], options: PolicyOptions = {}): string[] {
  const only = CHECKS.filter((c) => c.id === check);
  expect(only).toHaveLength(1);
  return runPolicy(objects, options, only).findings.map((f) => `${f.object.kind}/${f.object.name}: ${f.message}`);
}

const CASES: Case[] = [
  {
    check: 'container-resources',
    when: 'limits are missing',
    mutate: (o) => delete webC(o).resources.limits,
    expected: ["Deployment/web: container 'web' has no limits.cpu, limits.memory"],
  },
  {
    check: 'container-resources',
    when: 'a request exceeds its limit',
    mutate: (o) => (webC(o).resources.requests.memory = '1Gi'),
    expected: ["Deployment/web: container 'web' requests memory 1Gi above its limit 256Mi"],
  },
  {
    check: 'image-pinned',
    when: "the image uses 'latest'",
    mutate: (o) => (webC(o).image = 'example/web:latest'),
    expected: [
      "Deployment/web: container 'web' image 'example/web:latest' must not use the 'latest' tag: pin a version (e.g. repo/name:1.2.3)",
    ],
  },
  {
    check: 'image-pinned',
    when: 'the image has no tag',
    mutate: (o) => (webC(o).image = 'registry:5000/web'),
    expected: [
      "Deployment/web: container 'web' image 'registry:5000/web' must carry a tag or digest (e.g. repo/name:1.2.3 or repo/name@sha256:…)",
    ],
  },
  {
    check: 'readiness-probe',
    when: 'a container behind a Service has no readiness probe',
    mutate: (o) => delete webC(o).readinessProbe,
    expected: ["Deployment/web: container 'web' receives traffic from Service 'web' but has no readinessProbe"],
  },
  {
    check: 'liveness-not-readiness',
    when: 'liveness calls the readiness handler',
    mutate: (o) => (webC(o).livenessProbe = { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 30 }),
    expected: ["Deployment/web: container 'web' uses the same handler for liveness and readiness"],
  },
  {
    check: 'probe-port-declared',
    when: 'a probe names an undeclared port',
    mutate: (o) => (webC(o).readinessProbe.httpGet.port = 'admin'),
    expected: ['Deployment/web: container \'web\' readinessProbe uses port "admin", which it does not declare'],
  },
  {
    check: 'probe-port-declared',
    when: 'a probe uses an undeclared number',
    mutate: (o) => (webC(o).livenessProbe = { tcpSocket: { port: 9999 } }),
    expected: ["Deployment/web: container 'web' livenessProbe uses port 9999, which it does not declare"],
  },
  {
    check: 'run-as-non-root',
    when: 'neither pod nor container sets runAsNonRoot',
    mutate: (o) => {
      delete web(o).securityContext.runAsNonRoot;
      delete webC(o).securityContext.runAsNonRoot;
    },
    expected: ["Deployment/web: container 'web' does not set runAsNonRoot: true"],
  },
  {
    check: 'run-as-non-root',
    when: 'the container runs as UID 0',
    mutate: (o) => (webC(o).securityContext.runAsUser = 0),
    expected: ["Deployment/web: container 'web' runs as UID 0"],
  },
  {
    check: 'run-as-non-root',
    when: 'the pod runs as UID 0 and the container does not say otherwise',
    mutate: (o) => {
      web(o).securityContext.runAsUser = 0;
      delete webC(o).securityContext.runAsUser;
    },
    expected: ["Deployment/web: container 'web' runs as UID 0"],
  },
  {
    check: 'seccomp-runtime-default',
    when: 'the pod is Unconfined and the container sets no profile',
    mutate: (o) => {
      web(o).securityContext.seccompProfile = { type: 'Unconfined' };
      delete webC(o).securityContext.seccompProfile;
    },
    expected: ["Deployment/web: container 'web' seccomp profile is Unconfined"],
  },
  {
    check: 'no-privilege-escalation',
    when: 'allowPrivilegeEscalation is not false',
    mutate: (o) => delete webC(o).securityContext.allowPrivilegeEscalation,
    expected: ["Deployment/web: container 'web' does not set allowPrivilegeEscalation: false"],
  },
  {
    check: 'not-privileged',
    when: 'a container is privileged',
    mutate: (o) => (webC(o).securityContext.privileged = true),
    expected: ["Deployment/web: container 'web' is privileged"],
  },
  {
    check: 'drop-all-capabilities',
    when: 'ALL is not dropped',
    mutate: (o) => (webC(o).securityContext.capabilities.drop = ['NET_RAW']),
    expected: ["Deployment/web: container 'web' does not drop ALL capabilities"],
  },
  {
    check: 'drop-all-capabilities',
    when: 'a capability is added back',
    mutate: (o) => (webC(o).securityContext.capabilities.add = ['NET_BIND_SERVICE', 'SYS_ADMIN']),
    expected: ["Deployment/web: container 'web' adds capabilities SYS_ADMIN"],
  },
  {
    check: 'seccomp-runtime-default',
    when: 'no seccomp profile is set',
    mutate: (o) => {
      delete web(o).securityContext.seccompProfile;
      delete webC(o).securityContext.seccompProfile;
    },
    expected: ["Deployment/web: container 'web' seccomp profile is unset"],
  },
  {
    check: 'seccomp-runtime-default',
    when: 'the container is Unconfined',
    mutate: (o) => (webC(o).securityContext.seccompProfile = { type: 'Unconfined' }),
    expected: ["Deployment/web: container 'web' seccomp profile is Unconfined"],
  },
  {
    check: 'read-only-root-fs',
    when: 'the root filesystem is writable',
    mutate: (o) => (webC(o).securityContext.readOnlyRootFilesystem = false),
    expected: ["Deployment/web: container 'web' has a writable root filesystem"],
  },
  {
    check: 'no-host-path',
    when: 'a hostPath volume is mounted',
    mutate: (o) => web(o).volumes.push({ name: 'docker', hostPath: { path: '/var/run/docker.sock' } }),
    expected: ["Deployment/web: volume 'docker' mounts host path /var/run/docker.sock"],
  },
  {
    check: 'no-host-namespaces',
    when: 'the pod uses the host network and PID namespace',
    mutate: (o) => Object.assign(db(o), { hostNetwork: true, hostPID: true }),
    expected: ['StatefulSet/db: pod sets hostNetwork: true', 'StatefulSet/db: pod sets hostPID: true'],
  },
  {
    check: 'no-host-ports',
    when: 'a container binds a host port',
    mutate: (o) => (webC(o).ports[0].hostPort = 80),
    expected: ["Deployment/web: container 'web' binds host port 80"],
  },
  {
    check: 'pdb-required',
    when: 'a scaled Deployment has no PDB',
    mutate: (o) => o.splice(o.indexOf(pick(o, 'PodDisruptionBudget', 'web')), 1),
    expected: ['Deployment/web: Deployment can run 5 pods but no PodDisruptionBudget selects them'],
  },
  {
    check: 'pdb-allows-eviction',
    when: 'maxUnavailable is 0',
    mutate: (o) => (pick(o, 'PodDisruptionBudget', 'db').spec.maxUnavailable = 0),
    expected: ['PodDisruptionBudget/db: maxUnavailable 0 blocks every eviction of StatefulSet db (replicas 3)'],
  },
  {
    check: 'pdb-allows-eviction',
    when: 'minAvailable equals the HPA minimum',
    mutate: (o) =>
      (pick(o, 'PodDisruptionBudget', 'web').spec = {
        minAvailable: 2,
        selector: pick(o, 'PodDisruptionBudget', 'web').spec.selector,
      }),
    expected: [
      'PodDisruptionBudget/web: minAvailable 2 is not below the 2 pod(s) of Deployment web (HPA minReplicas 2): no pod can be evicted at that scale',
    ],
  },
  {
    check: 'pdb-allows-eviction',
    when: 'minAvailable is 100%',
    mutate: (o) =>
      (pick(o, 'PodDisruptionBudget', 'db').spec = {
        minAvailable: '100%',
        selector: pick(o, 'PodDisruptionBudget', 'db').spec.selector,
      }),
    expected: [
      'PodDisruptionBudget/db: minAvailable 100% is not below the 3 pod(s) of StatefulSet db (replicas 3): no pod can be evicted at that scale',
    ],
  },
  {
    check: 'hpa-target-no-replicas',
    when: 'the HPA target sets replicas',
    mutate: (o) => (pick(o, 'Deployment', 'web').spec.replicas = 3),
    expected: ["Deployment/web: Deployment sets replicas although HPA 'web' scales it"],
  },
  {
    check: 'hpa-min-replicas-prod',
    when: 'minReplicas is 1 in production (option)',
    options: { production: true },
    mutate: (o) => (pick(o, 'HorizontalPodAutoscaler', 'web').spec.minReplicas = 1),
    expected: ['HorizontalPodAutoscaler/web: minReplicas 1 is below 2 in a production environment'],
  },
  {
    check: 'hpa-min-replicas-prod',
    when: 'minReplicas is unset in a namespace labelled production',
    mutate: (o) => {
      delete pick(o, 'HorizontalPodAutoscaler', 'web').spec.minReplicas;
      pick(o, 'Namespace', 'shop').metadata.labels['fastnext.io/production'] = 'true';
    },
    expected: ['HorizontalPodAutoscaler/web: minReplicas 1 is below 2 in a production environment'],
  },
  {
    check: 'hpa-max-above-min',
    when: 'maxReplicas equals minReplicas',
    mutate: (o) => (pick(o, 'HorizontalPodAutoscaler', 'web').spec.maxReplicas = 2),
    expected: ['HorizontalPodAutoscaler/web: maxReplicas 2 is not above minReplicas 2'],
  },
  {
    check: 'replicas-spread',
    when: 'a 3-pod StatefulSet sets no spread',
    mutate: (o) => delete db(o).topologySpreadConstraints,
    expected: ['StatefulSet/db: StatefulSet can run 3 pods but sets no topologySpreadConstraints or pod anti-affinity'],
  },
  {
    check: 'replicas-spread',
    when: "the spread's labelSelector matches other pods",
    mutate: (o) =>
      (web(o).topologySpreadConstraints[0].labelSelector = { matchLabels: { 'app.kubernetes.io/name': 'db' } }),
    expected: [
      "Deployment/web: no topologySpreadConstraint's labelSelector matches the pod labels, so nothing is spread",
    ],
  },
  {
    check: 'network-policy-coverage',
    when: 'no NetworkPolicy selects the pods',
    mutate: (o) => o.splice(o.indexOf(pick(o, 'NetworkPolicy', 'db')), 1),
    expected: ['StatefulSet/db: no NetworkPolicy selects these pods for Ingress or Egress'],
  },
  {
    check: 'network-policy-coverage',
    when: 'the policy isolates Ingress only',
    mutate: (o) => {
      const np = pick(o, 'NetworkPolicy', 'web');
      np.spec.policyTypes = undefined;
      delete np.spec.egress;
    },
    expected: ['Deployment/web: no NetworkPolicy selects these pods for Egress'],
  },
  {
    check: 'network-policy-selects-pod',
    when: 'the podSelector matches no pod template',
    mutate: (o) =>
      (pick(o, 'NetworkPolicy', 'web').spec.podSelector = { matchLabels: { 'app.kubernetes.io/name': 'wbe' } }),
    expected: [
      'NetworkPolicy/web: podSelector {"matchLabels":{"app.kubernetes.io/name":"wbe"}} matches no pod template',
    ],
  },
  {
    check: 'dns-egress-node-local',
    when: 'the DNS rule names only the kube-dns pods (production)',
    mutate: (o) => withDnsRule(o, KUBE_DNS_ONLY),
    expected: [`NetworkPolicy/web: ${NODE_LOCAL_MESSAGE}`],
    options: { production: true },
  },
  {
    check: 'dns-egress-node-local',
    when: "an ipBlock's except cuts the node-local addresses out",
    mutate: (o) =>
      withDnsRule(o, {
        ...KUBE_DNS_ONLY,
        to: [{ ipBlock: { cidr: '169.254.0.0/16', except: ['169.254.20.10/32', '169.254.169.254/32'] } }],
      }),
    expected: [
      'NetworkPolicy/web: DNS egress (port 53) reaches only 169.254.0.0/16, not 169.254.20.10 (NodeLocal DNSCache) or 169.254.169.254 (GKE Cloud DNS): pods on a node-local resolver cannot resolve any name',
    ],
    options: { production: true },
  },
  {
    check: 'namespace-pod-security',
    when: 'the namespace enforces baseline',
    mutate: (o) => (pick(o, 'Namespace', 'shop').metadata.labels['pod-security.kubernetes.io/enforce'] = 'baseline'),
    expected: ['Namespace/shop: pod-security.kubernetes.io/enforce is baseline, not restricted'],
  },
  {
    check: 'service-selector-matches',
    when: 'the Service selects nothing',
    mutate: (o) => (pick(o, 'Service', 'web').spec.selector = { 'app.kubernetes.io/name': 'wbe' }),
    expected: ['Service/web: selector {"app.kubernetes.io/name":"wbe"} matches no pod template'],
  },
  {
    check: 'service-target-port',
    when: 'the targetPort is not declared',
    mutate: (o) => (pick(o, 'Service', 'web').spec.ports[0].targetPort = 'web'),
    expected: ['Service/web: targetPort "web" is not declared by any container of the selected pods'],
  },
  {
    check: 'pdb-selector-matches',
    when: 'the PDB selects nothing',
    mutate: (o) =>
      (pick(o, 'PodDisruptionBudget', 'db').spec.selector = {
        matchExpressions: [{ key: 'tier', operator: 'Exists' }],
      }),
    expected: [
      'PodDisruptionBudget/db: selector {"matchExpressions":[{"key":"tier","operator":"Exists"}]} matches no pod template',
    ],
  },
  {
    check: 'statefulset-service',
    when: 'serviceName names no Service',
    mutate: (o) => (pick(o, 'StatefulSet', 'db').spec.serviceName = 'db'),
    expected: ['StatefulSet/db: serviceName "db" names no Service in the output'],
  },
  {
    check: 'statefulset-service',
    when: 'the Service is not headless',
    mutate: (o) => delete pick(o, 'Service', 'db-headless').spec.clusterIP,
    expected: ["StatefulSet/db: Service 'db-headless' is not headless (clusterIP: None)"],
  },
  {
    check: 'references-exist',
    when: 'a Secret is neither in the output nor declared',
    mutate: (o) => delete pick(o, 'Job', 'db-credentials').metadata.annotations,
    expected: [
      "Deployment/web: Secret 'db-credentials' is not in the output and not declared as created in-cluster",
      "StatefulSet/db: Secret 'db-credentials' is not in the output and not declared as created in-cluster",
      "Job/db-credentials: Secret 'db-credentials' is not in the output and not declared as created in-cluster",
    ],
  },
  {
    check: 'references-exist',
    when: 'a ConfigMap key, a ServiceAccount and an HPA target are missing',
    mutate: (o) => {
      pick(o, 'ConfigMap', 'settings').data = { speed: 'fast' };
      web(o).serviceAccountName = 'webb';
      pick(o, 'HorizontalPodAutoscaler', 'web').spec.scaleTargetRef.name = 'wbe';
    },
    expected: [
      "Deployment/web: ServiceAccount 'webb' is not in the output",
      "Deployment/web: ConfigMap 'settings' has no key 'mode'",
      "StatefulSet/db: ConfigMap 'settings' has no key 'mode'",
      "Job/db-credentials: ConfigMap 'settings' has no key 'mode'",
      "HorizontalPodAutoscaler/web: scale target Deployment 'wbe' is not in the output",
    ],
  },
  {
    check: 'postgres-plaintext',
    when: 'a production pg_hba admits plaintext and an exporter sets sslmode=disable',
    options: { production: true },
    mutate: (o) => {
      pick(o, 'ConfigMap', 'settings').data['patroni.yml'] =
        'pg_hba:\n  - hostssl app app 10.0.0.0/8 scram-sha-256\n  - host app app 10.0.0.0/8 scram-sha-256\n  - host all all 0.0.0.0/0 reject\n';
      webC(o).env = [{ name: 'DATA_SOURCE_URI', value: '127.0.0.1:5432/postgres?sslmode=disable' }];
    },
    expected: [
      "ConfigMap/settings: patroni.yml has pg_hba line 'host app app 10.0.0.0/8 scram-sha-256', which admits plaintext: use hostssl",
      "Deployment/web: container 'web' sets sslmode=disable",
    ],
  },
];

describe('policy checks', () => {
  it('cover every check with at least one failing case', () => {
    expect(new Set(CASES.map((c) => c.check))).toEqual(new Set(CHECKS.map((c) => c.id)));
  });

  it.each(CHECKS.map((c) => c.id))('%s stays quiet on the compliant baseline, in production too', (id) => {
    expect(findings(id, goodObjects(), { production: true })).toEqual([]);
  });

  it.each(CASES)('$check fires when $when', ({ check, mutate, expected, options }) => {
    const objects = goodObjects();
    mutate(objects);
    expect(findings(check, objects, options)).toEqual(expected);
  });
});

describe('policy check edge cases', () => {
  it("run-as-non-root and seccomp-runtime-default: the container's own setting wins over the pod's", () => {
    const objects = goodObjects();
    web(objects).securityContext.runAsUser = 0;
    webC(objects).securityContext.runAsUser = 10001;
    web(objects).securityContext.seccompProfile = { type: 'Unconfined' };
    webC(objects).securityContext.seccompProfile = { type: 'RuntimeDefault' };
    expect(findings('run-as-non-root', objects)).toEqual([]);
    expect(findings('seccomp-runtime-default', objects)).toEqual([]);
  });

  it('postgres-plaintext stays quiet outside production', () => {
    const objects = goodObjects();
    webC(objects).env = [{ name: 'DATA_SOURCE_URI', value: 'x?sslmode=disable' }];
    expect(findings('postgres-plaintext', objects, { production: false })).toEqual([]);
  });

  it('hpa-min-replicas-prod stays quiet outside production', () => {
    const objects = goodObjects();
    pick(objects, 'HorizontalPodAutoscaler', 'web').spec.minReplicas = 1;
    expect(findings('hpa-min-replicas-prod', objects, { production: false })).toEqual([]);
  });

  it('dns-egress-node-local stays quiet on the default resolvers and on one node-local address', () => {
    const objects = goodObjects();
    withDnsRule(objects, JSON.parse(JSON.stringify(dnsEgress())));
    expect(findings('dns-egress-node-local', objects, { production: true })).toEqual([]);
    withDnsRule(objects, { ...KUBE_DNS_ONLY, to: [...KUBE_DNS_ONLY.to, { ipBlock: { cidr: '169.254.20.10/32' } }] });
    expect(findings('dns-egress-node-local', objects, { production: true })).toEqual([]);
  });

  it('dns-egress-node-local stays quiet outside production and on a policy that denies DNS', () => {
    const objects = goodObjects();
    withDnsRule(objects, KUBE_DNS_ONLY);
    expect(findings('dns-egress-node-local', objects, { production: false })).toEqual([]);
    pick(objects, 'NetworkPolicy', 'web').spec.egress = [{ ports: [{ protocol: 'TCP', port: 443 }] }];
    expect(findings('dns-egress-node-local', objects, { production: true })).toEqual([]);
  });

  it('dns-egress-node-local honours an opt-out with a reason, and lists it', () => {
    const objects = goodObjects();
    withDnsRule(objects, KUBE_DNS_ONLY);
    const np = pick(objects, 'NetworkPolicy', 'web');
    np.metadata.annotations = { 'fastnext.io/policy-skip.dns-egress-node-local': 'on-prem cluster, CoreDNS pods only' };
    const report = runPolicy(
      objects,
      { production: true },
      CHECKS.filter((c) => c.id === 'dns-egress-node-local'),
    );
    expect(report.findings).toEqual([]);
    expect(report.optOuts.map((o) => `${o.check}: ${o.reason}`)).toEqual([
      'dns-egress-node-local: on-prem cluster, CoreDNS pods only',
    ]);
  });

  it('readiness-probe ignores a Service that publishes not-ready addresses', () => {
    // GIVEN the StatefulSet is reached only through its peer-discovery Service
    const objects = goodObjects();
    delete db(objects).containers[0].readinessProbe;
    // THEN no readiness probe is demanded of it
    expect(findings('readiness-probe', objects)).toEqual([]);
  });

  it('references-exist accepts a Secret declared as supplied from outside', () => {
    const objects = goodObjects();
    delete pick(objects, 'Job', 'db-credentials').metadata.annotations;
    for (const kind of ['Deployment', 'StatefulSet', 'Job']) {
      const o = objects.find((x) => x.kind === kind) as KubeObject;
      o.metadata.annotations = { 'fastnext.io/external-secrets': 'tls, db-credentials' };
    }
    expect(findings('references-exist', objects)).toEqual([]);
  });

  it('references-exist accepts optional references and built-in ClusterRoles', () => {
    const objects = goodObjects();
    web(objects).volumes.push({ name: 'extra', secret: { secretName: 'maybe', optional: true } });
    objects.push({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'web-view', namespace: 'shop' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
      subjects: [{ kind: 'ServiceAccount', name: 'web', namespace: 'shop' }],
    });
    expect(findings('references-exist', objects)).toEqual([]);
  });
});

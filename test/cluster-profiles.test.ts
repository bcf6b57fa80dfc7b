/**
 * Cluster profiles and DNS resolvers: what each profile sets (in the resolved
 * config and in the synthesized objects), that an environment still overrides
 * it, GKE Autopilot's request rules, and bad input refused with field, value and fix.
 */
import { DEFAULT_DNS_RESOLVERS, dnsEgress, dnsResolverPeer, dnsResolverPeers } from '../constructs/core/network';
import { autopilotPodRequests } from '../stacks/autopilot';
import { CLUSTER_PROFILES, type ClusterProfile } from '../stacks/cluster-profiles';
import { ConfigError, type EnvironmentOverrides, parseQuantity, resolveEnvironment } from '../stacks/config';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { runPolicy } from '../tools/manifests/policy/engine';
import { checkObjects } from '../tools/manifests/schema-check';
import { find, type Obj, ofKind, podTemplates } from './helpers/objects';

// A production environment decides about backups; these cases are about the cluster profile.
const env = (profile: string, extra: object = {}): EnvironmentOverrides =>
  ({ name: 'qa', cluster: { profile }, postgres: { backup: { enabled: false } }, ...extra }) as EnvironmentOverrides;
const objectsFor = (overrides: EnvironmentOverrides) => synthObjects(resolveEnvironment(overrides)) as Obj[];

const WITHOUT_METADATA_SERVER = ['k8s-app=kube-dns', 'k8s-app=node-local-dns', '169.254.20.10/32'];

interface ProfileCase {
  profile: ClusterProfile;
  storageClass: string | undefined;
  serviceType: string;
  annotations: Record<string, string>;
  dnsResolvers: readonly string[];
}

const PROFILES: ProfileCase[] = [
  {
    profile: 'generic',
    storageClass: undefined,
    serviceType: 'LoadBalancer',
    annotations: {},
    dnsResolvers: DEFAULT_DNS_RESOLVERS,
  },
  {
    profile: 'gke',
    storageClass: 'standard-rwo',
    serviceType: 'LoadBalancer',
    annotations: { 'cloud.google.com/l4-rbs': 'enabled' },
    dnsResolvers: DEFAULT_DNS_RESOLVERS,
  },
  {
    profile: 'gke-autopilot',
    storageClass: 'standard-rwo',
    serviceType: 'LoadBalancer',
    annotations: { 'cloud.google.com/l4-rbs': 'enabled' },
    dnsResolvers: DEFAULT_DNS_RESOLVERS,
  },
  {
    profile: 'eks',
    storageClass: 'gp3',
    serviceType: 'LoadBalancer',
    annotations: {
      'service.beta.kubernetes.io/aws-load-balancer-type': 'external',
      'service.beta.kubernetes.io/aws-load-balancer-nlb-target-type': 'instance',
      'service.beta.kubernetes.io/aws-load-balancer-scheme': 'internet-facing',
    },
    dnsResolvers: WITHOUT_METADATA_SERVER,
  },
  {
    profile: 'aks',
    storageClass: 'managed-csi',
    serviceType: 'LoadBalancer',
    annotations: { 'service.beta.kubernetes.io/azure-load-balancer-health-probe-request-path': '/healthz' },
    dnsResolvers: WITHOUT_METADATA_SERVER,
  },
  {
    profile: 'kind',
    storageClass: 'standard',
    serviceType: 'ClusterIP',
    annotations: {},
    dnsResolvers: DEFAULT_DNS_RESOLVERS,
  },
];

describe('cluster profiles', () => {
  it('cover every profile with a case', () => {
    expect(PROFILES.map((p) => p.profile)).toEqual([...CLUSTER_PROFILES]);
  });

  describe.each(PROFILES)('$profile', (p) => {
    const config = resolveEnvironment(env(p.profile));
    const objects = objectsFor(env(p.profile));

    it('sets its StorageClass on every volume claim', () => {
      expect(config.storageClass).toBe(p.storageClass);
      const claims = ofKind(objects, 'StatefulSet').flatMap((s) => s.spec.volumeClaimTemplates);
      expect(claims.length).toBeGreaterThan(0);
      for (const claim of claims) expect(claim.spec.storageClassName).toBe(p.storageClass);
    });

    it('sets the edge Service type and load-balancer annotations', () => {
      const svc = find(objects, 'Service', 'edge');
      expect(svc.spec.type).toBe(p.serviceType);
      expect(svc.metadata.annotations ?? {}).toEqual(p.annotations);
      // Client IPs reach the per-client rate limit behind a load balancer or node port.
      expect(svc.spec.externalTrafficPolicy).toBe(p.serviceType === 'ClusterIP' ? undefined : 'Local');
    });

    it('allows DNS to its resolvers from every NetworkPolicy that allows egress', () => {
      expect(config.network.dnsResolvers).toEqual(p.dnsResolvers);
      const expected = {
        to: p.dnsResolvers.map((r) => dnsResolverPeer(r)),
        ports: [
          { protocol: 'UDP', port: 53 },
          { protocol: 'TCP', port: 53 },
        ],
      };
      const policies = ofKind(objects, 'NetworkPolicy');
      expect(policies.length).toBeGreaterThan(0);
      for (const np of policies) expect(np.spec.egress).toContainEqual(expected);
    });

    it('is valid against the Kubernetes 1.28 API (strict)', () => {
      expect(checkObjects(objects)).toEqual([]);
    });

    it('has zero policy findings in production', () => {
      expect(runPolicy(objects, { production: true }).findings.map((f) => `${f.check}: ${f.message}`)).toEqual([]);
    });
  });

  it('kind is laptop-sized: small requests and volumes, no load balancer', () => {
    const kind = resolveEnvironment(env('kind'));
    expect(kind.api.resources.requests).toEqual({ cpu: '100m', memory: '128Mi' });
    expect(kind.redis.resources.requests).toEqual({ cpu: '50m', memory: '192Mi' });
    expect(kind.redis.maxmemory).toBe('128mb');
    expect([kind.postgres.storage.size, kind.redis.storage.size]).toEqual(['2Gi', '1Gi']);
    expect(kind.edge.serviceType).toBe('ClusterIP');
  });

  it('an environment overrides any profile default; annotations add to the profile', () => {
    const eks = resolveEnvironment(
      env('eks', {
        storageClass: 'io2',
        network: { dnsResolvers: ['kube-system/k8s-app=kube-dns', '169.254.20.10/32'] },
        edge: { serviceAnnotations: { 'service.beta.kubernetes.io/aws-load-balancer-scheme': 'internal' } },
      }),
    );
    expect(eks.storageClass).toBe('io2');
    expect(eks.network.dnsResolvers).toEqual(['kube-system/k8s-app=kube-dns', '169.254.20.10/32']);
    expect(eks.edge.serviceAnnotations).toEqual({
      'service.beta.kubernetes.io/aws-load-balancer-type': 'external',
      'service.beta.kubernetes.io/aws-load-balancer-nlb-target-type': 'instance',
      'service.beta.kubernetes.io/aws-load-balancer-scheme': 'internal',
    });
    const kind = resolveEnvironment(env('kind', { edge: { serviceType: 'NodePort' } }));
    expect(kind.edge.serviceType).toBe('NodePort');
  });

  it('prod and staging declare gke, dev declares kind', () => {
    expect(['prod', 'staging', 'dev'].map((n) => loadEnvironment(n).cluster.profile)).toEqual(['gke', 'gke', 'kind']);
  });
});

describe('GKE Autopilot', () => {
  const GIB = 2 ** 30;
  const MIB = 2 ** 20;

  it.each([
    { pod: { cpu: 0.11, memory: 80 * MIB }, fit: { cpu: 0.25, memory: 512 * MIB }, why: 'raised to the minimum' },
    { pod: { cpu: 0.51, memory: 1056 * MIB }, fit: { cpu: 0.75, memory: 1056 * MIB }, why: 'CPU in 250m steps' },
    { pod: { cpu: 0.26, memory: 2576 * MIB }, fit: { cpu: 0.5, memory: 2576 * MIB }, why: 'within the ratio' },
    { pod: { cpu: 0.25, memory: 4 * GIB }, fit: { cpu: 0.75, memory: 4 * GIB }, why: 'CPU raised to 6.5 GiB/vCPU' },
    { pod: { cpu: 2, memory: 1 * GIB }, fit: { cpu: 2, memory: 2 * GIB }, why: 'memory raised to 1 GiB/vCPU' },
    { pod: { cpu: 1, memory: 2 * GIB }, fit: { cpu: 1, memory: 2 * GIB }, why: 'already admitted' },
  ])('pod $pod.cpu cores / $pod.memory bytes: $why', ({ pod, fit }) => {
    expect(autopilotPodRequests(pod)).toEqual(fit);
  });

  const objects = objectsFor(env('gke-autopilot'));
  const sum = (containers: Obj[], kind: 'cpu' | 'memory') =>
    containers.reduce((t, c) => t + parseQuantity(c.resources.requests[kind]), 0);

  it.each(podTemplates(objects).map((t) => [`${t.owner.kind}/${t.owner.metadata.name}`, t] as const))(
    '%s requests what Autopilot admits, within its limits',
    (_name, t) => {
      const cpu = sum(t.spec.containers, 'cpu');
      const memory = sum(t.spec.containers, 'memory');
      expect(cpu).toBeGreaterThanOrEqual(0.25);
      expect(Math.abs(cpu / 0.25 - Math.round(cpu / 0.25))).toBeLessThan(1e-9);
      expect(memory).toBeGreaterThanOrEqual(512 * MIB);
      expect(memory / GIB / cpu).toBeGreaterThanOrEqual(1);
      expect(memory / GIB / cpu).toBeLessThanOrEqual(6.5);
      for (const c of t.spec.containers) {
        for (const kind of ['cpu', 'memory'] as const) {
          expect(parseQuantity(c.resources.limits[kind])).toBeGreaterThanOrEqual(
            parseQuantity(c.resources.requests[kind]),
          );
        }
      }
      // Autopilot refuses most node selectors; no tier sets one.
      expect(t.spec.nodeSelector).toBeUndefined();
    },
  );

  it('the extra request goes to the main container: edge 100m + exporter 10m becomes 240m + 10m', () => {
    const edge = find(objects, 'Deployment', 'edge').spec.template.spec.containers;
    expect(edge.map((c: Obj) => c.resources.requests)).toEqual([
      { cpu: '240m', memory: '496Mi' },
      { cpu: '10m', memory: '16Mi' },
    ]);
    expect(edge[0].resources.limits).toEqual({ cpu: '500m', memory: '496Mi' });
  });

  it('other profiles keep the configured requests', () => {
    const edge = find(objectsFor(env('gke')), 'Deployment', 'edge').spec.template.spec.containers[0];
    expect(edge.resources.requests).toEqual({ cpu: '100m', memory: '64Mi' });
  });
});

describe('DNS resolvers', () => {
  it.each([
    ['169.254.20.10/32', { ipBlock: { cidr: '169.254.20.10/32' } }],
    ['fd00::a/128', { ipBlock: { cidr: 'fd00::a/128' } }],
    ['k8s-app=kube-dns', { namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
    [
      'kube-system/k8s-app=kube-dns,tier=dns',
      {
        namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
        podSelector: { matchLabels: { 'k8s-app': 'kube-dns', tier: 'dns' } },
      },
    ],
    [
      'app.kubernetes.io/name=coredns',
      { namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'coredns' } } },
    ],
  ])('%s becomes a NetworkPolicy peer', (resolver, peer) => {
    expect(dnsResolverPeer(resolver)).toEqual(peer);
  });

  it.each([
    'kube-dns',
    '169.254.20.10',
    '169.254.20.300/32',
    '10.0.0.0/33',
    '=kube-dns',
    'a=b=c',
    'Kube_System/k=v',
    '',
  ])('%j is neither a CIDR nor a label selector', (resolver) => {
    expect(dnsResolverPeer(resolver)).toBeUndefined();
  });

  it('fails when a resolver list given to a construct holds neither a CIDR nor a label selector', () => {
    expect(() => dnsResolverPeers(['169.254.20.10/32', 'kube-dns'])).toThrow(
      '\'dnsResolvers[1]\' ("kube-dns") must be a CIDR such as "169.254.20.10/32" or a pod label selector such as "k8s-app=kube-dns" (or "kube-system/k8s-app=kube-dns")',
    );
  });

  it('fails when a construct is given no resolver', () => {
    expect(() => dnsEgress([])).toThrow(
      "'dnsResolvers' ([]) must name at least one resolver: with none, every DNS lookup is denied",
    );
  });
});

describe('bad cluster input is refused at synth with field, value and fix', () => {
  const errorFor = (overrides: EnvironmentOverrides): string => {
    try {
      resolveEnvironment(overrides);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  };

  it.each([
    {
      when: 'the profile is unknown',
      overrides: env('gcp'),
      problems: ['cluster.profile: "gcp" must be one of "generic", "gke", "gke-autopilot", "eks", "aks", "kind"'],
    },
    {
      when: 'a resolver is neither a CIDR nor a label selector',
      overrides: env('generic', { network: { dnsResolvers: ['k8s-app=kube-dns', 'kube-dns', '169.254.20.10'] } }),
      problems: [
        'network.dnsResolvers.1: "kube-dns" must be a CIDR such as "169.254.20.10/32" or a pod label selector such as "k8s-app=kube-dns" (or "kube-system/k8s-app=kube-dns")',
        'network.dnsResolvers.2: "169.254.20.10" must be a CIDR such as "169.254.20.10/32" or a pod label selector such as "k8s-app=kube-dns" (or "kube-system/k8s-app=kube-dns")',
      ],
    },
    {
      when: 'the resolver list is empty',
      overrides: env('generic', { network: { dnsResolvers: [] } }),
      problems: ['network.dnsResolvers: [] must name at least one resolver: with none, every DNS lookup is denied'],
    },
    {
      when: 'a kind profile has a LoadBalancer edge',
      overrides: env('kind', { edge: { serviceType: 'LoadBalancer' } }),
      problems: [
        "edge.serviceType: \"LoadBalancer\" cannot be used with cluster.profile 'kind': kind has no load-balancer controller, so the Service stays pending; use 'ClusterIP' (kubectl port-forward) or 'NodePort'",
      ],
    },
    {
      when: 'a gke-autopilot tier selects nodes by a key Autopilot refuses',
      overrides: env('gke-autopilot', {
        api: { pod: { nodeSelector: { disktype: 'ssd', 'kubernetes.io/arch': 'amd64' } } },
      } as Partial<EnvironmentOverrides>),
      problems: [
        "api.pod.nodeSelector.disktype: \"ssd\" is refused by GKE Autopilot (cluster.profile 'gke-autopilot' admits node selectors on cloud.google.com/compute-class, cloud.google.com/gke-spot, cloud.google.com/gke-accelerator, cloud.google.com/machine-family, cloud.google.com/gke-placement-group, cloud.google.com/reservation-name, cloud.google.com/gke-ephemeral-storage-local-ssd, topology.kubernetes.io/zone, topology.kubernetes.io/region, kubernetes.io/arch, kubernetes.io/os); ask for a compute class with 'cloud.google.com/compute-class' instead",
      ],
    },
    {
      when: 'a cluster field is misspelt',
      overrides: {
        name: 'qa',
        cluster: { profil: 'gke' },
        postgres: { backup: { enabled: false } },
      } as unknown as EnvironmentOverrides,
      problems: ['cluster.profil: unknown field (a typo?); allowed here: profile'],
    },
  ])('fails when $when', ({ overrides, problems }) => {
    expect(errorFor(overrides)).toBe(
      `Invalid config for environment 'qa':\n${problems.map((p) => `  - ${p}`).join('\n')}`,
    );
  });
});

/**
 * Fine-grained invariants of every environment's synthesized objects. They
 * hold for every tier, so a tier added later is held to the same bar.
 */
import { parseQuantity } from '../constructs/core/quantity';
import { workersFor } from '../constructs/edge/nginx-conf';
import { RUNTIME_LABELS_ANNOTATION } from '../constructs/postgres/patroni-cluster';
import { SERVICE_ENV, SERVICE_PATHS, SERVICE_PORTS } from '../service/src/contract';
import { loadEnvironment } from '../stacks/environments';
import { checkObjects } from '../tools/manifests/schema-check';
import { containersOf, ENVS, find, label, type Obj, objectsOf, ofKind, podTemplates, selects } from './helpers/objects';

describe.each(ENVS)('%s', (env) => {
  const objects = objectsOf(env);
  const config = loadEnvironment(env);
  const templates = podTemplates(objects);

  test('Namespace comes first and enforces Pod Security "restricted"', () => {
    expect(objects[0].kind).toBe('Namespace');
    expect(objects[0].metadata.name).toBe(config.namespace);
    expect(objects[0].metadata.labels).toMatchObject({
      'pod-security.kubernetes.io/enforce': 'restricted',
      'pod-security.kubernetes.io/warn': 'restricted',
      'pod-security.kubernetes.io/audit': 'restricted',
    });
  });

  test('every namespaced object lives in the environment namespace; cluster-scoped ones name none', () => {
    const clusterScoped = ['Namespace', 'ClusterRole', 'ClusterRoleBinding'];
    for (const o of objects.filter((x) => !clusterScoped.includes(x.kind))) {
      expect([label(o), o.metadata.namespace]).toEqual([label(o), config.namespace]);
    }
    for (const o of objects.filter((x) => ['ClusterRole', 'ClusterRoleBinding'].includes(x.kind))) {
      expect([label(o), o.metadata.namespace]).toEqual([label(o), undefined]);
    }
  });

  test('every object is valid against the Kubernetes 1.28 API (strict)', () => {
    expect(checkObjects(objects)).toEqual([]);
  });

  test('API HPA scales the api Deployment between the configured bounds on CPU and memory', () => {
    const hpa = find(objects, 'HorizontalPodAutoscaler', 'api');
    const a = config.api.autoscaling;
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'api' });
    expect([hpa.spec.minReplicas, hpa.spec.maxReplicas]).toEqual([a.minReplicas, a.maxReplicas]);
    const targets = Object.fromEntries(
      hpa.spec.metrics.map((m: Obj) => [m.resource.name, m.resource.target.averageUtilization]),
    );
    expect(targets).toEqual({ cpu: a.cpuTargetPercent, memory: a.memoryTargetPercent });
    expect(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds).toBe(a.scaleDownStabilizationSeconds);
  });

  test('no workload under an HPA sets replicas', () => {
    for (const hpa of ofKind(objects, 'HorizontalPodAutoscaler')) {
      const target = find(objects, hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name);
      expect([label(target), target.spec.replicas]).toEqual([label(target), undefined]);
      expect(hpa.spec.minReplicas).toBeLessThan(hpa.spec.maxReplicas + 1);
    }
  });

  test('every probe points at a port declared on its container', () => {
    for (const t of templates) {
      for (const c of containersOf(t.spec)) {
        const declared = new Set<string | number>(
          (c.ports ?? []).flatMap((p: Obj) => [p.containerPort, ...(p.name ? [p.name] : [])]),
        );
        for (const probe of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
          const port = c[probe]?.httpGet?.port ?? c[probe]?.tcpSocket?.port;
          if (port !== undefined)
            expect([label(t.owner), c.name, probe, declared.has(port)]).toEqual([label(t.owner), c.name, probe, true]);
        }
      }
    }
  });

  test('long-running containers have readiness and liveness probes, and they differ', () => {
    for (const t of templates.filter((x) => ['Deployment', 'StatefulSet'].includes(x.owner.kind))) {
      for (const c of t.spec.containers) {
        expect([label(t.owner), c.name, Boolean(c.readinessProbe), Boolean(c.livenessProbe)]).toEqual([
          label(t.owner),
          c.name,
          true,
          true,
        ]);
        expect(c.livenessProbe).not.toEqual(c.readinessProbe);
      }
    }
  });

  test('the API probes hit the paths the service serves (from the service contract)', () => {
    const api = find(objects, 'Deployment', 'api').spec.template.spec.containers[0];
    expect(api.livenessProbe.httpGet.path).toBe(SERVICE_PATHS.liveness);
    expect(api.readinessProbe.httpGet.path).toBe(SERVICE_PATHS.readiness);
    expect(api.startupProbe.httpGet.path).toBe(SERVICE_PATHS.startup);
    expect(api.ports.find((p: Obj) => p.name === 'http').containerPort).toBe(SERVICE_PORTS.http);
    const envNames = api.env.map((e: Obj) => e.name);
    expect(envNames).toEqual(expect.arrayContaining([SERVICE_ENV.postgresServer, SERVICE_ENV.redisClusterNodes]));
    for (const n of envNames) expect(Object.values(SERVICE_ENV)).toContain(n);
  });

  test('every Service selects the pods of some pod template, on ports they declare', () => {
    for (const svc of ofKind(objects, 'Service')) {
      // Labels a controller sets on live pods (Patroni's role label) are on no template.
      const runtime = (svc.metadata.annotations?.[RUNTIME_LABELS_ANNOTATION] ?? '').split(',');
      const selector: Record<string, string> = Object.fromEntries(
        Object.entries(svc.spec.selector as Record<string, string>).filter(([k]) => !runtime.includes(k)),
      );
      const matching = templates.filter((t) => t.owner.kind !== 'CronJob' && selects(selector, t.labels));
      expect([label(svc), matching.length > 0]).toEqual([label(svc), true]);
      for (const port of svc.spec.ports) {
        const target = port.targetPort ?? port.port;
        const found = matching.some((t) =>
          t.spec.containers.some((c: Obj) =>
            (c.ports ?? []).some((p: Obj) => p.name === target || p.containerPort === target),
          ),
        );
        expect([label(svc), port.name, found]).toEqual([label(svc), port.name, true]);
      }
    }
  });

  test('every PDB selects pods and allows at least one eviction', () => {
    const pdbs = ofKind(objects, 'PodDisruptionBudget');
    expect(pdbs.length).toBeGreaterThan(0);
    for (const pdb of pdbs) {
      expect(templates.some((t) => selects(pdb.spec.selector.matchLabels, t.labels))).toBe(true);
      if (pdb.spec.maxUnavailable !== undefined) expect(pdb.spec.maxUnavailable).not.toBe(0);
      if (pdb.spec.minAvailable !== undefined) {
        const hpa = ofKind(objects, 'HorizontalPodAutoscaler').find((h) =>
          templates.some(
            (t) =>
              t.owner.metadata.name === h.spec.scaleTargetRef.name && selects(pdb.spec.selector.matchLabels, t.labels),
          ),
        );
        if (hpa) expect(pdb.spec.minAvailable).toBeLessThan(hpa.spec.minReplicas);
      }
    }
  });

  test('every multi-replica workload has a PDB', () => {
    for (const t of templates.filter((x) => ['Deployment', 'StatefulSet'].includes(x.owner.kind))) {
      const hpa = ofKind(objects, 'HorizontalPodAutoscaler').find(
        (h) => h.spec.scaleTargetRef.name === t.owner.metadata.name,
      );
      const replicas = hpa ? hpa.spec.maxReplicas : (t.owner.spec.replicas ?? 1);
      if (replicas > 1) {
        const pdb = ofKind(objects, 'PodDisruptionBudget').find((p) => selects(p.spec.selector.matchLabels, t.labels));
        expect([label(t.owner), Boolean(pdb)]).toEqual([label(t.owner), true]);
      }
    }
  });

  test('every container is hardened: non-root, no escalation, drop ALL, read-only root fs, seccomp', () => {
    for (const t of templates) {
      expect([label(t.owner), t.spec.securityContext?.runAsNonRoot]).toEqual([label(t.owner), true]);
      expect(t.spec.securityContext.runAsUser).toBeGreaterThan(0);
      expect(t.spec.securityContext.seccompProfile).toEqual({ type: 'RuntimeDefault' });
      expect(t.spec.hostNetwork ?? false).toBe(false);
      expect(t.spec.hostPID ?? false).toBe(false);
      for (const v of t.spec.volumes ?? []) expect(v.hostPath).toBeUndefined();
      for (const c of containersOf(t.spec)) {
        const sc = c.securityContext ?? {};
        expect([
          label(t.owner),
          c.name,
          sc.allowPrivilegeEscalation,
          sc.readOnlyRootFilesystem,
          sc.capabilities?.drop,
        ]).toEqual([label(t.owner), c.name, false, true, ['ALL']]);
        expect(sc.privileged ?? false).toBe(false);
      }
    }
  });

  test('every container has CPU and memory requests and limits, and a pinned image', () => {
    for (const t of templates) {
      for (const c of containersOf(t.spec)) {
        for (const kind of ['requests', 'limits']) {
          expect([label(t.owner), c.name, kind, Object.keys(c.resources?.[kind] ?? {}).sort()]).toEqual([
            label(t.owner),
            c.name,
            kind,
            ['cpu', 'memory'],
          ]);
        }
        expect(c.image).toMatch(/(:[\w.-]+|@sha256:[a-f0-9]{64})$/);
        expect(c.image).not.toMatch(/:latest$/);
      }
    }
  });

  test('every pod is selected by a NetworkPolicy with ingress and egress, and every policy selects pods', () => {
    const policies = ofKind(objects, 'NetworkPolicy');
    for (const t of templates) {
      const mine = policies.filter((p) => selects(p.spec.podSelector.matchLabels, t.labels));
      expect([label(t.owner), mine.length > 0]).toEqual([label(t.owner), true]);
      const types = new Set(mine.flatMap((p) => p.spec.policyTypes));
      expect([label(t.owner), [...types].sort()]).toEqual([label(t.owner), ['Egress', 'Ingress']]);
    }
    for (const p of policies) {
      expect([label(p), templates.some((t) => selects(p.spec.podSelector.matchLabels, t.labels))]).toEqual([
        label(p),
        true,
      ]);
    }
  });

  test('the API accepts traffic only from the edge and Prometheus', () => {
    const np = find(objects, 'NetworkPolicy', 'api');
    const from = np.spec.ingress.map((r: Obj) => [
      r.from[0].podSelector.matchLabels['app.kubernetes.io/name'],
      r.ports[0].port,
    ]);
    expect(from).toEqual([
      ['edge', SERVICE_PORTS.http],
      ['prometheus', SERVICE_PORTS.metrics],
    ]);
  });

  test('the API Deployment rolls with maxUnavailable 0 and a grace period longer than preStop + drain', () => {
    const d = find(objects, 'Deployment', 'api');
    expect(d.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    const pod = d.spec.template.spec;
    const preStop = Number(pod.containers[0].lifecycle.preStop.exec.command[1]);
    const drain = Number(pod.containers[0].env.find((e: Obj) => e.name === SERVICE_ENV.shutdownDrainSeconds).value);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(preStop + drain);
  });

  test('workloads spread over nodes and zones; ServiceAccounts mount no token', () => {
    for (const t of templates.filter((x) => ['Deployment', 'StatefulSet'].includes(x.owner.kind))) {
      const keys = (t.spec.topologySpreadConstraints ?? []).map((c: Obj) => c.topologyKey);
      const anti = t.spec.affinity?.podAntiAffinity;
      expect([label(t.owner), keys.includes('kubernetes.io/hostname') || Boolean(anti)]).toEqual([
        label(t.owner),
        true,
      ]);
    }
    for (const sa of ofKind(objects, 'ServiceAccount').filter(
      (s) => s.metadata.name === 'api' || s.metadata.name === 'edge',
    )) {
      expect(sa.automountServiceAccountToken).toBe(false);
    }
  });

  test('the edge Service has the configured type and exposes HTTPS only with TLS', () => {
    const svc = find(objects, 'Service', 'edge');
    expect(svc.spec.type).toBe(config.edge.serviceType);
    const names = svc.spec.ports.map((p: Obj) => p.name);
    expect(names.includes('https')).toBe(config.edge.tls !== undefined);
    expect(names).not.toContain('status');
  });

  test('the edge ConfigMap holds the nginx.conf with the configured rate limit', () => {
    const conf = find(objects, 'ConfigMap', 'edge-nginx-conf').data['nginx.conf'];
    expect(conf).toContain(`rate=${config.edge.rateLimit.requestsPerSecond}r/s`);
    expect(conf).toContain(`burst=${config.edge.rateLimit.burst} nodelay`);
    expect(conf).toContain('least_conn;');
    expect(conf).toContain(`keepalive ${config.edge.upstreamKeepalive};`);
    expect(conf).toMatch(
      /server api-headless\.[a-z0-9-]+\.svc\.cluster\.local:8000 resolve max_fails=3 fail_timeout=30s;/,
    );
  });

  test('nginx runs as many workers as the edge container has CPUs in its limit, and buffers its access log', () => {
    const conf: string = find(objects, 'ConfigMap', 'edge-nginx-conf').data['nginx.conf'];
    const nginx = find(objects, 'Deployment', 'edge').spec.template.spec.containers.find(
      (c: Obj) => c.name === 'nginx',
    );
    const limit = parseQuantity(nginx.resources.limits.cpu);
    const workers = Number(/^worker_processes (\d+);$/m.exec(conf)?.[1]);
    expect(workers).toBeGreaterThanOrEqual(1);
    expect(workers).toBeGreaterThanOrEqual(limit);
    expect(workers - 1).toBeLessThan(limit);
    expect(conf).toContain('access_log /dev/stdout json buffer=64k flush=1s;');
  });
});

test('nginx workers: the CPU limit rounded up, at least one', () => {
  expect(['100m', '500m', '1', '1500m', '2', '4.2'].map(workersFor)).toEqual([1, 1, 1, 2, 2, 5]);
});

describe('strict validation', () => {
  test('fails when a field is misspelled (kubeconform -strict behaviour)', () => {
    const d = structuredClone(find(objectsOf('dev'), 'Deployment', 'api'));
    d.spec.template.spec.containers[0].readinesProbe = d.spec.template.spec.containers[0].readinessProbe;
    const problems = checkObjects([d]);
    expect(problems).toHaveLength(1);
    expect(problems[0].object).toBe('Deployment fastnext-dev/api');
    expect(problems[0].path).toBe('spec.template.spec.containers[0].readinesProbe');
    expect(problems[0].message).toMatch(
      /^unknown field 'readinesProbe' \(not in the Kubernetes 1\.28 V1Container; allowed: args, /,
    );
  });

  test('fails when an enum value or a type is wrong, or a required field is missing', () => {
    const d = structuredClone(find(objectsOf('dev'), 'Deployment', 'api'));
    d.spec.template.spec.containers[0].imagePullPolicy = 'Sometimes';
    d.spec.template.spec.containers[0].ports[0].containerPort = '8000';
    delete d.spec.selector;
    expect(checkObjects([d]).map((p) => `${p.path}: ${p.message}`)).toEqual([
      'spec: must have required property selector',
      'spec.template.spec.containers[0].imagePullPolicy: must be equal to one of the allowed values: Always, IfNotPresent, Never',
      'spec.template.spec.containers[0].ports[0].containerPort: must be integer',
    ]);
  });

  test('fails when a kind does not exist in 1.28, or an object is duplicated', () => {
    const ns = objectsOf('dev')[0];
    const bogus = { apiVersion: 'autoscaling/v2beta1', kind: 'HorizontalPodAutoscaler', metadata: { name: 'x' } };
    expect(checkObjects([bogus as Obj, ns, ns]).map((p) => p.message)).toEqual([
      'autoscaling/v2beta1 HorizontalPodAutoscaler is not a kind of the Kubernetes 1.28 API',
      'duplicate object',
    ]);
  });
});

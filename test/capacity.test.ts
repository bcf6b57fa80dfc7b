/**
 * `npm run capacity`: requests and limits at the HPA minimum and maximum, and
 * storage claimed, computed the way the scheduler counts a pod.
 */
import type { KubeObject } from '../stacks/synth';
import {
  capacityOf,
  formatCapacityMarkdown,
  formatCapacityText,
  podResources,
} from '../tools/manifests/capacity/capacity';
import { main as capacity } from '../tools/manifests/capacity/cli';
import { goodObjects, pick } from './fixtures/policy/baseline';

const c = (name: string, cpu: string, memory: string, extra: object = {}) => ({
  name,
  resources: { requests: { cpu, memory }, limits: { cpu, memory } },
  ...extra,
});

describe('capacity', () => {
  it('counts a pod as its containers plus sidecars, or its largest init container if bigger', () => {
    const r = podResources({
      containers: [c('app', '250m', '256Mi'), c('exporter', '50m', '64Mi')],
      initContainers: [c('migrate', '1', '128Mi'), c('proxy', '100m', '32Mi', { restartPolicy: 'Always' })],
    });
    expect(r).toEqual({ cpuRequest: 1, cpuLimit: 1, memoryRequest: 352 * 2 ** 20, memoryLimit: 352 * 2 ** 20 });
  });

  it('multiplies by HPA bounds and replicas, adds claim templates and PVCs, and leaves Jobs out', () => {
    // GIVEN web (100m/128Mi per pod) scales 2–5, db (same pod) runs 3 replicas with a 10Gi claim each, plus a 1Gi PVC
    const objects: KubeObject[] = goodObjects();
    pick(objects, 'StatefulSet', 'db').spec.volumeClaimTemplates = [
      { metadata: { name: 'data' }, spec: { resources: { requests: { storage: '10Gi' } } } },
    ];
    objects.push({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'scratch', namespace: 'shop' },
      spec: { resources: { requests: { storage: '1Gi' } } },
    });
    // WHEN capacity is computed
    const cap = capacityOf(objects);
    // THEN
    const Mi = 2 ** 20;
    const Gi = 2 ** 30;
    expect(cap.atMin).toEqual({
      pods: 5,
      cpuRequest: 0.5,
      cpuLimit: 2.5,
      memoryRequest: 640 * Mi,
      memoryLimit: 1280 * Mi,
      storage: 31 * Gi,
    });
    expect(cap.atMax.pods).toBe(8);
    expect(cap.atMax.cpuRequest).toBeCloseTo(0.8);
    expect(cap.jobs).toEqual(['Job db-credentials']);
    expect(formatCapacityText('shop', cap)).toBe(
      [
        'shop',
        '                            pods  CPU req  CPU lim  mem req   mem lim  storage',
        '  Deployment web (per pod)   2-5      0.1      0.5  128 MiB   256 MiB    0 MiB',
        '  StatefulSet db (per pod)     3      0.1      0.5  128 MiB   256 MiB   10 GiB',
        '  total at HPA minimum         5      0.5      2.5  640 MiB  1.25 GiB   31 GiB',
        '  total at HPA maximum         8      0.8        4    1 GiB     2 GiB   31 GiB',
        '  (not counted: Job db-credentials)',
        '',
      ].join('\n'),
    );
  });

  it('markdown shows base → head with the difference', () => {
    const base = capacityOf(goodObjects());
    const bigger = goodObjects();
    pick(bigger, 'HorizontalPodAutoscaler', 'web').spec.minReplicas = 3;
    expect(formatCapacityMarkdown(base, capacityOf(bigger)).split('\n')[2]).toBe(
      '| at HPA minimum | 5 → 6 (+1) | 0.5 → 0.6 (+0.1) | 2.5 → 3 (+0.5) | 640 MiB → 768 MiB (+128 MiB) | 1.25 GiB → 1.5 GiB (+256 MiB) | 0 MiB |',
    );
  });

  it('npm run capacity prints every shipped environment', () => {
    let out = '';
    const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out += String(chunk);
      return true;
    });
    try {
      expect(capacity([])).toBe(0);
    } finally {
      write.mockRestore();
    }
    expect(out).toMatch(/^dev\n/);
    expect(out).toMatch(/\nprod\n[^]*total at HPA maximum/);
  });
});

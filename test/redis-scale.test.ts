/**
 * Scaling a real Redis 7 Cluster from config (issue 20 item 1), with the shipped files of the dev
 * environment: the StatefulSet's nodes from the start script, the create Job's reconcile script.
 * 3 -> 4 -> 3 masters under a read/write loop of application clients with the slot coverage
 * sampled on every node that stays; then a scale-in the data would not fit, refused before
 * anything moves. The same drill with 1 M keys: `npm run bench:redis-scale` (docs/redis-scaling.md).
 */
import { parseRedisSize } from '../constructs/redis/files';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';

import {
  type ClusterNodeView,
  loadKeys,
  mastersUsedMemory,
  missingKeys,
  type RedisClusterLaunch,
  resolveTwinHostnames,
  sampledScale,
  scaleClient,
  ScaleTraffic,
  startRedisCluster,
} from '../tools/runtime/launcher';
import { waitFor } from '../tools/runtime/launcher/processes';

jest.setTimeout(240000);

// noeviction: a node that ran full would fail writes rather than drop keys silently.
const MAXMEMORY = '32mb';
const config = loadEnvironment('dev', { redis: { maxmemory: MAXMEMORY, maxmemoryPolicy: 'noeviction' } });
const KEYS = 50000;
/** Keys of the refused scale-in's fill start here (after the loaded ones). */
const FILL_FROM = 1_000_000;
let redis: RedisClusterLaunch;
const report: string[] = [];

beforeAll(async () => {
  redis = await startRedisCluster(synthObjects(config), { masters: 3, replicasPerMaster: 1 });
  // The clients find the nodes by the names they announce, as through the cluster DNS.
  resolveTwinHostnames(redis);
  report.push(`loaded ${KEYS} keys in ${await loadKeys(redis, KEYS)} ms`);
});
afterAll(async () => {
  await redis?.stop();
  console.log(report.join('\n'));
});

/** Masters serving slots (id -> slot count) and how many replicas each has, as node 0 sees them. */
async function layout() {
  const view = await redis.clusterNodes(0);
  const slots = (ranges: string) =>
    ranges
      .split(' ')
      .filter((r) => r !== '' && !r.startsWith('['))
      .reduce((sum, r) => {
        const [a, b] = r.split('-').map(Number);
        return sum + (b === undefined ? 1 : b - a + 1);
      }, 0);
  const masters = view.filter((n) => n.flags === 'master' && n.slots !== '');
  return {
    nodes: view.length,
    slots: masters.map((m) => slots(m.slots)).sort((a, b) => a - b),
    replicas: masters.map((m) => view.filter((n) => n.flags === 'slave' && n.master === m.id).length),
    emptyMasters: view.filter((n) => n.flags === 'master' && n.slots === '').length,
    failing: view.filter((n) => n.flags.includes('fail') || !n.connected).length,
  };
}

/** Every count within rounding of an even split of the 16384 slots. */
const even = (counts: number[]) => counts.every((c) => Math.abs(c - 16384 / counts.length) <= 1);

describe('3 -> 4 -> 3 masters under a read/write loop', () => {
  let traffic: ScaleTraffic;

  test('scale out to 4 masters: a new master with a replica, slots even, every slot covered at every sample', async () => {
    traffic = new ScaleTraffic(redis, 4);
    await waitFor('traffic flowing', async () => traffic.reads > 200, 30000);
    const out = await sampledScale(redis, 4);
    report.push(
      `3 -> 4 masters: nodes started ${out.result.startMs} ms, reconcile ${out.result.reconcileMs} ms; ` +
        `${out.samples} coverage samples`,
    );
    expect(out.uncovered).toEqual([]);
    expect(out.samples).toBeGreaterThan(20);
    const l = await layout();
    expect([l.nodes, l.slots.length, l.emptyMasters, l.failing]).toEqual([8, 4, 0, 0]);
    expect(l.replicas).toEqual([1, 1, 1, 1]);
    expect(even(l.slots)).toBe(true);
    expect(l.slots.reduce((a, b) => a + b, 0)).toBe(16384);
  });

  test('fails when the data of 4 masters exceeds 3 x maxmemory: the scale-in is refused with the numbers, nothing moved', async () => {
    // GIVEN 4 masters whose data exceeds what 3 of them may hold (each still under its own maxmemory)
    const maxmemory = parseRedisSize(MAXMEMORY);
    let fill = 0;
    while ((await mastersUsedMemory(redis)).used < 3 * maxmemory * 1.08) {
      await loadKeys(redis, 5000, { from: FILL_FROM + fill, valueBytes: 1000 });
      fill += 5000;
    }
    const measured = await mastersUsedMemory(redis);
    const before = await redis.clusterNodes(0);
    // WHEN the config asks for 3 masters
    const r = await redis.scale({ masters: 3 });
    // THEN the Job exits non-zero naming both sides, and the cluster is as it was
    expect(r.code).toBe(3);
    const m =
      /refusing to scale in from 4 to 3 masters: the 4 masters use (\d+) bytes \(used_memory\), more than the 3 remaining masters hold \(3 x maxmemory (\d+) = (\d+) bytes\)/.exec(
        r.output,
      );
    expect(m).not.toBeNull();
    const [used, max, capacity] = m!.slice(1).map(Number);
    expect([max, capacity]).toEqual([maxmemory, 3 * maxmemory]);
    expect(used).toBeGreaterThan(capacity);
    expect(Math.abs(used - measured.used) / measured.used).toBeLessThan(0.05);
    expect(redis.nodes).toHaveLength(8);
    expect(redis.topology.masters).toBe(4);
    expect((await redis.clusterNodes(0)).map((n) => [n.id, n.flags, n.slots])).toEqual(
      before.map((n) => [n.id, n.flags, n.slots]),
    );
    report.push(`refused scale-in: ${used} bytes used > 3 x ${max}; refused in ${r.reconcileMs} ms`);
    // AND once the data is gone again, the same scale-in fits (next test)
    const c = scaleClient(redis, 'admin');
    try {
      for (let k = 0; k < fill; k += 5000) {
        await Promise.all(Array.from({ length: 5000 }, (_, i) => c.del(`fastnext:scale:bulk:${FILL_FROM + k + i}`)));
      }
    } finally {
      c.disconnect();
    }
    expect((await mastersUsedMemory(redis)).used).toBeLessThan(3 * maxmemory * 0.5);
  });

  test('scale in to 3 masters: slots moved off the leaving master, the nodes removed, then stopped', async () => {
    const readsBefore = traffic.reads;
    await waitFor('more traffic', async () => traffic.reads > readsBefore + 200, 30000);
    const out = await sampledScale(redis, 3);
    report.push(
      `4 -> 3 masters: reconcile ${out.result.reconcileMs} ms, nodes stopped ${out.result.stopMs} ms; ` +
        `${out.samples} coverage samples`,
    );
    expect(out.uncovered).toEqual([]);
    expect(out.samples).toBeGreaterThan(20);
    expect(redis.nodes).toHaveLength(6);
    const l = await layout();
    expect([l.nodes, l.slots.length, l.emptyMasters, l.failing]).toEqual([6, 3, 0, 0]);
    expect(l.replicas).toEqual([1, 1, 1]);
    expect(even(l.slots)).toBe(true);
    // Every node that stays forgot the two that left.
    for (let i = 0; i < 6; i++) expect((await redis.clusterInfo(i)).cluster_known_nodes).toBe('6');
    expect(await redis.healthy()).toBe(true);
  });

  test('no read or write failed, no written key was lost, every loaded key is there', async () => {
    const lost = await traffic.stop();
    report.push(`traffic: ${traffic.writes} writes, ${traffic.reads} reads, ${traffic.failed.length} failed`);
    expect(traffic.failed).toEqual([]);
    expect(lost).toEqual([]);
    expect(traffic.reads).toBeGreaterThan(400);
    expect(await missingKeys(redis, KEYS)).toEqual([]);
  });

  test('the reconcile script run again on the scaled cluster moves nothing', async () => {
    const before = await redis.clusterNodes(0);
    const r = await redis.runCreate();
    expect(r.code).toBe(0);
    expect(r.output).toContain('cluster ok: 16384 slots, 3 masters, 3 replicas (1 per master)');
    expect(r.output).not.toMatch(/Moving slot|adding it to the cluster|becomes a replica|removing node/);
    expect((await redis.clusterNodes(0)).map((n) => [n.id, n.flags, n.master, n.slots])).toEqual(
      before.map((n) => [n.id, n.flags, n.master, n.slots]),
    );
  });
});

describe('what a re-run of the reconcile script repairs', () => {
  /** Index of the node with this id. */
  const indexOf = async (id: string) => (await redis.nodeIds()).indexOf(id);

  test('a slot left open by an interrupted migration is closed (redis-cli --cluster fix); every key stays', async () => {
    // GIVEN a slot half-way through a migration, as a reconcile Job killed mid-rebalance leaves it
    const slot = Number((await redis.cli(0, 'cluster', 'keyslot', 'fastnext:scale:bulk:0')).trim());
    const view = await redis.clusterNodes(0);
    const serving = view.filter((n) => n.flags === 'master' && n.slots !== '');
    const owns = (ranges: string) =>
      ranges.split(' ').some((r) => {
        const [a, b] = r.split('-').map(Number);
        return slot >= a && slot <= (b ?? a);
      });
    const owner = serving.find((n) => owns(n.slots))!;
    const target = serving.find((n) => n.id !== owner.id)!;
    expect(
      await redis.cli(await indexOf(target.id), 'cluster', 'setslot', String(slot), 'importing', owner.id),
    ).toMatch(/OK/);
    expect(
      await redis.cli(await indexOf(owner.id), 'cluster', 'setslot', String(slot), 'migrating', target.id),
    ).toMatch(/OK/);
    expect((await redis.clusterNodes(await indexOf(owner.id))).find((n) => n.id === owner.id)!.slots).toContain(
      `[${slot}->-`,
    );
    // WHEN the Job runs again
    const r = await redis.runCreate();
    // THEN it closed the slot and the cluster checks clean, with every key in place
    expect(r.code).toBe(0);
    expect(r.output).toContain('slots left open by an interrupted migration: redis-cli --cluster fix');
    for (let i = 0; i < redis.nodes.length; i++) {
      expect((await redis.clusterNodes(i)).filter((n) => n.slots.includes('['))).toEqual([]);
    }
    expect(await redis.healthy()).toBe(true);
    expect(await missingKeys(redis, KEYS)).toEqual([]);
  });

  /** The cluster as node 0 sees it, once all `ids` tell the same roles and every replica follows a master. */
  async function settledView(ids: readonly string[]): Promise<ClusterNodeView[]> {
    const roles = (v: readonly ClusterNodeView[]) => v.map((n) => `${n.id} ${n.flags} ${n.master}`).join('\n');
    let view: ClusterNodeView[] = [];
    let agree = false;
    await waitFor(
      'every node to tell the same roles, every replica following a master',
      async () => {
        const views = await Promise.all(ids.map((_, i) => redis.clusterNodes(i)));
        view = views[0];
        agree = views.every((v) => roles(v) === roles(view));
        const masters = new Set(view.filter((n) => n.flags === 'master').map((n) => n.id));
        return agree && view.every((n) => n.flags === 'master' || masters.has(n.master));
      },
      60000,
      () =>
        `views agree: ${agree}; node 0:\n${view.map((n) => `${ids.indexOf(n.id)} ${n.flags} of ${ids.indexOf(n.master)} ${n.slots}`).join('\n')}`,
    );
    return view;
  }

  test('a scale-in whose leaving node is master of a staying one (after a failover) promotes a staying replica first (CLUSTER FAILOVER)', async () => {
    // GIVEN 4 masters, where the leaving replica took over the slots of a staying master (as a
    // failover leaves it): the staying node is now the replica of a node that leaves
    await sampledScale(redis, 4);
    const ids = await redis.nodeIds();
    const view = await redis.clusterNodes(0);
    const leavingReplica = [6, 7].find((i) => view.find((n) => n.id === ids[i])!.flags === 'slave')!;
    const staying = view.find((n) => n.flags === 'master' && n.slots !== '' && ids.indexOf(n.id) < 6)!;
    await redis.cli(leavingReplica, 'cluster', 'replicate', staying.id);
    await waitFor(
      'the leaving replica to sync from the staying master',
      async () =>
        (await redis.clusterNodes(leavingReplica)).find((n) => n.id === ids[leavingReplica])!.master === staying.id &&
        new RegExp(`master_port:${redis.nodes[ids.indexOf(staying.id)].port}\\r?\\nmaster_link_status:up`).test(
          await redis.cli(leavingReplica, 'info', 'replication'),
        ),
      30000,
    );
    // A manual failover that does not complete in time is aborted by Redis without a word: ask again.
    const swapped = async () =>
      (await redis.clusterNodes(0)).find((n) => n.id === staying.id)!.master === ids[leavingReplica];
    for (let attempt = 0; attempt < 3 && !(await swapped()); attempt++) {
      expect((await redis.cli(leavingReplica, 'cluster', 'failover')).trim()).toBe('OK');
      await waitFor('the roles to swap', swapped, 15000).catch(() => undefined);
    }
    expect(await swapped()).toBe(true);
    // The staying node (and any other replica it had) now follows a leaving master; so may the
    // replica the scale-out gave the other leaving node. The staying master's other replicas follow
    // the new master too, and the nodes learn new roles by gossip: the list is taken once every node
    // tells the same roles and no replica follows a replica (a CI run once took it from node 0 before
    // that, and the script promoted a staying replica the list lacked).
    const leaving = [ids[6], ids[7]];
    const replicasOfLeaving = (await settledView(ids))
      .filter((n) => leaving.includes(n.master) && ids.indexOf(n.id) < 6)
      .map((n) => n.id);
    expect(replicasOfLeaving).toContain(staying.id);
    // WHEN the config goes back to 3 masters
    const out = await sampledScale(redis, 3);
    // Redis drops a manual failover that does not complete within 5 s: the script asks again (a CI run under
    // load needed that; it could not be provoked on purpose here, so it is reported, not required).
    const askedAgain = (out.result.output.match(/asking for the failover again/g) ?? []).length;
    report.push(
      `scale-in with a promotion: reconcile ${out.result.reconcileMs} ms, failover asked again ${askedAgain} times`,
    );
    // THEN staying replicas of the leaving masters were promoted before any slot moved, and the cluster is whole
    const promoted = /failing over to listed replica \S+ \(([0-9a-f]{40})\), whose master leaves the cluster/.exec(
      out.result.output,
    );
    expect(promoted).not.toBeNull();
    expect(replicasOfLeaving).toContain(promoted![1]);
    expect(ids.indexOf(promoted![1])).toBeLessThan(6);
    expect(out.result.output.indexOf(promoted![0])).toBeLessThan(out.result.output.indexOf('Moving '));
    expect(out.uncovered).toEqual([]);
    const l = await layout();
    expect([l.nodes, l.slots.length, l.emptyMasters, l.failing]).toEqual([6, 3, 0, 0]);
    expect(l.replicas).toEqual([1, 1, 1]);
    expect(even(l.slots)).toBe(true);
    expect((await redis.clusterNodes(0)).find((n) => n.id === promoted![1])!.flags).toBe('master');
    expect(await missingKeys(redis, KEYS)).toEqual([]);
  });
});

describe('replicasPerMaster', () => {
  test('1 -> 2 -> 1 replicas per master under a read/write loop: the new nodes become replicas, then leave; no slot moves', async () => {
    const traffic = new ScaleTraffic(redis, 2);
    const slotsBefore = (await redis.clusterNodes(0)).filter((n) => n.slots !== '').map((n) => [n.id, n.slots]);
    // WHEN replicasPerMaster goes to 2
    const up = await sampledScale(redis, 3, 2);
    const l = await layout();
    // THEN 9 nodes, each master with 2 replicas, the slots where they were
    expect([l.nodes, l.slots.length, l.emptyMasters, l.failing]).toEqual([9, 3, 0, 0]);
    expect(l.replicas).toEqual([2, 2, 2]);
    expect(up.result.output).not.toContain('Moving ');
    // AND back to 1: the three highest ordinals leave
    const down = await sampledScale(redis, 3, 1);
    const lost = await traffic.stop();
    report.push(
      `replicas 1 -> 2: nodes started ${up.result.startMs} ms, reconcile ${up.result.reconcileMs} ms; ` +
        `2 -> 1: reconcile ${down.result.reconcileMs} ms, nodes stopped ${down.result.stopMs} ms; ` +
        `traffic ${traffic.writes} writes, ${traffic.failed.length} failed, ${lost.length} lost`,
    );
    expect([up.uncovered, down.uncovered]).toEqual([[], []]);
    expect(down.result.output).not.toContain('Moving ');
    expect(redis.nodes).toHaveLength(6);
    const back = await layout();
    expect([back.nodes, back.slots.length, back.emptyMasters, back.failing]).toEqual([6, 3, 0, 0]);
    expect(back.replicas).toEqual([1, 1, 1]);
    expect((await redis.clusterNodes(0)).filter((n) => n.slots !== '').map((n) => [n.id, n.slots])).toEqual(
      slotsBefore,
    );
    expect(traffic.failed).toEqual([]);
    expect(lost).toEqual([]);
    expect(await missingKeys(redis, KEYS)).toEqual([]);
  });
});

describe('over TLS (redis.tls)', () => {
  let secure: RedisClusterLaunch;
  beforeAll(async () => {
    secure = await startRedisCluster(synthObjects(config), { masters: 3, replicasPerMaster: 0, tls: true });
  });
  afterAll(async () => {
    await secure?.stop();
  });

  test('3 -> 4 masters: the reconcile script and the slot migrations speak TLS; every key stays', async () => {
    await loadKeys(secure, 5000);
    const out = await sampledScale(secure, 4);
    report.push(`TLS: 3 -> 4 masters (no replicas) reconcile ${out.result.reconcileMs} ms`);
    expect(out.uncovered).toEqual([]);
    expect(out.result.output).toContain('cluster ok: 16384 slots, 4 masters, 0 replicas');
    expect(out.result.output).toMatch(/Moving \d+ slots from .* to /);
    expect(await missingKeys(secure, 5000)).toEqual([]);
    expect(await secure.healthy()).toBe(true);
  });
});

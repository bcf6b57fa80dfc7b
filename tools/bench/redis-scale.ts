/**
 * `npm run bench:redis-scale`: what scaling the Redis Cluster from config costs, on real servers
 * (the dev environment's shipped redis.conf, start and reconcile scripts on loopback; the drill of
 * test/redis-scale.test.ts with more keys).
 *
 * 1. 3 masters x 1 replica; BENCH_REDIS_KEYS keys (default 1,000,000, 64-byte values) loaded
 *    through the cluster (pipelined ioredis).
 * 2. A read/write loop of 4 application clients runs while the cluster goes 3 -> 4 -> 3 masters;
 *    CLUSTER SLOTS / CLUSTER INFO are sampled on every node that stays.
 * 3. Each step is timed: nodes started, reconcile script (add-node, replicas, rebalance; or
 *    rebalance off the leaving master, del-node, replicas), nodes stopped.
 * 4. Afterwards every loaded key is read back, and every key the loop wrote.
 *
 * Prints a Markdown table (written to docs/redis-scaling.md by hand, with the date).
 */
import { loadEnvironment } from '../../stacks/environments';
import { synthObjects } from '../../stacks/synth';
import {
  loadKeys,
  mastersUsedMemory,
  missingKeys,
  resolveTwinHostnames,
  sampledScale,
  ScaleTraffic,
  startRedisCluster,
} from '../runtime/launcher';

const KEYS = Number(process.env.BENCH_REDIS_KEYS ?? 1_000_000);

export async function main(): Promise<number> {
  // maxmemory large enough for the keys on 3 masters (the default's 2gb needs a 3Gi limit: set with it).
  const config = loadEnvironment('dev', {
    redis: { maxmemory: '1gb', resources: { requests: { memory: '1536Mi' }, limits: { memory: '2Gi' } } },
  });
  const redis = await startRedisCluster(synthObjects(config), { masters: 3, replicasPerMaster: 1, timeoutMs: 600000 });
  resolveTwinHostnames(redis);
  const rows: string[][] = [];
  try {
    const loadMs = await loadKeys(redis, KEYS);
    const { used } = await mastersUsedMemory(redis);
    rows.push([
      'load keys (3 masters)',
      `${loadMs}`,
      `${KEYS} keys, ${(used / 2 ** 20).toFixed(0)} MiB used_memory on the masters`,
    ]);
    const traffic = new ScaleTraffic(redis, 4);
    // A failed step stops the loop too (its clients would keep the process alive).
    const step = (masters: number) =>
      sampledScale(redis, masters).catch(async (e: unknown) => {
        await traffic.stop();
        throw e;
      });
    const out = await step(4);
    rows.push(['3 -> 4: start 2 nodes', `${out.result.startMs}`, '']);
    rows.push([
      '3 -> 4: reconcile (add-node, replica, rebalance)',
      `${out.result.reconcileMs}`,
      `${out.samples} coverage samples, ${out.uncovered.length} uncovered`,
    ]);
    const back = await step(3);
    rows.push([
      '4 -> 3: reconcile (rebalance off, del-node)',
      `${back.result.reconcileMs}`,
      `${back.samples} coverage samples, ${back.uncovered.length} uncovered`,
    ]);
    rows.push(['4 -> 3: stop 2 nodes', `${back.result.stopMs}`, '']);
    const lost = await traffic.stop();
    const t0 = Date.now();
    const missing = await missingKeys(redis, KEYS);
    rows.push(['read back every loaded key', `${Date.now() - t0}`, `${missing.length} missing`]);
    rows.push([
      'traffic during both steps',
      '',
      `${traffic.writes} writes, ${traffic.reads} reads, ${traffic.failed.length} failed, ${lost.length} written keys lost`,
    ]);
    console.log(`Redis scaling, ${KEYS} keys, ${new Date().toISOString().slice(0, 10)}\n`);
    console.log(['| step | ms | notes |', '|---|---:|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n'));
    if (traffic.failed.length) console.log(traffic.failed.slice(0, 10).join('\n'));
    return traffic.failed.length || lost.length || missing.length || out.uncovered.length || back.uncovered.length
      ? 1
      : 0;
  } finally {
    await redis.stop();
  }
}

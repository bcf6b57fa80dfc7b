/**
 * The Redis scaling drill, shared by the real-server test (test/redis-scale.test.ts) and the
 * benchmark (`npm run bench:redis-scale`), so the numbers written down come from the code the
 * test proves: bulk keys loaded through the cluster, a read/write loop of application clients,
 * a sampler of slot coverage on the nodes that stay, and a full check of the keys afterwards.
 */
import { Cluster, Redis } from 'ioredis';
import { CLUSTER_SLOTS, redisNodeCount } from '../../../constructs/redis/files';
import { CLUSTER_REDIRECTS } from '../../../service/src/plugins/redis';
import { sleep } from './processes';
import type { RedisClusterLaunch, ScaleResult } from './redis';

/** Keys of the drill: under the `app` user's key prefix (constructs/redis/acl.ts). */
export const SCALE_KEY_PREFIX = 'fastnext:scale';

/** ioredis' TLS options for a launch with `tls` (the nodes' certificate checked against the twin's CA). */
const tlsOf = (redis: RedisClusterLaunch) => (redis.tls ? { tls: { ca: redis.tls.ca } } : {});

// eslint-disable-next-line @typescript-eslint/no-require-imports
const dns = require('node:dns') as typeof import('node:dns');
const systemLookup = dns.lookup;
const twins = new Set<RedisClusterLaunch>();

/**
 * Resolves the hostnames the nodes of `redis` announce (`redis-<i>.redis-headless`) to their
 * current loopback address in this process, as the cluster DNS does in Kubernetes (the scripts
 * get the same from REDIS_HOSTS_FILE). With it the clients need no ioredis `natMap`, whose
 * MOVED handling keeps the unmapped address (cluster/index.js, Pipeline.js) and sends the
 * retry to a random node: the clients here follow redirects exactly as the service does in a
 * cluster. Returns the undo.
 */
export function resolveTwinHostnames(redis: RedisClusterLaunch): () => void {
  twins.add(redis);
  const lookup = (hostname: string, options: unknown, callback?: unknown) => {
    const cb = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void;
    const node = [...twins].flatMap((t) => t.nodes).find((n) => n.hostname === hostname);
    if (!node) return (systemLookup as (...args: unknown[]) => void)(hostname, options, callback);
    const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all;
    if (all) process.nextTick(cb, null, [{ address: node.host, family: 4 }]);
    else process.nextTick(cb, null, node.host, 4);
  };
  (dns as { lookup: unknown }).lookup = lookup;
  return () => {
    twins.delete(redis);
    if (twins.size === 0) (dns as { lookup: unknown }).lookup = systemLookup;
  };
}

/**
 * An ioredis Cluster client of the launch that follows the nodes through a `scale()`, with the
 * service's redirect settings (`CLUSTER_REDIRECTS`, service/src/plugins/redis.ts). Needs
 * `resolveTwinHostnames`.
 */
export function scaleClient(redis: RedisClusterLaunch, role: 'app' | 'admin'): Cluster {
  return new Cluster(
    redis.nodes.map((n) => ({ host: n.host, port: n.port })),
    {
      redisOptions: { ...redis.auth(role), ...tlsOf(redis) },
      enableAutoPipelining: true,
      ...CLUSTER_REDIRECTS,
      slotsRefreshTimeout: 2000,
    },
  );
}

/**
 * A client for bulk work while no slot moves (loading, checking): reaches the nodes through
 * ioredis' `natMap`, which needs no `resolveTwinHostnames` (also over TLS: the certificate
 * names the loopback addresses too).
 */
function bulkClient(redis: RedisClusterLaunch): Cluster {
  return new Cluster(
    redis.nodes.map((n) => ({ host: n.host, port: n.port })),
    {
      natMap: redis.natMapFunction(),
      redisOptions: { ...redis.auth('admin'), ...tlsOf(redis) },
      enableAutoPipelining: true,
    },
  );
}

/** Runs `step(start, end)` over [from, from + count) in batches of `size`, one batch after the other. */
async function inBatches(
  from: number,
  count: number,
  size: number,
  step: (start: number, end: number) => Promise<void>,
): Promise<void> {
  for (let start = from; start < from + count; start += size) await step(start, Math.min(from + count, start + size));
}

const bulkKey = (i: number) => `${SCALE_KEY_PREFIX}:bulk:${i}`;
const bulkValue = (i: number, bytes: number) => String(i).padEnd(bytes, '.');

/** SETs keys `fastnext:scale:bulk:<from..from+count-1>` with `valueBytes`-byte values; resolves milliseconds. */
export async function loadKeys(
  redis: RedisClusterLaunch,
  count: number,
  opts: { valueBytes?: number; from?: number; batch?: number } = {},
): Promise<number> {
  const { valueBytes = 64, from = 0, batch = 20000 } = opts;
  const c = bulkClient(redis);
  const t0 = Date.now();
  try {
    await inBatches(from, count, batch, async (start, end) => {
      const sets: Promise<unknown>[] = [];
      for (let i = start; i < end; i++) sets.push(c.set(bulkKey(i), bulkValue(i, valueBytes)));
      await Promise.all(sets);
    });
    return Date.now() - t0;
  } finally {
    c.disconnect();
  }
}

/** Bulk keys `0..count-1` that are missing or hold another value than loadKeys wrote. */
export async function missingKeys(redis: RedisClusterLaunch, count: number, valueBytes = 64): Promise<number[]> {
  const c = bulkClient(redis);
  const missing: number[] = [];
  try {
    await inBatches(0, count, 20000, async (start, end) => {
      const gets: Promise<string | null>[] = [];
      for (let i = start; i < end; i++) gets.push(c.get(bulkKey(i)));
      (await Promise.all(gets)).forEach((v, k) => {
        if (v !== bulkValue(start + k, valueBytes)) missing.push(start + k);
      });
    });
    return missing;
  } finally {
    c.disconnect();
  }
}

/** Sum of `used_memory` of the masters that serve slots, and their count. */
export async function mastersUsedMemory(redis: RedisClusterLaunch): Promise<{ used: number; masters: number }> {
  const view = await redis.clusterNodes(0);
  const ids = await redis.nodeIds();
  let used = 0;
  const serving = view.filter((n) => n.flags === 'master' && n.slots !== '');
  for (const m of serving) {
    const info = await redis.cli(ids.indexOf(m.id), 'info', 'memory');
    used += Number(/^used_memory:(\d+)/m.exec(info)![1]);
  }
  return { used, masters: serving.length };
}

/**
 * A read/write loop of `loops` application clients (the `app` ACL user): each SETs its next key
 * and GETs one it wrote before, checking the value. Every failed read or write is kept.
 */
export class ScaleTraffic {
  reads = 0;
  writes = 0;
  readonly failed: string[] = [];
  /** Every key a loop wrote and the value acknowledged for it (no TTL: none may go missing). */
  readonly written = new Map<string, string>();
  private running = true;
  private readonly clients: Cluster[];
  private readonly done: Promise<void>[];

  constructor(
    private readonly redis: RedisClusterLaunch,
    loops = 4,
  ) {
    this.clients = Array.from({ length: loops }, () => scaleClient(redis, 'app'));
    this.done = this.clients.map((c, l) => this.loop(c, l));
  }

  private async loop(c: Cluster, l: number): Promise<void> {
    const mine: string[] = [];
    for (let i = 0; this.running; i++) {
      const key = `${SCALE_KEY_PREFIX}:loop:${l}:${i}`;
      const value = `${l}-${i}-${Date.now()}`;
      try {
        await c.set(key, value);
        this.writes++;
        this.written.set(key, value);
        mine.push(key);
      } catch (e) {
        this.failed.push(`write ${key}: ${(e as Error).message}`);
      }
      if (mine.length === 0) continue;
      const probe = mine[Math.floor(Math.random() * mine.length)];
      try {
        const got = await c.get(probe);
        this.reads++;
        if (got !== this.written.get(probe)) this.failed.push(`read ${probe}: ${got} != ${this.written.get(probe)}`);
      } catch (e) {
        this.failed.push(`read ${probe}: ${(e as Error).message}`);
      }
    }
  }

  /**
   * Stops the loops and resolves the written keys whose value is no longer there. The check
   * reads through a new client, whose slot map is taken after the last step: a loop client's
   * map may still be stale, and ioredis does not follow a MOVED inside an auto-pipelined batch
   * that spans slots (a whole batch failed that way once after a scale-in). A read that still
   * fails is tried again on its own; one that fails three times is a failed read, not a lost key.
   */
  async stop(): Promise<string[]> {
    this.running = false;
    await Promise.all(this.done);
    for (const client of this.clients) client.disconnect();
    const c = scaleClient(this.redis, 'app');
    const lost: string[] = [];
    try {
      const keys = [...this.written.keys()];
      await inBatches(0, keys.length, 2000, async (start, end) => {
        const chunk = keys.slice(start, end);
        const reads = await Promise.allSettled(chunk.map((k) => c.get(k)));
        for (const [i, read] of reads.entries()) {
          const key = chunk[i];
          let value = read.status === 'fulfilled' ? read.value : undefined;
          for (let attempt = 0; value === undefined && attempt < 3; attempt++) {
            await sleep(100);
            value = await c.get(key).catch((e: Error) => {
              if (attempt === 2) this.failed.push(`final read ${key}: ${e.message}`);
              return undefined;
            });
          }
          if (value !== undefined && value !== this.written.get(key)) lost.push(key);
        }
      });
      return lost;
    } finally {
      c.disconnect();
    }
  }
}

/**
 * Polls CLUSTER SLOTS and CLUSTER INFO on each of `nodes` (indexes of nodes that are in the
 * cluster throughout) every `everyMs`, and keeps every sample that did not see all slots covered.
 */
export class CoverageSampler {
  samples = 0;
  readonly uncovered: string[] = [];
  private running = true;
  private readonly conns: Redis[];
  private readonly done: Promise<void>;

  constructor(redis: RedisClusterLaunch, nodes: readonly number[], everyMs = 50) {
    this.conns = nodes.map(
      (i) =>
        new Redis({ host: redis.nodes[i].host, port: redis.nodes[i].port, ...redis.auth('admin'), ...tlsOf(redis) }),
    );
    this.done = this.loop(everyMs);
  }

  private async loop(everyMs: number): Promise<void> {
    while (this.running) {
      for (const [k, c] of this.conns.entries()) {
        this.samples++;
        try {
          const slots = (await c.cluster('SLOTS')) as [number, number, ...unknown[]][];
          const covered = slots.reduce((sum, [from, to]) => sum + to - from + 1, 0);
          const info = (await c.cluster('INFO')) as string;
          const ok = /cluster_slots_ok:(\d+)/.exec(info)![1];
          const state = /cluster_state:(\w+)/.exec(info)![1];
          if (covered !== CLUSTER_SLOTS || ok !== String(CLUSTER_SLOTS) || state !== 'ok') {
            this.uncovered.push(`node ${k}: ${covered} slots in CLUSTER SLOTS, cluster_slots_ok ${ok}, state ${state}`);
          }
        } catch (e) {
          this.uncovered.push(`node ${k}: ${(e as Error).message}`);
        }
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    for (const c of this.conns) c.disconnect();
  }
}

/** One scale step with the coverage sampler on the nodes that stay; throws with the script's output if it failed. */
export async function sampledScale(
  redis: RedisClusterLaunch,
  masters: number,
  replicasPerMaster = redis.topology.replicasPerMaster,
): Promise<{ result: ScaleResult; samples: number; uncovered: string[] }> {
  const staying = Math.min(redis.nodes.length, redisNodeCount({ masters, replicasPerMaster }));
  const sampler = new CoverageSampler(
    redis,
    Array.from({ length: staying }, (_, i) => i),
  );
  let result: ScaleResult;
  try {
    result = await redis.scale({ masters, replicasPerMaster });
  } finally {
    await sampler.stop();
  }
  if (result.code !== 0)
    throw new Error(
      `scale to ${masters} masters x (1 + ${replicasPerMaster}): the script exited ${result.code}:\n${result.output}`,
    );
  return { result, samples: sampler.samples, uncovered: sampler.uncovered };
}

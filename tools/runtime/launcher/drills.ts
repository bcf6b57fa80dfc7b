/**
 * Drills shared by the real-server tests and tools/runtime/launcher/measure.ts, so the
 * numbers in the issue note come from the code the tests prove.
 */
import type { PatroniLaunch as PostgresLaunch } from './patroni';
import type { RedisClusterLaunch } from './redis';
import { waitFor } from './processes';

export interface FailoverResult {
  /** Milliseconds from SIGKILL of the master to its replica serving as master with cluster_state ok. */
  readonly ms: number;
  /** Node index killed, and the ids of the old master and the promoted replica. */
  readonly victim: number;
  readonly victimId: string;
  readonly promotedId: string;
}

/**
 * Waits for every replica's `master_link_status:up` (a master killed before its replica
 * synced is never failed over), SIGKILLs a master that serves slots, and times the
 * failover as seen by a third node.
 */
export async function killMasterAndTimeFailover(redis: RedisClusterLaunch, timeoutMs = 60000): Promise<FailoverResult> {
  const replicas = (await redis.clusterNodes(0)).filter((n) => n.flags === 'slave').length;
  await waitFor(
    'every replica in sync',
    async () => {
      const infos = await Promise.all(redis.nodes.map((_, i) => redis.cli(i, 'info', 'replication')));
      return infos.filter((s) => s.includes('master_link_status:up')).length === replicas;
    },
    timeoutMs,
  );
  const view = await redis.clusterNodes(0);
  const victimId = view.find((n) => n.flags === 'master' && n.slots !== '')!.id;
  const promotedId = view.find((n) => n.master === victimId)!.id;
  const ids = await redis.nodeIds();
  const victim = ids.indexOf(victimId);
  const observer = ids.findIndex((id) => id !== victimId && id !== promotedId);
  const t0 = Date.now();
  await redis.killNode(victim);
  await waitFor(
    `replica ${promotedId} promoted`,
    async () =>
      (await redis.clusterNodes(observer)).find((n) => n.id === promotedId)!.flags === 'master' &&
      (await redis.clusterInfo(observer)).cluster_state === 'ok',
    timeoutMs,
  );
  return { ms: Date.now() - t0, victim, victimId, promotedId };
}

/** Restarts the killed node and waits until it is a replica of the promoted one and the cluster is healthy. */
export async function rejoinAfterFailover(
  redis: RedisClusterLaunch,
  f: FailoverResult,
  timeoutMs = 60000,
): Promise<void> {
  await redis.startNode(f.victim);
  let view = '';
  await waitFor(
    'old master rejoined as a replica',
    async () => {
      const nodes = await redis.clusterNodes(f.victim);
      view = nodes.map((n) => `${n.id.slice(0, 8)} ${n.flags} ${n.master.slice(0, 8)} ${n.slots}`).join('\n');
      const me = nodes.find((n) => n.id === f.victimId)!;
      return me.flags === 'slave' && me.master === f.promotedId;
    },
    timeoutMs,
    () =>
      `cluster nodes seen by node ${f.victim} (${f.victimId.slice(0, 8)}):\n${view}\n${redis.log(f.victim).slice(-2000)}`,
  );
  await waitFor('cluster healthy', () => redis.healthy(), timeoutMs);
}

/**
 * Inserts `rows` rows on the primary in one transaction and times, per replica, how long
 * after COMMIT returned it had replayed the commit's WAL (polled every 5 ms).
 */
export async function replicaApplyLagMs(pg: PostgresLaunch, rows = 10000): Promise<number[]> {
  // The migration role: it may create the table (the application role runs no DDL).
  const c = await pg.connect(undefined, 'migration');
  try {
    await c.query('CREATE TABLE IF NOT EXISTS lag_probe (id bigint, payload text)');
    await c.query('INSERT INTO lag_probe SELECT g, md5(g::text) FROM generate_series(1, $1) g', [rows]);
    const t0 = Date.now();
    const lsn = (await c.query('SELECT pg_current_wal_lsn() AS lsn')).rows[0].lsn as string;
    return await Promise.all(
      pg.replicas.map(async (r) => {
        const rc = await pg.connect(r, 'superuser');
        try {
          for (;;) {
            const done = await rc.query('SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn AS done', [lsn]);
            if (done.rows[0].done) return Date.now() - t0;
            await new Promise((res) => setTimeout(res, 5));
          }
        } finally {
          await rc.end();
        }
      }),
    );
  } finally {
    await c.end();
  }
}

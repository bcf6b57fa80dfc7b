/**
 * Measurements for the data tier's issue note, on real servers from the shipped files
 * of an environment (default dev):
 *   node tools/run.js tools/runtime/launcher/measure.ts [env] [--runs N]
 * Prints bring-up times (primary + replicas; six-node cluster), Redis failover time over
 * N runs (median, max) and replica apply lag for a 10,000-row insert.
 */
import { loadEnvironment } from '../../../stacks/environments';
import { synthObjects } from '../../../stacks/synth';
import { killMasterAndTimeFailover, rejoinAfterFailover, replicaApplyLagMs } from './drills';
import { startPatroni } from './patroni';
import { startRedisCluster } from './redis';
import { redisNodeCount } from '../../../constructs/redis/files';
import { median } from '../../k8s/values';

const args = process.argv.slice(2);
const env = args.find((a) => !a.startsWith('--')) ?? 'dev';
const runsAt = args.indexOf('--runs');
const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 5;

const summary = (xs: number[]) =>
  `median ${Math.round(median(xs))} ms, max ${Math.max(...xs)} ms (runs: ${xs.join(', ')})`;

async function main(): Promise<void> {
  const config = loadEnvironment(env);
  const objects = synthObjects(config);
  console.log(
    `environment ${env}: ${config.postgres.replicas} PostgreSQL replicas, Redis ${config.redis.masters} x (1 + ${config.redis.replicasPerMaster}), cluster-node-timeout ${config.redis.nodeTimeoutMs} ms`,
  );

  const pgUp: number[] = [];
  const lags: number[][] = [];
  for (let i = 0; i < Math.min(runs, 3); i++) {
    const pg = await startPatroni(objects, { members: 1 + config.postgres.replicas });
    try {
      pgUp.push(pg.bringUpMs);
      for (let j = 0; j < runs; j++) lags.push(await replicaApplyLagMs(pg, 10000));
    } finally {
      await pg.stop();
    }
  }
  console.log(
    `Patroni leader + ${config.postgres.replicas} replicas bring-up (etcd, initdb, post_bootstrap, base backups, streaming): ${summary(pgUp)}`,
  );
  console.log(
    `replica apply lag after COMMIT of a 10,000-row insert (slowest replica): ${summary(lags.map((l) => Math.max(...l)))}`,
  );

  const redisUp: number[] = [];
  for (let i = 0; i < Math.min(runs, 3); i++) {
    const r = await startRedisCluster(objects, {
      masters: config.redis.masters,
      replicasPerMaster: config.redis.replicasPerMaster,
    });
    redisUp.push(r.bringUpMs);
    await r.stop();
  }
  console.log(
    `Redis ${redisNodeCount(config.redis)}-node cluster bring-up (start, create, all slots ok): ${summary(redisUp)}`,
  );

  const redis = await startRedisCluster(objects, {
    masters: config.redis.masters,
    replicasPerMaster: config.redis.replicasPerMaster,
  });
  try {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const f = await killMasterAndTimeFailover(redis);
      times.push(f.ms);
      await rejoinAfterFailover(redis, f);
    }
    console.log(`Redis failover (SIGKILL master -> replica promoted, cluster_state ok): ${summary(times)}`);
  } finally {
    await redis.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});

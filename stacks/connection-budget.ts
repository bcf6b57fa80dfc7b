/**
 * The PostgreSQL connection budget of an environment, worst case: the API at its HPA
 * maximum with every pool full, through PgBouncer, onto the leader and the replicas.
 * Checked when the config is parsed (a budget that does not fit is refused before
 * anything is written) and printed by `npm run capacity`.
 */
import { poolCapacity } from '../constructs/pgbouncer/pgbouncer-pool';
import { RESERVED_CONNECTIONS_PER_MEMBER } from '../constructs/postgres/patroni-cluster';
import type { EnvironmentConfig } from './config';
/** The partition-maintenance CronJob: one direct session as the migration role (concurrencyPolicy Forbid). */
export const CRONJOB_CONNECTIONS = 1;

type BudgetInput = Pick<EnvironmentConfig, 'name' | 'api' | 'postgres' | 'pgbouncer'>;

export interface ConnectionBudget {
  readonly environment: string;
  readonly apiPodsMax: number;
  /** poolSize + maxOverflow: what one API pod may open to each pool. */
  readonly perApiPod: number;
  /** Client connections the API may open to each pool (primary, replicas). */
  readonly clientConnections: number;
  /** Client connections one pool accepts with one of its pods gone. */
  readonly poolerCapacityOnePodDown: number;
  /** Server connections of one pool (all its pods). */
  readonly poolerServerConnections: number;
  /**
   * Migrations: one direct session per API pod starting at once (init containers, as the migration
   * role), at most the HPA maximum.
   */
  readonly migrationConnections: number;
  readonly leaderTotal: number;
  /** Worst case on one replica: the whole read-only pool lands on it. */
  readonly replicaTotal: number;
  readonly maxConnections: number;
}

export function connectionBudget(env: BudgetInput): ConnectionBudget {
  const apiPodsMax = env.api.autoscaling.maxReplicas;
  const perApiPod = env.api.db.poolSize + env.api.db.maxOverflow;
  const pool = poolCapacity(env.pgbouncer);
  const poolerServerConnections = pool.serverConnections;
  const migrationConnections = apiPodsMax;
  const readOnlyPoolOnLeader = env.postgres.replicas === 0 ? poolerServerConnections : 0;
  return {
    environment: env.name,
    apiPodsMax,
    perApiPod,
    clientConnections: apiPodsMax * perApiPod,
    poolerCapacityOnePodDown: pool.clientConnectionsOnePodDown,
    poolerServerConnections,
    migrationConnections,
    leaderTotal:
      poolerServerConnections +
      readOnlyPoolOnLeader +
      migrationConnections +
      CRONJOB_CONNECTIONS +
      RESERVED_CONNECTIONS_PER_MEMBER,
    replicaTotal: env.postgres.replicas > 0 ? poolerServerConnections + RESERVED_CONNECTIONS_PER_MEMBER : 0,
    maxConnections: env.postgres.maxConnections,
  };
}

/** The budget's violations as zod issues (path + message), each with the numbers and one fix. */
export function connectionBudgetProblems(env: BudgetInput): { path: (string | number)[]; message: string }[] {
  const b = connectionBudget(env);
  const problems: { path: (string | number)[]; message: string }[] = [];
  if (b.clientConnections > b.poolerCapacityOnePodDown) {
    const need = Math.ceil(b.clientConnections / (env.pgbouncer.replicas - 1));
    problems.push({
      path: ['pgbouncer', 'maxClientConnections'],
      message:
        `is too small: ${b.apiPodsMax} API pods at HPA max x ${b.perApiPod} connections each ` +
        `(api.db.poolSize + maxOverflow) = ${b.clientConnections} clients, but ${env.pgbouncer.replicas - 1} PgBouncer pod(s) left ` +
        `after one is lost accept ${b.poolerCapacityOnePodDown}: set pgbouncer.maxClientConnections to ${need}`,
    });
  }
  if (b.leaderTotal > b.maxConnections) {
    const pooler = env.pgbouncer.replicas * (env.pgbouncer.poolSize + env.pgbouncer.reservePoolSize);
    problems.push({
      path: ['postgres', 'maxConnections'],
      message:
        `is below the leader's worst case of ${b.leaderTotal} connections: PgBouncer ` +
        `${env.pgbouncer.replicas} pods x (poolSize ${env.pgbouncer.poolSize} + reservePoolSize ${env.pgbouncer.reservePoolSize}) = ${pooler}` +
        (env.postgres.replicas === 0 ? ` (+ ${pooler} of the read-only pool, no replicas)` : '') +
        `, migrations ${b.migrationConnections} (one per API pod at HPA max), CronJob ${CRONJOB_CONNECTIONS}, ` +
        `reserved ${RESERVED_CONNECTIONS_PER_MEMBER}: set postgres.maxConnections to ${b.leaderTotal}`,
    });
  } else if (b.replicaTotal > b.maxConnections) {
    problems.push({
      path: ['postgres', 'maxConnections'],
      message:
        `is below a replica's worst case of ${b.replicaTotal} connections (the whole read-only PgBouncer ` +
        `pool, ${b.poolerServerConnections}, on one replica, + ${RESERVED_CONNECTIONS_PER_MEMBER} reserved): ` +
        `set postgres.maxConnections to ${b.replicaTotal}`,
    });
  }
  return problems;
}

/** The budget as lines for `npm run capacity`. */
export function formatConnectionBudget(b: ConnectionBudget): string[] {
  return [
    `PostgreSQL connections (max_connections ${b.maxConnections} per member):`,
    `  API -> PgBouncer: ${b.apiPodsMax} pods x ${b.perApiPod} = ${b.clientConnections} clients per pool; ` +
      `capacity with one PgBouncer pod lost ${b.poolerCapacityOnePodDown}`,
    `  leader: ${b.leaderTotal} = PgBouncer ${b.poolerServerConnections} + migrations ${b.migrationConnections} + ` +
      `CronJob ${CRONJOB_CONNECTIONS} + reserved ${RESERVED_CONNECTIONS_PER_MEMBER} (${pct(b.leaderTotal, b.maxConnections)})`,
    ...(b.replicaTotal
      ? [
          `  replica (worst): ${b.replicaTotal} = read-only PgBouncer ${b.poolerServerConnections} + reserved ${RESERVED_CONNECTIONS_PER_MEMBER} (${pct(b.replicaTotal, b.maxConnections)})`,
        ]
      : []),
  ];
}

function pct(n: number, of: number): string {
  return `${Math.round((100 * n) / of)} % of max_connections`;
}

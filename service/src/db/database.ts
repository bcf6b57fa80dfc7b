/**
 * PostgreSQL access with read/write splitting.
 *
 * Writes and transactions go to the primary. Reads go to a healthy replica
 * chosen by `chooseReplica`; a replica that fails a probe or lags beyond
 * `replicaMaxLagSeconds` is skipped, and with none left reads use the primary.
 * Read-your-writes: every write returns the primary's WAL position after it;
 * a read that carries that LSN only goes to a replica that has replayed it.
 */
import { Pool, type PoolClient, type QueryResultRow } from 'pg';
import type { FastifyBaseLogger } from 'fastify';
import type { HostPort, ServiceConfig } from '../config';
import { chooseReplica, parseLsn, type ReplicaState } from './routing';
import { withTimeout } from '../timeout';

export type Target = 'primary' | 'replica';

export interface NamedPool {
  /** "primary" or "replica-N" (the `pool` label of the pool metrics). */
  readonly name: string;
  readonly pool: Pool;
  readonly address: HostPort;
}

export interface WriteResult<T> {
  readonly rows: T[];
  readonly rowCount: number;
  /** The primary's WAL position after the write, for read-your-writes. */
  readonly lsn: string | undefined;
}

export interface DatabaseOptions {
  /** Seconds between replica probes. @default 1 */
  readonly probeIntervalSeconds?: number;
  /** Called once per query with the kind of server that ran it (drives fastnext_db_queries_total). */
  readonly onQuery?: (target: Target) => void;
}

const PROBE_TIMEOUT_MS = 2000;

const REPLICA_PROBE = `
  SELECT pg_is_in_recovery() AS in_recovery,
         pg_last_wal_replay_lsn()::text AS replay_lsn,
         CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
              ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)::float8 END AS lag_seconds`;

export class Database {
  readonly primary: NamedPool;
  readonly replicas: readonly NamedPool[];
  /** Queries run per pool name since start (proof of routing in tests and /health/deep). */
  readonly queryCounts: Record<string, number> = {};
  private states: ReplicaState[];
  private roundRobin = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly maxLag: number;

  constructor(
    cfg: ServiceConfig['postgres'],
    private readonly log: FastifyBaseLogger,
    private readonly options: DatabaseOptions = {},
  ) {
    const make = (name: string, address: HostPort): NamedPool => {
      const pool = new Pool({
        ...connectionOptions(cfg, address, name),
        // poolSize connections stay open once made; the overflow above it closes after 10 s idle.
        min: cfg.poolSize,
        max: cfg.poolSize + cfg.maxOverflow,
        idleTimeoutMillis: 10_000,
        maxLifetimeSeconds: cfg.poolRecycleSeconds,
        statement_timeout: 15_000,
      });
      // An idle client losing its server (restart, failover) must not crash the process.
      pool.on('error', (err) => log.warn({ pool: name, err: err.message }, 'idle database connection lost'));
      this.queryCounts[name] = 0;
      return { name, pool, address };
    };
    this.primary = make('primary', cfg.primary);
    this.replicas = cfg.replicas.map((r, i) => make(`replica-${i}`, r));
    this.states = this.replicas.map((r) => ({ name: r.name, healthy: true, lagSeconds: 0, replayLsn: undefined }));
    this.maxLag = cfg.replicaMaxLagSeconds;
  }

  /** Starts probing replicas (health, lag, replayed LSN) in the background. */
  start(): void {
    if (this.replicas.length === 0 || this.timer) return;
    const every = (this.options.probeIntervalSeconds ?? 1) * 1000;
    const tick = () => {
      void this.probeReplicas().finally(() => {
        if (this.timer) this.timer = setTimeout(tick, every).unref();
      });
    };
    this.timer = setTimeout(tick, 0).unref();
  }

  get replicaStates(): readonly ReplicaState[] {
    return this.states;
  }

  async probeReplicas(): Promise<void> {
    await Promise.all(
      this.replicas.map(async (r, i) => {
        try {
          const { rows } = await withTimeout(r.pool.query(REPLICA_PROBE), PROBE_TIMEOUT_MS, `probe of ${r.name}`);
          const row = rows[0] as { in_recovery: boolean; replay_lsn: string | null; lag_seconds: number };
          // A replica that left recovery was promoted behind our back: never read from it.
          this.states[i] = {
            name: r.name,
            healthy: row.in_recovery && row.replay_lsn !== null,
            lagSeconds: Number(row.lag_seconds),
            replayLsn: row.replay_lsn === null ? undefined : parseLsn(row.replay_lsn),
          };
        } catch (err) {
          if (this.states[i].healthy) this.log.warn({ replica: r.name, err: (err as Error).message }, 'replica down');
          this.states[i] = { ...this.states[i], healthy: false };
        }
      }),
    );
  }

  private count(p: NamedPool, target: Target): void {
    this.queryCounts[p.name] = (this.queryCounts[p.name] ?? 0) + 1;
    this.options.onQuery?.(target);
  }

  /**
   * Runs a read. `minLsn` (from the client's last write) restricts it to replicas
   * that have replayed that position. A replica error marks it down and the read
   * is retried once on the primary, so a lost replica costs no failed request.
   */
  async read<T extends QueryResultRow>(sql: string, params: unknown[] = [], minLsn?: string): Promise<T[]> {
    const i = chooseReplica(this.states, this.maxLag, this.roundRobin++, minLsn ? parseLsn(minLsn) : undefined);
    if (i !== undefined) {
      const replica = this.replicas[i];
      try {
        this.count(replica, 'replica');
        return (await replica.pool.query<T>(sql, params)).rows;
      } catch (err) {
        // A standby cancels reads that conflict with WAL replay (40001): the primary has no such conflict.
        const recoveryConflict = (err as { code?: string }).code === '40001';
        if (!isConnectionError(err) && !recoveryConflict) throw err;
        this.log.warn({ replica: replica.name, err: (err as Error).message }, 'replica read failed; using primary');
        if (!recoveryConflict) this.states[i] = { ...this.states[i], healthy: false };
      }
    }
    this.count(this.primary, 'primary');
    return (await this.primary.pool.query<T>(sql, params)).rows;
  }

  /**
   * Runs a single-statement write on the primary. Autocommit makes one statement
   * atomic, so no BEGIN/COMMIT round trips: the statement, then the WAL position.
   */
  async write<T extends QueryResultRow>(sql: string, params: unknown[] = []): Promise<WriteResult<T>> {
    return this.withPrimaryClient(async (client) => {
      const r = await client.query<T>(sql, params);
      return { rows: r.rows, rowCount: r.rowCount ?? 0, lsn: await this.walPosition(client) };
    });
  }

  /** Runs `fn` in a transaction on the primary; returns its result and the WAL position after commit. */
  async transaction<R>(fn: (client: PoolClient) => Promise<R>): Promise<{ result: R; lsn: string | undefined }> {
    return this.withPrimaryClient(async (client, connectionLost) => {
      try {
        await client.query('BEGIN');
        const result = await fn(client);
        await client.query('COMMIT');
        return { result, lsn: await this.walPosition(client) };
      } catch (err) {
        if (!connectionLost() && !isConnectionError(err)) await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  /** The primary's WAL position, for read-your-writes; only needed when there are replicas to wait for. */
  private async walPosition(client: PoolClient): Promise<string | undefined> {
    if (this.replicas.length === 0) return undefined;
    return (await client.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
  }

  /** Checks out a primary client for `fn`; a client whose connection was lost is destroyed, not pooled. */
  private async withPrimaryClient<R>(
    fn: (client: PoolClient, connectionLost: () => boolean) => Promise<R>,
  ): Promise<R> {
    const client = await this.primary.pool.connect();
    this.count(this.primary, 'primary');
    // A checked-out client has no pool listener: without ours, a server restart mid-request
    // ('Connection terminated unexpectedly') is an unhandled 'error' event that kills the process.
    let lost: Error | undefined;
    const onError = (err: Error) => {
      lost = err;
      this.log.warn({ err: err.message }, 'primary connection lost during a request');
    };
    client.on('error', onError);
    try {
      return await fn(client, () => lost !== undefined);
    } catch (err) {
      if (isConnectionError(err)) lost ??= err as Error;
      throw err;
    } finally {
      client.off('error', onError);
      // Releasing with an error destroys the client instead of returning a broken one to the pool.
      client.release(lost);
    }
  }

  /** Runs a statement on the primary outside a transaction (statistics views, health). */
  async onPrimary<T extends QueryResultRow>(sql: string, params: unknown[] = [], timeoutMs?: number): Promise<T[]> {
    this.count(this.primary, 'primary');
    const q = this.primary.pool.query<T>(sql, params);
    return (timeoutMs ? await withTimeout(q, timeoutMs, 'primary query') : await q).rows;
  }

  /** Runs a statement on one named pool, with a timeout (deep health, replication status). */
  async onPool<T extends QueryResultRow>(p: NamedPool, sql: string, timeoutMs: number): Promise<T[]> {
    this.count(p, p === this.primary ? 'primary' : 'replica');
    return (await withTimeout(p.pool.query<T>(sql), timeoutMs, `query on ${p.name}`)).rows;
  }

  get pools(): readonly NamedPool[] {
    return [this.primary, ...this.replicas];
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await Promise.all(this.pools.map((p) => p.pool.end().catch(() => undefined)));
  }
}

/** How every connection to PostgreSQL is made (pools and the one-shot commands alike). */
export function connectionOptions(cfg: ServiceConfig['postgres'], address: HostPort, name: string) {
  return {
    host: address.host,
    port: address.port,
    database: cfg.database,
    user: cfg.user,
    password: cfg.password,
    application_name: `fastnext-api:${name}`,
    connectionTimeoutMillis: cfg.poolTimeoutSeconds * 1000,
  };
}

/** Errors that mean "this server is unreachable", as opposed to a bad query. */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (e.code && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EPIPE|57P0[1-3]|08\d{3})$/.test(e.code)) {
    return true;
  }
  // node-postgres reports a socket lost under a checked-out client as "Client has
  // encountered a connection error and is not queryable" on its next query.
  return /Connection terminated|timeout exceeded when trying to connect|connection timeout|connection error and is not queryable|Client was closed and is not queryable/i.test(
    e.message ?? '',
  );
}

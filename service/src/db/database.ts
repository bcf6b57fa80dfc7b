/**
 * PostgreSQL access with read/write splitting.
 *
 * Writes and transactions go to the primary. Reads go to a healthy replica
 * chosen by `chooseReplica`; a replica that fails a probe or lags beyond
 * `replicaMaxLagSeconds` is skipped, and with none left reads use the primary.
 * Read-your-writes: every write returns the primary's WAL position after it;
 * a read that carries that LSN only goes to a replica that has replayed it.
 */
import { Client, Pool, type PoolClient, type QueryResultRow } from 'pg';
import type { Socket } from 'node:net';
import type { FastifyBaseLogger } from 'fastify';
import type { HostPort, ServiceConfig } from '../config';
import { chooseReplica, parseLsn, type ReplicaState } from './routing';
import { withTimeout } from '../timeout';
import { rotatingClient } from './login';
import { DB_STATEMENT_TIMEOUT_MS } from '../contract';

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
/** The primary probe (`SELECT 1` on a connection of its own) answers well within this on a healthy server. */
const PRIMARY_PROBE_TIMEOUT_MS = 600;
const PRIMARY_PROBE_INTERVAL_MS = 500;
/**
 * A new probe connection (TCP, TLS, SCRAM) may take this long. The handshake costs the client and
 * the server real CPU: on a pod held to half a core it can take longer than PRIMARY_PROBE_TIMEOUT_MS,
 * and a probe that threw it away at every deadline would never connect (deep health "down" for
 * good). A tick that passes its deadline still fails; the handshake goes on into the next ticks.
 */
const PRIMARY_PROBE_CONNECT_MS = 5000;
/**
 * How long the primary may stay silent while requests wait on it before it counts as down: once
 * a request has waited this long, nothing (no request, no probe) has had an answer from it for this
 * long, and the probe's last attempt failed too, that request, every other one waiting on the
 * primary and every later one get a 503 until it answers again. A slow primary still answers
 * something (other requests, the probe) and is left to statement_timeout; only a silent one is
 * down, so a loaded machine does not turn slowness into refusals. On a frozen primary the probe
 * fails within one interval + one timeout (1.1 s), so a request waits at most about 1.2 s before
 * its 503: under the 2 s a client is promised (docs/health.md).
 */
const PRIMARY_WAIT_BUDGET_MS = 1200;

/**
 * Probe errors that cannot come from a slow answer: nothing listens, or the server says it is
 * starting or shutting down. They mark the primary down at once; a timeout or a dropped connection
 * (the probe's backend terminated, a frozen server) waits for a request's own attempt to agree.
 */
const DEFINITIVE = /^(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|57P02|57P03)$/;

/** What the primary probe last saw. Readiness, deep health and the write gate read it: no I/O per request. */
export interface PrimaryState {
  readonly healthy: boolean;
  /** Epoch milliseconds of the last probe (0 before the first). */
  readonly checkedAt: number;
  readonly latencyMs: number;
  readonly error?: string;
  /**
   * The primary counts as down: the probe failed definitively (refused, starting, shutting down), or
   * it has been silent for PRIMARY_WAIT_BUDGET_MS while a request waited on it and the probe failed
   * too. Requests that need the primary are refused at once until the probe or a request sees it answer.
   */
  readonly down: boolean;
}

/** The primary counts as down (PrimaryState.down): the request is refused at once instead of waiting on it. */
export class PrimaryUnavailableError extends Error {
  readonly code = 'EPRIMARYDOWN';
  constructor(reason: string | undefined) {
    super(`the primary is unreachable${reason ? ` (${reason})` : ''}`);
  }
}

/** A request waiting on the primary: since when, and how to fail it. */
interface Waiting {
  readonly since: number;
  readonly abort: (err: Error) => void;
}

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
  private primaryTimer: NodeJS.Timeout | undefined;
  private readonly maxLag: number;
  private readonly cfg: ServiceConfig['postgres'];
  private primary_: PrimaryState = {
    healthy: false,
    checkedAt: 0,
    latencyMs: 0,
    error: 'not probed yet',
    down: false,
  };
  /** The probe's own connection: a probe never waits for (or leaks) a pool slot. */
  private probeClient: Client | undefined;
  /** The probe connection's handshake, while it lasts (it may outlive the tick that started it). */
  private probeConnect: { client: Client; done: Promise<unknown>; since: number } | undefined;
  /** The probe in flight: a second caller (the timer, a health check) shares it rather than queueing its own query behind it. */
  private probeInFlight: Promise<void> | undefined;
  /** The requests waiting on the primary; failed together once it counts as down. */
  private readonly waiting = new Set<Waiting>();
  /** Epoch milliseconds of the primary's last answer to anyone (the probe, a request); 0: none yet. */
  private lastAnswerAt = 0;
  /** The pg Client class of every connection: with two logins, one that reads the login in use. */
  private readonly Client: typeof Client;

  constructor(
    cfg: ServiceConfig['postgres'],
    private readonly log: FastifyBaseLogger,
    private readonly options: DatabaseOptions = {},
  ) {
    this.Client = clientClass(cfg);
    const make = (name: string, address: HostPort): NamedPool => {
      const pool = new Pool({
        ...connectionOptions(cfg, address, name),
        // Two logins: each new connection reads the one in use (db/login.ts).
        ...(cfg.logins ? { Client: this.Client } : {}),
        // poolSize connections stay open once made; the overflow above it closes after 10 s idle.
        min: cfg.poolSize,
        max: cfg.poolSize + cfg.maxOverflow,
        idleTimeoutMillis: 10_000,
        maxLifetimeSeconds: cfg.poolRecycleSeconds,
        statement_timeout: DB_STATEMENT_TIMEOUT_MS,
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
    this.cfg = cfg;
  }

  /** Starts probing the primary (reachable) and the replicas (health, lag, replayed LSN) in the background. */
  start(): void {
    const every = (this.options.probeIntervalSeconds ?? 1) * 1000;
    if (!this.primaryTimer) {
      const primaryEvery = Math.min(every, PRIMARY_PROBE_INTERVAL_MS);
      const tickPrimary = () => {
        void this.probePrimary().finally(() => {
          if (this.primaryTimer) this.primaryTimer = setTimeout(tickPrimary, primaryEvery).unref();
        });
      };
      this.primaryTimer = setTimeout(tickPrimary, 0).unref();
    }
    if (this.replicas.length === 0 || this.timer) return;
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

  get primaryState(): PrimaryState {
    return this.primary_;
  }

  /**
   * `SELECT 1` on the probe connection within PRIMARY_PROBE_TIMEOUT_MS. A failure marks the primary
   * unhealthy (readiness, deep health) and drops the probe connection (a frozen server would hold it
   * for ever); it marks the primary down only when definitive, or when the primary has been silent
   * while a request waited its budget on it (see PRIMARY_WAIT_BUDGET_MS). One probe runs at a time:
   * a call while one is in flight gets that one's outcome.
   */
  probePrimary(): Promise<void> {
    this.probeInFlight ??= this.probePrimaryOnce().finally(() => {
      this.probeInFlight = undefined;
    });
    return this.probeInFlight;
  }

  private async probePrimaryOnce(): Promise<void> {
    const started = Date.now();
    try {
      await this.primaryProbeAttempt();
      this.primaryAnswered(Date.now() - started);
    } catch (err) {
      const error = (err as Error).message;
      const definitive = DEFINITIVE.test((err as { code?: string }).code ?? '');
      if (this.primary_.healthy) this.log.warn({ err: error }, 'primary probe failed');
      this.primary_ = {
        healthy: false,
        checkedAt: Date.now(),
        latencyMs: Date.now() - started,
        error,
        down: this.primary_.down,
      };
      if (definitive) this.markPrimaryDown(error);
      else this.checkWaiting();
    }
  }

  /** The primary answered (the probe, or a request's own query): requests go to it again. */
  private primaryAnswered(latencyMs: number): void {
    this.lastAnswerAt = Date.now();
    if (this.primary_.down) this.log.warn('primary reachable again: requests go to it');
    this.primary_ = { healthy: true, checkedAt: Date.now(), latencyMs, down: false };
  }

  /** A request's own query got an answer: the primary is not silent, and if the probe had failed, it is up. */
  private requestAnswered(latencyMs: number): void {
    this.lastAnswerAt = Date.now();
    if (!this.primary_.healthy && this.primary_.checkedAt > 0) this.primaryAnswered(latencyMs);
  }

  /** Refuses requests that need the primary until it answers again, starting with those waiting on it now. */
  private markPrimaryDown(reason: string): void {
    if (!this.primary_.down)
      this.log.warn({ err: reason }, 'primary down: requests that need it get 503 until it is back');
    this.primary_ = { ...this.primary_, healthy: false, down: true };
    for (const w of this.waiting) w.abort(new PrimaryUnavailableError(reason));
  }

  /**
   * The primary is down when a request has waited its budget on it, nothing has answered for as
   * long, and the probe's last attempt failed too.
   */
  private checkWaiting(): void {
    const p = this.primary_;
    if (p.healthy || p.checkedAt === 0 || p.down) return;
    const now = Date.now();
    const silentMs = now - this.lastAnswerAt;
    if (silentMs < PRIMARY_WAIT_BUDGET_MS) return;
    for (const w of this.waiting) {
      if (now - w.since >= PRIMARY_WAIT_BUDGET_MS) {
        this.markPrimaryDown(`${p.error}; no answer for ${silentMs} ms while a request waited ${now - w.since} ms`);
        return;
      }
    }
  }

  /**
   * One `SELECT 1` on the probe connection within PRIMARY_PROBE_TIMEOUT_MS. A missing connection is
   * made first; its handshake may take up to PRIMARY_PROBE_CONNECT_MS over several ticks.
   */
  private async primaryProbeAttempt(): Promise<void> {
    if (!this.probeClient && !this.probeConnect) {
      // No timer of the client's own: the deadlines here decide (withTimeout, judged after pending I/O).
      const client = new this.Client({
        ...connectionOptions(this.cfg, this.cfg.primary, 'probe'),
        connectionTimeoutMillis: 0,
      });
      client.on('error', () => undefined);
      // Settles as { error } rather than rejecting: a handshake no tick awaits must not reject unhandled.
      const done = client.connect().then(
        () => ({}),
        (error: unknown) => ({ error }),
      );
      this.probeConnect = { client, done, since: Date.now() };
    }
    // Set when this tick's deadline has passed: a handshake finishing later hands its connection to
    // the next tick without querying (a query left over from an expired tick would queue before
    // the next tick's own and make it late too).
    let expired = false;
    try {
      await withTimeout(
        (async () => {
          const pending = this.probeConnect;
          if (pending) {
            const { error } = (await pending.done) as { error?: unknown };
            if (this.probeConnect === pending) this.probeConnect = undefined;
            if (error) {
              destroySocket(pending.client);
              throw error;
            }
            this.probeClient = pending.client;
            if (expired) return;
          }
          await this.probeClient!.query('SELECT 1');
        })(),
        PRIMARY_PROBE_TIMEOUT_MS,
        'primary probe',
      );
    } catch (err) {
      expired = true;
      const pending = this.probeConnect;
      if (pending && Date.now() - pending.since < PRIMARY_PROBE_CONNECT_MS) throw err; // still shaking hands
      // A frozen server would hold this connection (or handshake) for ever: drop it, the next attempt makes another.
      this.probeConnect = undefined;
      const c = this.probeClient ?? pending?.client;
      this.probeClient = undefined;
      if (c) destroySocket(c);
      throw err;
    }
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
   * While the primary is unreachable (a failover), a read without `minLsn` is tried once
   * more on a replica, even one not marked healthy: through the read-only pooler a probe
   * can land on the replica being promoted and mark the pool down for a second.
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
    try {
      return await this.withPrimaryClient(async (client) => (await client.query<T>(sql, params)).rows);
    } catch (err) {
      if (!isConnectionError(err) || minLsn || this.replicas.length === 0) throw err;
      const replica = this.replicas[this.roundRobin++ % this.replicas.length];
      this.log.warn({ replica: replica.name, err: (err as Error).message }, 'primary read failed; trying a replica');
      this.count(replica, 'replica');
      try {
        return (await replica.pool.query<T>(sql, params)).rows;
      } catch {
        throw err;
      }
    }
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

  /**
   * Checks out a primary client for `fn`; a client whose connection was lost is destroyed, not pooled.
   * While the primary counts as down this fails at once (PrimaryUnavailableError, a 503). Otherwise the
   * request tries the primary itself, even when the last probe failed; if it is still waiting after
   * PRIMARY_WAIT_BUDGET_MS, nothing has answered for as long and the probe fails too, the primary is
   * down: it and every other request waiting on it fail then, their connections dropped. An answer
   * marks the primary healthy again.
   */
  private async withPrimaryClient<R>(
    fn: (client: PoolClient, connectionLost: () => boolean) => Promise<R>,
  ): Promise<R> {
    if (this.primary_.down) throw new PrimaryUnavailableError(this.primary_.error);
    let abort!: (err: Error) => void;
    const aborted = new Promise<never>((_, reject) => (abort = reject));
    aborted.catch(() => undefined);
    let client: PoolClient | undefined;
    let lost: Error | undefined;
    const started = Date.now();
    const entry: Waiting = {
      since: started,
      abort: (err: Error) => {
        lost ??= err;
        if (client) destroySocket(client);
        abort(err);
      },
    };
    this.waiting.add(entry);
    // Judged after pending I/O (setImmediate), so an answer already in the socket of a starved process counts.
    const budget = setTimeout(() => setImmediate(() => this.checkWaiting()), PRIMARY_WAIT_BUDGET_MS);
    const connecting = this.primary.pool.connect();
    try {
      try {
        client = await Promise.race([connecting, aborted]);
      } catch (err) {
        // Given up on: whenever the connection arrives, it is closed, not pooled.
        connecting.then(
          (c) => c.release(true),
          () => undefined,
        );
        throw err;
      }
      this.count(this.primary, 'primary');
      const c = client;
      // A checked-out client has no pool listener: without ours, a server restart mid-request
      // ('Connection terminated unexpectedly') is an unhandled 'error' event that kills the process.
      const onError = (err: Error) => {
        lost ??= err;
        this.log.warn({ err: err.message }, 'primary connection lost during a request');
      };
      c.on('error', onError);
      try {
        const result = await Promise.race([fn(c, () => lost !== undefined), aborted]);
        this.requestAnswered(Date.now() - started);
        return result;
      } catch (err) {
        if (isConnectionError(err)) lost ??= err as Error;
        // An error from the server (a constraint, a syntax error) is an answer too.
        else if (!(err instanceof PrimaryUnavailableError)) this.requestAnswered(Date.now() - started);
        throw err;
      } finally {
        c.off('error', onError);
        // Releasing with an error destroys the client instead of returning a broken one to the pool.
        c.release(lost);
      }
    } finally {
      clearTimeout(budget);
      this.waiting.delete(entry);
    }
  }

  /** Runs a statement on the primary outside a transaction (statistics views, health). */
  async onPrimary<T extends QueryResultRow>(sql: string, params: unknown[] = [], timeoutMs?: number): Promise<T[]> {
    const q = this.withPrimaryClient(async (c) => (await c.query<T>(sql, params)).rows);
    return timeoutMs ? await withTimeout(q, timeoutMs, 'primary query') : await q;
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
    clearTimeout(this.primaryTimer);
    this.timer = undefined;
    this.primaryTimer = undefined;
    await this.probeClient?.end().catch(() => undefined);
    if (this.probeConnect) destroySocket(this.probeConnect.client);
    this.probeConnect = undefined;
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
    // verify-full: the chain against the CA, and the host name against the certificate (node's default check).
    ...(cfg.sslCa ? { ssl: { ca: cfg.sslCa, rejectUnauthorized: true } } : {}),
  };
}

/** The pg Client class for `cfg`: with two logins (`logins`), one that reads the login in use per connection. */
export function clientClass(cfg: Pick<ServiceConfig['postgres'], 'logins'>): typeof Client {
  return cfg.logins ? rotatingClient(cfg.logins) : Client;
}

/** Closes a client's socket now; its pending query fails with "Connection terminated". */
function destroySocket(c: Client | PoolClient): void {
  (c as unknown as { connection?: { stream?: Socket } }).connection?.stream?.destroy();
}

/**
 * Errors that mean "this server cannot serve us now", as opposed to a bad query: unreachable,
 * shut down, any SQLSTATE of class 08 (PgBouncer reports a server it cannot reach as 08P01),
 * and 25006 (read-only: a failover's new leader for the half second before it takes writes,
 * or a demoted one), so a failover answers 503 (retry) rather than 500; and EPRIMARYDOWN (the
 * primary counts as down: PrimaryUnavailableError).
 */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  if (
    e.code &&
    /^(EPRIMARYDOWN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EPIPE|57P0[1-3]|08[0-9A-Z]{3}|25006)$/.test(
      e.code,
    )
  ) {
    return true;
  }
  // node-postgres reports a socket lost under a checked-out client as "Client has
  // encountered a connection error and is not queryable" on its next query.
  return /Connection terminated|timeout exceeded when trying to connect|connection timeout|connection error and is not queryable|Client was closed and is not queryable/i.test(
    e.message ?? '',
  );
}

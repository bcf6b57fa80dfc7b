/**
 * Drills of the Patroni + PgBouncer tier, shared by test/patroni.test.ts and the twin,
 * so the numbers in bench/results.md come from the code the tests prove.
 *
 * A `WriteLoop` inserts increasing ids through PgBouncer (a fresh connection after any
 * error, as a pool would) and records which inserts were acknowledged and when each
 * attempt failed; a `ReadLoop` does the same with SELECTs on a replica member.
 */
import { Client } from 'pg';
import type { PatroniLaunch, ReconfigureRun } from './patroni';
import { type Endpoint, sleep, waitFor } from './processes';
import type { FileSource } from './sources';

export interface LoopStats {
  readonly ok: number;
  readonly failed: number;
  /** Times (ms since epoch) of failed attempts. */
  readonly failures: readonly number[];
  /** Times of successful attempts. */
  readonly successes: readonly number[];
  readonly errors: Readonly<Record<string, number>>;
}

/** A bounded loop of one statement, reconnecting after any error. */
export class StatementLoop {
  private running = true;
  private readonly done: Promise<void>;
  readonly acked: number[] = [];
  private readonly failures: number[] = [];
  private readonly successes: number[] = [];
  private readonly errors: Record<string, number> = {};

  /**
   * @param target where each new connection goes (called per connection: a Service's choice)
   * @param statement SQL run with the attempt number as $1 when `withId`
   */
  constructor(
    private readonly connectConfig: (target: Endpoint) => object,
    private readonly target: () => Endpoint,
    private readonly statement: string,
    private readonly withId: boolean,
    private readonly pauseMs = 20,
    private readonly maxMs = 120000,
  ) {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    const t0 = Date.now();
    let client: Client | undefined;
    let id = 0;
    while (this.running && Date.now() - t0 < this.maxMs) {
      id++;
      try {
        if (!client) {
          client = new Client({
            ...this.connectConfig(this.target()),
            connectionTimeoutMillis: 2000,
            query_timeout: 5000,
          });
          client.on('error', () => undefined);
          await client.connect();
        }
        await client.query(this.statement, this.withId ? [id] : []);
        if (this.withId) this.acked.push(id);
        this.successes.push(Date.now());
      } catch (e) {
        this.failures.push(Date.now());
        const key = ((e as Error).message || String(e)).replace(/\d+(\.\d+)*/g, 'N').slice(0, 80);
        this.errors[key] = (this.errors[key] ?? 0) + 1;
        void client?.end().catch(() => undefined);
        client = undefined;
        await sleep(100);
      }
      await sleep(this.pauseMs);
    }
    await client?.end().catch(() => undefined);
  }

  /** First success at or after `t` (ms since epoch), or undefined. */
  firstSuccessAfter(t: number): number | undefined {
    return this.successes.find((s) => s >= t);
  }

  /** First success after the first failure at or after `t` (the end of an outage that began then). */
  recoveredAfter(t: number): number | undefined {
    const firstFailure = this.failures.find((f) => f >= t);
    return firstFailure === undefined ? undefined : this.firstSuccessAfter(firstFailure);
  }

  failuresBetween(from: number, to = Number.MAX_SAFE_INTEGER): number {
    return this.failures.filter((f) => f >= from && f <= to).length;
  }

  async stop(): Promise<LoopStats> {
    this.running = false;
    await this.done;
    return {
      ok: this.successes.length,
      failed: this.failures.length,
      failures: this.failures,
      successes: this.successes,
      errors: this.errors,
    };
  }
}

export interface KillPrimaryResult {
  /** Seconds from SIGKILL of the leader to the first acknowledged write through PgBouncer. */
  readonly secondsToFirstWrite: number;
  /** Seconds from SIGKILL to a new leader in GET /cluster. */
  readonly secondsToNewLeader: number;
  readonly acknowledged: number;
  /** Acknowledged ids missing from the table on the new leader. */
  readonly lost: number;
  readonly failedWrites: number;
  readonly reads: { readonly ok: number; readonly failed: number };
  readonly oldLeader: number;
  readonly newLeader: number;
}

/**
 * Under a write loop through PgBouncer (`writeTarget`) and a read loop on a replica,
 * SIGKILLs the leader's Patroni and PostgreSQL, waits for the first successful write, runs
 * `settleMs` more, then counts acknowledged ids against the rows on the new leader.
 */
export async function killPrimaryUnderWrites(
  pg: PatroniLaunch,
  writeTarget: () => Endpoint,
  opts: {
    warmMs?: number;
    settleMs?: number;
    timeoutMs?: number;
    /** Acknowledged writes before the kill, and again after the first one that follows it (a loaded machine writes slower: counts, not only time, make the check meaningful). @default 30, 10 */
    ackedBefore?: number;
    ackedAfter?: number;
  } = {},
): Promise<KillPrimaryResult> {
  await pg.query(
    pg.primary,
    'CREATE TABLE IF NOT EXISTS drill_writes (id bigint PRIMARY KEY, at timestamptz DEFAULT now())',
  );
  await pg.query(pg.primary, 'TRUNCATE drill_writes');
  await pg.query(pg.primary, `GRANT ALL ON drill_writes TO ${pg.user}`);
  const oldLeader = await pg.leaderIndex();
  const readMember = pg.members.findIndex((_, i) => i !== oldLeader);
  const appConfig = (ep: Endpoint) => pg.clientConfig(ep, 'app');
  const writes = new StatementLoop(appConfig, writeTarget, 'INSERT INTO drill_writes (id) VALUES ($1)', true);
  const reads = new StatementLoop(appConfig, () => pg.members[readMember], 'SELECT count(*) FROM pg_class', false);
  await sleep(opts.warmMs ?? 2000);
  const before = opts.ackedBefore ?? 30;
  await waitFor(`${before} acknowledged writes before the kill`, async () => writes.acked.length >= before, 60000);
  const t0 = Date.now();
  await pg.killMember(oldLeader);
  const newLeaderMs = await waitFor(
    'a new Patroni leader',
    async () => {
      const l = await pg.leaderIndex();
      return l >= 0 && l !== oldLeader;
    },
    opts.timeoutMs ?? 60000,
  );
  await waitFor('a write after the kill', () => writes.recoveredAfter(t0) !== undefined, opts.timeoutMs ?? 60000);
  const firstWrite = writes.recoveredAfter(t0)!;
  await sleep(opts.settleMs ?? 1000);
  const after = writes.acked.length + (opts.ackedAfter ?? 10);
  await waitFor('acknowledged writes after the recovery', async () => writes.acked.length >= after, 60000);
  const w = await writes.stop();
  const r = await reads.stop();
  const newLeader = await pg.leaderIndex();
  const rows = await pg.query<{ id: string }>(pg.members[newLeader], 'SELECT id FROM drill_writes');
  const present = new Set(rows.map((x) => Number(x.id)));
  return {
    secondsToFirstWrite: (firstWrite - t0) / 1000,
    secondsToNewLeader: (newLeaderMs + 0) / 1000,
    acknowledged: writes.acked.length,
    lost: writes.acked.filter((id) => !present.has(id)).length,
    failedWrites: w.failed,
    reads: { ok: r.ok, failed: r.failed },
    oldLeader,
    newLeader,
  };
}

/** Restarts a member and times it back to a streaming replica; says whether pg_rewind ran. */
export async function rejoinMember(
  pg: PatroniLaunch,
  i: number,
  timeoutMs = 90000,
): Promise<{ seconds: number; rewound: boolean }> {
  const t0 = Date.now();
  await pg.startMember(i);
  await waitFor(
    `${pg.members[i].name} streaming as a replica`,
    async () => {
      const m = (await pg.cluster()).find((x) => x.name === pg.members[i].name);
      return m?.role !== 'leader' && m?.state === 'running' && typeof m.lag === 'number' && (await pg.streaming(i));
    },
    timeoutMs,
    () => pg.log(i),
  );
  return { seconds: (Date.now() - t0) / 1000, rewound: /running pg_rewind from/.test(pg.log(i)) };
}

export interface ReplicaFollow {
  readonly member: string;
  /** Seen not streaming on an older timeline than the leader's (it replayed past the fork point). */
  readonly diverged: boolean;
  readonly timeline: number;
  readonly leaderTimeline: number;
  /** From the call to streaming from the leader. */
  readonly seconds: number;
  /** Whether the member's current Patroni ran pg_rewind. */
  readonly rewound: boolean;
}

/**
 * Waits until every replica streams from the leader again after a failover, and says which were
 * diverged on the way. A replica that replayed WAL of the old timeline past the fork point from the
 * archive (the old leader's rejoin archives its remaining segments) stays "running" in `patronictl
 * list` on the old timeline and never streams again: Patroni 3.0 checks for that only when it starts
 * PostgreSQL. The Patroni container's liveness check (constructs/postgres/patroni-liveness.ts) fails
 * on such a member, and the container restart that follows runs pg_rewind; whoever runs the probes
 * (the twin's kubelet, or the test's) must be running while this waits.
 */
export async function waitReplicasFollow(pg: PatroniLaunch, timeoutMs = 240000): Promise<ReplicaFollow[]> {
  const t0 = Date.now();
  const leader = await pg.leaderIndex();
  const seen = new Map<number, { diverged: boolean; timeline: number; leaderTimeline: number; seconds?: number }>();
  for (;;) {
    const members = await pg.cluster();
    const leaderTimeline = members.find((m) => m.name === pg.members[leader].name)?.timeline ?? 0;
    let pending = 0;
    for (let i = 0; i < pg.members.length; i++) {
      if (i === leader) continue;
      const s = seen.get(i) ?? { diverged: false, timeline: 0, leaderTimeline };
      seen.set(i, s);
      if (s.seconds !== undefined) continue;
      if (await pg.streaming(i)) {
        s.seconds = (Date.now() - t0) / 1000;
        continue;
      }
      pending++;
      const tl = members.find((m) => m.name === pg.members[i].name)?.timeline ?? 0;
      if (tl > 0 && tl < leaderTimeline && !s.diverged)
        Object.assign(s, { diverged: true, timeline: tl, leaderTimeline });
    }
    if (pending === 0) break;
    if (Date.now() - t0 > timeoutMs) {
      const stuck = [...seen].filter(([, s]) => s.seconds === undefined).map(([i]) => pg.members[i].name);
      throw new Error(
        `replicas not streaming ${timeoutMs / 1000} s after the failover: ${stuck.join(', ')}\n` +
          JSON.stringify(members) +
          [...seen].map(([i]) => `\n--- ${pg.members[i].name}\n${pg.log(i).slice(-2000)}`).join(''),
      );
    }
    await sleep(500);
  }
  return [...seen].map(([i, s]) => ({
    member: pg.members[i].name,
    diverged: s.diverged,
    timeline: s.timeline,
    leaderTimeline: s.leaderTimeline,
    seconds: s.seconds ?? 0,
    rewound: /running pg_rewind from/.test(pg.log(i)),
  }));
}

/**
 * Creates the drills' write table (granted to the app role) if needed; returns its highest id,
 * the base a new write loop numbers its rows from.
 */
async function drillWritesTable(pg: PatroniLaunch): Promise<number> {
  await pg.query(
    pg.primary,
    'CREATE TABLE IF NOT EXISTS drill_writes (id bigint PRIMARY KEY, at timestamptz DEFAULT now())',
  );
  await pg.query(pg.primary, `GRANT ALL ON drill_writes TO ${pg.user}`);
  return Number((await pg.query<{ m: string | null }>(pg.primary, 'SELECT max(id) AS m FROM drill_writes'))[0].m ?? 0);
}

/** `patronictl switchover` under a write loop; the longest gap between acknowledged writes. */
export async function switchoverUnderWrites(
  pg: PatroniLaunch,
  writeTarget: () => Endpoint,
): Promise<{ failedWrites: number; maxGapSeconds: number; from: string; to: string; output: string }> {
  const leader = await pg.leaderIndex();
  const appConfig = (ep: Endpoint) => pg.clientConfig(ep, 'app');
  const base = await drillWritesTable(pg);
  const writes = new StatementLoop(appConfig, writeTarget, `INSERT INTO drill_writes (id) VALUES ($1 + ${base})`, true);
  await sleep(1500);
  const sw = await pg.patronictl('switchover', '--leader', pg.members[leader].name, '--force');
  let clusterNow: unknown;
  await waitFor(
    'a new leader after the switchover',
    async () => {
      clusterNow = await pg.cluster();
      const l = await pg.leaderIndex();
      return l >= 0 && l !== leader;
    },
    60000,
    () => `patronictl switchover (exit ${sw.code}):\n${sw.output}\ncluster: ${JSON.stringify(clusterNow)}`,
  );
  await sleep(3000);
  const w = await writes.stop();
  let maxGap = 0;
  for (let k = 1; k < w.successes.length; k++) maxGap = Math.max(maxGap, w.successes[k] - w.successes[k - 1]);
  const to = await pg.leaderIndex();
  return {
    failedWrites: w.failed,
    maxGapSeconds: maxGap / 1000,
    from: pg.members[leader].name,
    to: pg.members[to].name,
    output: sw.output,
  };
}

/** Each member's PostgreSQL start time (pg_postmaster_start_time, ms since epoch), by member name. */
export async function postmasterStarts(pg: PatroniLaunch): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of pg.members) {
    const [r] = await pg.query<{ t: Date }>(m, 'SELECT pg_postmaster_start_time() AS t');
    out[m.name] = r.t.getTime();
  }
  return out;
}

export interface ReconfigureUnderWritesResult {
  readonly run: ReconfigureRun;
  readonly acknowledged: number;
  /** Acknowledged ids missing from the table on the leader afterwards. */
  readonly lost: number;
  readonly failedWrites: number;
  /** Failed writes outside [switchover start - 1 s, first acknowledged write after it]. */
  readonly failedOutsideSwitchover: number;
  /** Longest gap between acknowledged writes, in seconds. */
  readonly maxGapSeconds: number;
  /** From the switchover request to the first acknowledged write after it (0 without a switchover). */
  readonly switchoverGapSeconds: number;
  readonly errors: Readonly<Record<string, number>>;
}

/**
 * Runs the reconfigure script of `source` under a write loop through `writeTarget` (PgBouncer):
 * counts failed writes, where they fell relative to the switchover, and acknowledged writes lost.
 */
export async function reconfigureUnderWrites(
  pg: PatroniLaunch,
  writeTarget: () => Endpoint,
  source: FileSource,
): Promise<ReconfigureUnderWritesResult> {
  const base = await drillWritesTable(pg);
  const writes = new StatementLoop(
    (ep) => pg.clientConfig(ep, 'app'),
    writeTarget,
    `INSERT INTO drill_writes (id) VALUES ($1 + ${base})`,
    true,
    20,
    600000,
  );
  await sleep(1500);
  const run = await pg.reconfigure(source);
  await sleep(2000);
  const w = await writes.stop();
  const leader = await pg.leaderIndex();
  const rows = await pg.query<{ id: string }>(pg.members[leader], 'SELECT id FROM drill_writes WHERE id > $1', [base]);
  const present = new Set(rows.map((x) => Number(x.id) - base));
  let maxGap = 0;
  for (let k = 1; k < w.successes.length; k++) maxGap = Math.max(maxGap, w.successes[k] - w.successes[k - 1]);
  const sw = run.summary?.switchover;
  const from = sw ? sw.startedAt * 1000 - 1000 : Number.POSITIVE_INFINITY;
  const to = sw ? (writes.recoveredAfter(from) ?? writes.firstSuccessAfter(sw.endedAt * 1000) ?? Date.now()) : 0;
  return {
    run,
    acknowledged: writes.acked.length,
    lost: writes.acked.filter((id) => !present.has(id)).length,
    failedWrites: w.failed,
    failedOutsideSwitchover: w.failures.filter((f) => f < from || f > to).length,
    maxGapSeconds: maxGap / 1000,
    switchoverGapSeconds: sw ? (to - sw.startedAt * 1000) / 1000 : 0,
    errors: w.errors,
  };
}

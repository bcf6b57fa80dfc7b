/**
 * Pure read-routing decisions, kept apart from the pools so they are unit-tested
 * without a database.
 */

/** Parses a PostgreSQL LSN (`16/B374D848`) into a comparable number of bytes. */
export function parseLsn(lsn: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn);
  if (!m) throw new Error(`LSN (${JSON.stringify(lsn)}) must look like 16/B374D848`);
  return (BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`);
}

export function isLsn(value: string): boolean {
  return /^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(value);
}

/** What the health poller last learned about one replica. */
export interface ReplicaState {
  readonly name: string;
  /** False after a failed probe, until the next successful one. */
  readonly healthy: boolean;
  /** Seconds the replica's replay trails the primary (0 when caught up). */
  readonly lagSeconds: number;
  /** Last replayed LSN, in bytes; undefined before the first probe. */
  readonly replayLsn: bigint | undefined;
}

/**
 * Picks the replica to read from, or undefined for "use the primary".
 *
 * A replica is eligible when its last probe succeeded, its lag is within
 * `maxLagSeconds`, and (for read-your-writes) it has replayed `minLsn`.
 * Among eligible replicas we rotate with `counter` to spread the load.
 */
export function chooseReplica(
  replicas: readonly ReplicaState[],
  maxLagSeconds: number,
  counter: number,
  minLsn?: bigint,
): number | undefined {
  const eligible: number[] = [];
  replicas.forEach((r, i) => {
    if (!r.healthy || r.lagSeconds > maxLagSeconds) return;
    if (minLsn !== undefined && (r.replayLsn === undefined || r.replayLsn < minLsn)) return;
    eligible.push(i);
  });
  if (eligible.length === 0) return undefined;
  return eligible[counter % eligible.length];
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

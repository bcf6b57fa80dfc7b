/**
 * Monthly partitions of activity_logs. `ensurePartitions` creates the missing
 * ones for a range of months; rows that already landed in the default
 * partition for such a month are moved into the new partition in the same
 * transaction (PostgreSQL refuses to create a partition whose range the
 * default partition already holds rows of).
 */
import type { ClientBase } from 'pg';

/** Months ahead the maintenance job keeps ready (the CronJob runs daily; 3 gives weeks of slack). */
export const MONTHS_AHEAD = 3;

export function monthStart(d: Date, offsetMonths = 0): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + offsetMonths, 1));
}

export function partitionName(month: Date): string {
  return `activity_logs_${month.getUTCFullYear()}_${String(month.getUTCMonth() + 1).padStart(2, '0')}`;
}

const literal = (d: Date) => `'${d.toISOString()}'`;

/**
 * Ensures a partition exists for each month from `from` (its month) on, `months` months long.
 * Returns the names of the partitions created. Caller holds the migration lock.
 */
export async function ensurePartitions(client: ClientBase, from: Date, months: number): Promise<string[]> {
  const created: string[] = [];
  for (let i = 0; i < months; i++) {
    const start = monthStart(from, i);
    const end = monthStart(from, i + 1);
    const name = partitionName(start);
    const { rows } = await client.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [name]);
    if (rows[0].exists) continue;
    // Bounds are dates we computed, never input, so inlining them in DDL (which takes no parameters) is safe.
    await client.query('BEGIN');
    try {
      await client.query('CREATE TEMP TABLE activity_logs_moving (LIKE activity_logs) ON COMMIT DROP');
      await client.query(
        `WITH moved AS (DELETE FROM activity_logs_default WHERE created_at >= $1 AND created_at < $2 RETURNING *)
         INSERT INTO activity_logs_moving SELECT * FROM moved`,
        [start, end],
      );
      await client.query(
        `CREATE TABLE ${name} PARTITION OF activity_logs FOR VALUES FROM (${literal(start)}) TO (${literal(end)})`,
      );
      await client.query('INSERT INTO activity_logs SELECT * FROM activity_logs_moving');
      await client.query('COMMIT');
      created.push(name);
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    }
  }
  return created;
}

/** Names of the existing monthly partitions, oldest first. */
export async function listPartitions(client: ClientBase): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'activity_logs'::regclass AND c.relname ~ '^activity_logs_[0-9]{4}_[0-9]{2}$'
      ORDER BY c.relname`,
  );
  return rows.map((r) => r.name);
}

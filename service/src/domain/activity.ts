/** The activity log: appends go to the partitioned table; lists prune to the partitions in range. */
import type { Ctx } from './context';

export interface Activity {
  id: string;
  user_id: string;
  action: string;
  details: Record<string, unknown> | null;
  created_at: string;
}

const COLUMNS = 'id::text, user_id::text, action, details, created_at';

/** Actions only the API writes (users.ts, with each change): the recent-changes feed reads exactly these. */
export const RECORDED_CHANGES = ['create', 'update', 'delete'] as const;

/**
 * Appends a client's event for an existing user; undefined when the user does not exist.
 * (The log has no foreign key, so it keeps deleted users' history; the check is one index probe.)
 */
export async function appendActivity(
  ctx: Ctx,
  a: { user_id: string; action: string; details?: Record<string, unknown> | null },
): Promise<{ activity: Activity | undefined; lsn?: string }> {
  const r = await ctx.db.write<Activity>(
    `INSERT INTO activity_logs (user_id, action, details)
     SELECT $1::bigint, $2::text, $3::jsonb WHERE EXISTS (SELECT 1 FROM users WHERE id = $1::bigint)
     RETURNING ${COLUMNS}`,
    [a.user_id, a.action, a.details === undefined ? null : JSON.stringify(a.details)],
  );
  return { activity: r.rows[0], lsn: r.lsn };
}

/** A user's activity in [$2, $3), newest first (exported for the partition-pruning test and the benchmark). */
export const LIST_ACTIVITY_SQL = `SELECT ${COLUMNS} FROM activity_logs
  WHERE user_id = $1 AND created_at >= $2 AND created_at < $3
  ORDER BY created_at DESC LIMIT $4`;

export function listActivity(ctx: Ctx, userId: string, from: Date, to: Date, limit: number): Promise<Activity[]> {
  return ctx.db.read<Activity>(LIST_ACTIVITY_SQL, [userId, from, to, limit], ctx.minLsn);
}

/** Data-changing actions only: the partial index activity_logs_recent_changes_idx covers exactly these. */
export const RECENT_CHANGES_SQL = `SELECT ${COLUMNS} FROM activity_logs
  WHERE action IN ('create', 'update', 'delete') AND created_at >= $1
  ORDER BY created_at DESC LIMIT $2`;

/** The newest data changes of all users since `since` (an audit feed). */
export function recentChanges(ctx: Ctx, since: Date, limit: number): Promise<Activity[]> {
  return ctx.db.read<Activity>(RECENT_CHANGES_SQL, [since, limit], ctx.minLsn);
}

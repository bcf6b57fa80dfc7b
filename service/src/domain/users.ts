/**
 * Users: plain parameterized SQL; reads by id are cached under the tag `user:<id>`.
 * Every create, update and delete also appends its row to the activity log in the
 * same statement (a data-modifying CTE: one round trip, atomic), which is what the
 * recent-changes feed reads; clients cannot post those actions themselves.
 */
import type { Ctx } from './context';
import { cachedRead, invalidateAfterWrite } from './context';
import { ownedProjectsTag, ownerTag } from './projects';

export interface User {
  id: string;
  email: string;
  username: string;
  full_name: string | null;
  is_active: boolean;
  created_at: string;
  updated_at: string;
}

const COLUMNS = 'id::text, email, username, full_name, is_active, created_at, updated_at';

export const userKey = (id: string) => `user:${id}`;

export async function createUser(
  ctx: Ctx,
  u: { email: string; username: string; full_name?: string | null },
): Promise<{ user: User; lsn?: string }> {
  const r = await ctx.db.write<User>(
    `WITH u AS (INSERT INTO users (email, username, full_name) VALUES ($1, $2, $3) RETURNING *),
          logged AS (INSERT INTO activity_logs (user_id, action) SELECT id, 'create' FROM u)
     SELECT ${COLUMNS} FROM u`,
    [u.email, u.username, u.full_name ?? null],
  );
  return { user: r.rows[0], lsn: r.lsn };
}

export function getUser(ctx: Ctx, id: string): Promise<User | null> {
  return cachedRead(ctx, userKey(id), { tags: [userKey(id)] }, async () => {
    const rows = await ctx.db.read<User>(`SELECT ${COLUMNS} FROM users WHERE id = $1`, [id], ctx.minLsn);
    return rows[0] ?? null;
  });
}

export async function updateUser(
  ctx: Ctx,
  id: string,
  patch: { email?: string; username?: string; full_name?: string | null; is_active?: boolean },
): Promise<{ user: User | null; lsn?: string }> {
  const r = await ctx.db.write<User>(
    `WITH u AS (
       UPDATE users SET email = COALESCE($2, email), username = COALESCE($3, username),
              full_name = CASE WHEN $4::boolean THEN $5 ELSE full_name END,
              is_active = COALESCE($6, is_active), updated_at = now()
        WHERE id = $1 RETURNING *),
          logged AS (INSERT INTO activity_logs (user_id, action, details) SELECT id, 'update', $7::jsonb FROM u)
     SELECT ${COLUMNS} FROM u`,
    [
      id,
      patch.email ?? null,
      patch.username ?? null,
      'full_name' in patch,
      patch.full_name ?? null,
      patch.is_active ?? null,
      // The names of the fields changed (schema names, never values: the log outlives the user).
      JSON.stringify({ fields: Object.keys(patch).sort() }),
    ],
  );
  await invalidateAfterWrite(ctx, [userKey(id)]);
  return { user: r.rows[0] ?? null, lsn: r.lsn };
}

export async function deleteUser(ctx: Ctx, id: string): Promise<{ deleted: boolean; lsn?: string }> {
  const r = await ctx.db.write(
    `WITH d AS (DELETE FROM users WHERE id = $1 RETURNING id),
          logged AS (INSERT INTO activity_logs (user_id, action) SELECT id, 'delete' FROM d)
     SELECT id FROM d`,
    [id],
  );
  // The cascade deleted the user's projects: drop their lists and the single projects.
  await invalidateAfterWrite(ctx, [userKey(id), ownerTag(id), ownedProjectsTag(id)]);
  return { deleted: r.rowCount > 0, lsn: r.lsn };
}

/**
 * Full-text search over username, full name and email (the generated `search`
 * tsvector with its GIN index); ranked, then newest first.
 */
export const SEARCH_USERS_SQL = `SELECT ${COLUMNS} FROM users
  WHERE search @@ websearch_to_tsquery('simple', $1) AND (is_active OR NOT $3::boolean)
  ORDER BY ts_rank(search, websearch_to_tsquery('simple', $1)) DESC, id DESC
  LIMIT $2`;

export function searchUsers(ctx: Ctx, q: string, limit: number, activeOnly: boolean): Promise<User[]> {
  return ctx.db.read<User>(SEARCH_USERS_SQL, [q, limit, activeOnly], ctx.minLsn);
}

/** Ids of the most recently created active users (the cache warm-up set; uses the partial index). */
export const RECENT_ACTIVE_USERS_SQL = 'SELECT id::text FROM users WHERE is_active ORDER BY created_at DESC LIMIT $1';

export async function recentActiveUserIds(ctx: Ctx, limit: number): Promise<string[]> {
  const rows = await ctx.db.read<{ id: string }>(RECENT_ACTIVE_USERS_SQL, [limit]);
  return rows.map((r) => r.id);
}

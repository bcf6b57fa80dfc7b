/** Projects with JSONB settings; by-id and by-owner reads are cached and tagged. */
import type { Ctx } from './context';
import { cachedRead, invalidateAfterWrite } from './context';

export interface Project {
  id: string;
  owner_id: string;
  name: string;
  settings: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}

const COLUMNS = 'id::text, owner_id::text, name, settings, created_at, updated_at';
const projectKey = (id: string) => `project:${id}`;
/** Tag of every cached project list of one owner (deleting the user clears it too). */
export const ownerTag = (ownerId: string) => `user:${ownerId}:projects`;
/**
 * Tag of every cached single project of one owner: deleting the user deletes
 * their projects (ON DELETE CASCADE), so it must drop those entries too.
 */
export const ownedProjectsTag = (ownerId: string) => `user:${ownerId}:owned-projects`;

export async function createProject(
  ctx: Ctx,
  p: { owner_id: string; name: string; settings?: Record<string, unknown> },
): Promise<{ project: Project; lsn?: string }> {
  const r = await ctx.db.write<Project>(
    `INSERT INTO projects (owner_id, name, settings) VALUES ($1, $2, $3) RETURNING ${COLUMNS}`,
    [p.owner_id, p.name, JSON.stringify(p.settings ?? {})],
  );
  await invalidateAfterWrite(ctx, [ownerTag(p.owner_id)]);
  return { project: r.rows[0], lsn: r.lsn };
}

export function getProject(ctx: Ctx, id: string): Promise<Project | null> {
  const opts = { tags: [projectKey(id)], tagsOf: (p: Project | null) => (p ? [ownedProjectsTag(p.owner_id)] : []) };
  return cachedRead(ctx, projectKey(id), opts, async () => {
    const rows = await ctx.db.read<Project>(`SELECT ${COLUMNS} FROM projects WHERE id = $1`, [id], ctx.minLsn);
    return rows[0] ?? null;
  });
}

/** Updates name and merges `settings` into the stored object (top-level keys). */
export async function updateProject(
  ctx: Ctx,
  id: string,
  patch: { name?: string; settings?: Record<string, unknown> },
): Promise<{ project: Project | null; lsn?: string }> {
  const r = await ctx.db.write<Project>(
    `UPDATE projects SET name = COALESCE($2, name), settings = settings || COALESCE($3::jsonb, '{}'), updated_at = now()
      WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, patch.name ?? null, patch.settings ? JSON.stringify(patch.settings) : null],
  );
  const project = r.rows[0] ?? null;
  if (project) await invalidateAfterWrite(ctx, [projectKey(id), ownerTag(project.owner_id)]);
  return { project, lsn: r.lsn };
}

export const LIST_BY_OWNER_SQL = `SELECT ${COLUMNS} FROM projects WHERE owner_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2`;

export function listByOwner(ctx: Ctx, ownerId: string, limit: number): Promise<Project[]> {
  return cachedRead(ctx, `${ownerTag(ownerId)}:${limit}`, { tags: [ownerTag(ownerId)] }, () =>
    ctx.db.read<Project>(LIST_BY_OWNER_SQL, [ownerId, limit], ctx.minLsn),
  );
}

export const LIST_BY_SETTING_SQL = `SELECT ${COLUMNS} FROM projects WHERE settings @> $1::jsonb ORDER BY created_at DESC LIMIT $2`;

/** The containment document for `key: value` (JSON when value parses as a number, boolean or null). */
export function settingFilter(key: string, value: string): string {
  const parsed: unknown = /^(true|false|null|-?\d+(\.\d+)?)$/.test(value) ? JSON.parse(value) : value;
  return JSON.stringify({ [key]: parsed });
}

/**
 * Projects whose settings contain `key: value` (containment `@>`, served by the
 * GIN jsonb_path_ops index). `value` is JSON when it parses as a number,
 * boolean or null, else a string.
 */
export function listBySetting(ctx: Ctx, key: string, value: string, limit: number): Promise<Project[]> {
  return ctx.db.read<Project>(LIST_BY_SETTING_SQL, [settingFilter(key, value), limit], ctx.minLsn);
}

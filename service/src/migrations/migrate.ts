/**
 * Applies MIGRATIONS and keeps activity_logs partitions ahead. Safe to run from
 * several pods at once: everything happens under one advisory lock, so the
 * second runner waits, then finds nothing left to do.
 */
import { Client, type ClientBase } from 'pg';
import type { ServiceConfig } from '../config';
import { clientClass, connectionOptions } from '../db/database';
import { MIGRATIONS, type Migration } from './migrations';
import { ensurePartitions, monthStart, MONTHS_AHEAD } from './partitions';

/** Advisory lock key shared by `migrate` and `maintain-partitions` ("fastnext" in ASCII, truncated). */
export const MIGRATION_LOCK_KEY = 0x66617374;

export interface MigrateResult {
  readonly applied: string[];
  readonly partitionsCreated: string[];
}

async function withLock<T>(client: ClientBase, fn: () => Promise<T>): Promise<T> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
  try {
    return await fn();
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
  }
}

export async function migrate(
  client: ClientBase,
  migrations: readonly Migration[] = MIGRATIONS,
  now = new Date(),
): Promise<MigrateResult> {
  return withLock(client, async () => {
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (id text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const done = new Set(
      (await client.query<{ id: string }>('SELECT id FROM schema_migrations')).rows.map((r) => r.id),
    );
    const applied: string[] = [];
    for (const m of migrations) {
      if (done.has(m.id)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (id) VALUES ($1)', [m.id]);
        await client.query('COMMIT');
        applied.push(m.id);
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${m.id} failed: ${(err as Error).message}`);
      }
    }
    const partitionsCreated = await ensurePartitions(client, monthStart(now), MONTHS_AHEAD + 1);
    return { applied, partitionsCreated };
  });
}

/** The CronJob's work: partitions for this month and the next MONTHS_AHEAD months. */
export async function maintainPartitions(client: ClientBase, now = new Date()): Promise<string[]> {
  return withLock(client, () => ensurePartitions(client, monthStart(now), MONTHS_AHEAD + 1));
}

/**
 * A single connection to the primary for the one-shot commands, as the migration role when one is
 * configured (it owns the schema; the runtime role may not run DDL), else as the runtime role.
 */
export async function connectPrimary(cfg: ServiceConfig['postgres']): Promise<Client> {
  const as = cfg.migration ? { ...cfg, ...cfg.migration } : cfg;
  // The runtime role with two logins: the one in use (the migration role has one).
  const Connection = cfg.migration ? Client : clientClass(cfg);
  const client = new Connection(connectionOptions(as, cfg.primary, 'migrate'));
  await client.connect();
  return client;
}

/** Database statistics (bearer token), read from the primary's statistics views. */
import type { FastifyPluginAsyncJsonSchemaToTs } from '@fastify/type-provider-json-schema-to-ts';
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';
import { requireToken } from '../../http/auth';
import { HttpError } from '../../http/errors';
import { listOf, withErrors } from '../../schemas/common';
import {
  MANAGEMENT,
  cacheHitRatioResponse,
  duplicateIndexes,
  indexRecommendationsResponse,
  indexUsage,
  seqScanHeavyTable,
  slowQuery,
  statsLimitQuery,
  tableHitRatio,
  unusedIndex,
} from '../../schemas/management';

/** A row of the statistics views as the response schema describes it, before the advice is added. */
type Found<S extends JSONSchema> = Omit<FromSchema<S>, 'advice'>;
type SeqScanned = Found<typeof seqScanHeavyTable>;
type Unused = Found<typeof unusedIndex>;
type Duplicates = Found<typeof duplicateIndexes>;

const database: FastifyPluginAsyncJsonSchemaToTs = async (app) => {
  // onRequest: the token is checked before the input, so a caller without it learns nothing of the schema.
  app.addHook('onRequest', requireToken(app.config.managementToken));
  const q = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
    app.db.onPrimary<T>(sql, params);

  const slowQueries = { ...MANAGEMENT, querystring: statsLimitQuery, response: withErrors({ 200: listOf(slowQuery) }) };
  app.get('/database/slow-queries', { schema: slowQueries }, async (request) => {
    try {
      const rows = await q<FromSchema<typeof slowQuery>>(
        `SELECT queryid::text, left(query, 500) AS query, calls, round(total_exec_time::numeric, 3) AS total_ms,
                round(mean_exec_time::numeric, 3) AS mean_ms, round(max_exec_time::numeric, 3) AS max_ms, rows
           FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
          ORDER BY mean_exec_time DESC LIMIT $1`,
        [request.query.limit],
      );
      return { items: rows };
    } catch (err) {
      if ((err as { code?: string }).code === '42P01' || (err as { code?: string }).code === '55000') {
        throw new HttpError(503, `pg_stat_statements is not available: ${(err as Error).message}`);
      }
      throw err;
    }
  });

  const indexUsageSchema = { ...MANAGEMENT, response: withErrors({ 200: listOf(indexUsage) }) };
  app.get('/database/index-usage', { schema: indexUsageSchema }, async () => ({
    items: await q<FromSchema<typeof indexUsage>>(
      `SELECT s.relname AS table, s.indexrelname AS index, s.idx_scan AS scans, s.idx_tup_read AS tuples_read,
              pg_relation_size(s.indexrelid) AS size_bytes
         FROM pg_stat_user_indexes s ORDER BY s.idx_scan DESC, s.relname, s.indexrelname`,
    ),
  }));

  const recommendations = { ...MANAGEMENT, response: withErrors({ 200: indexRecommendationsResponse }) };
  app.get('/database/index-recommendations', { schema: recommendations }, async () => {
    const [seqScanned, unused, duplicates] = await Promise.all([
      // Tables of some size read mostly by sequential scans: a missing index is likely.
      q<SeqScanned>(
        `SELECT relname AS table, seq_scan, seq_tup_read, coalesce(idx_scan, 0) AS idx_scan, n_live_tup AS rows
           FROM pg_stat_user_tables
          WHERE n_live_tup > 1000 AND seq_scan > coalesce(idx_scan, 0)
          ORDER BY seq_tup_read DESC LIMIT 20`,
      ),
      // Never-used indexes that are not enforcing a constraint cost writes for nothing.
      q<Unused>(
        `SELECT s.relname AS table, s.indexrelname AS index, pg_relation_size(s.indexrelid) AS size_bytes
           FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
          WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
          ORDER BY pg_relation_size(s.indexrelid) DESC LIMIT 50`,
      ),
      // Indexes with identical definitions on the same table (same columns, expressions, predicate).
      q<Duplicates>(
        `SELECT indrelid::regclass::text AS table, array_agg(indexrelid::regclass::text ORDER BY indexrelid) AS indexes
           FROM pg_index
          GROUP BY indrelid, indkey::text, indclass::text, coalesce(indexprs::text, ''), coalesce(indpred::text, '')
         HAVING count(*) > 1`,
      ),
    ]);
    return {
      sequential_scan_heavy_tables: seqScanned.map((r) => ({ ...r, advice: 'add an index for the filtered columns' })),
      unused_indexes: unused.map((r) => ({ ...r, advice: 'drop if unused over a full business cycle' })),
      duplicate_indexes: duplicates.map((r) => ({ ...r, advice: 'keep one, drop the others' })),
    };
  });

  const hitRatio = { ...MANAGEMENT, response: withErrors({ 200: cacheHitRatioResponse }) };
  app.get('/database/cache-hit-ratio', { schema: hitRatio }, async () => {
    const [db] = await q<{ blks_hit: string; blks_read: string }>(
      'SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()',
    );
    const tables = await q<FromSchema<typeof tableHitRatio>>(
      `SELECT relname AS table, heap_blks_hit, heap_blks_read,
              CASE WHEN heap_blks_hit + heap_blks_read = 0 THEN NULL
                   ELSE round(heap_blks_hit::numeric / (heap_blks_hit + heap_blks_read), 4) END AS ratio
         FROM pg_statio_user_tables ORDER BY heap_blks_read DESC LIMIT 20`,
    );
    const hit = Number(db.blks_hit);
    const read = Number(db.blks_read);
    return {
      database: { blks_hit: hit, blks_read: read, ratio: hit + read === 0 ? null : hit / (hit + read) },
      tables,
    };
  });
};

export default database;

import { row } from './common';

/** OpenAPI tags and security of the management routes: `Authorization: Bearer <MANAGEMENT_TOKEN>`. */
export const MANAGEMENT = { tags: ['management'], security: [{ managementToken: [] }] };

export const clearTagsBody = {
  type: 'object',
  required: ['tags'],
  additionalProperties: false,
  properties: {
    tags: { type: 'array', minItems: 1, maxItems: 100, items: { type: 'string', minLength: 1, maxLength: 200 } },
  },
} as const;

export const keysQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    pattern: { type: 'string', minLength: 1, maxLength: 200, default: '*' },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  },
} as const;

export const warmBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { users: { type: 'integer', minimum: 1, maximum: 10000, default: 100 } },
} as const;

export const statsLimitQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 } },
} as const;

const str = { type: 'string' } as const;
const nullableNumber = { type: ['number', 'null'] } as const;
/** PostgreSQL bigint and numeric columns arrive as decimal strings (node-postgres keeps their precision). */
const pgDecimal = {
  type: ['string', 'null'],
  description: 'a PostgreSQL bigint or numeric, as a decimal string',
} as const;
const advice = { type: 'string', description: 'what to do about it' } as const;

export const clearTagsResponse = row({ tags: { type: 'array', items: str }, deleted_keys: { type: 'integer' } });

export const keysResponse = row({
  pattern: str,
  limit: { type: 'integer' },
  truncated: { type: 'boolean' },
  keys: { type: 'array', items: str },
});

export const warmResponse = row({ users: { type: 'integer' }, available: { type: 'boolean' } });

/** A master as this pod sees it: the counters when it answers `INFO`, else the error. */
const cacheNode = {
  type: 'object',
  required: ['node', 'status'],
  additionalProperties: false,
  properties: {
    node: { type: 'string', description: '`host:port`' },
    status: { type: 'string', enum: ['up', 'down'] },
    keys: { type: 'integer' },
    hits: { type: 'integer' },
    misses: { type: 'integer' },
    hit_ratio: nullableNumber,
    used_memory_bytes: { type: 'integer' },
    maxmemory_bytes: { type: 'integer' },
    evicted_keys: { type: 'integer' },
    error: str,
  },
} as const;

export const cacheStatsResponse = row({
  enabled: { type: 'boolean' },
  available: { type: 'boolean' },
  this_pod: row({
    hits: { type: 'integer' },
    misses: { type: 'integer' },
    errors: { type: 'integer' },
    hit_ratio: nullableNumber,
    local_tier: row({
      enabled: { type: 'boolean' },
      serving: { type: 'boolean' },
      entries: { type: 'integer' },
      hits: { type: 'integer' },
      subscribed_to: { type: ['string', 'null'], description: 'the node the invalidation subscription listens on' },
    }),
  }),
  nodes: { type: 'array', items: cacheNode },
});

export const slowQuery = row({
  queryid: pgDecimal,
  query: str,
  calls: pgDecimal,
  total_ms: pgDecimal,
  mean_ms: pgDecimal,
  max_ms: pgDecimal,
  rows: pgDecimal,
});

export const indexUsage = row({
  table: str,
  index: str,
  scans: pgDecimal,
  tuples_read: pgDecimal,
  size_bytes: pgDecimal,
});

export const seqScanHeavyTable = row({
  table: str,
  seq_scan: pgDecimal,
  seq_tup_read: pgDecimal,
  idx_scan: pgDecimal,
  rows: pgDecimal,
  advice,
});
export const unusedIndex = row({ table: str, index: str, size_bytes: pgDecimal, advice });
export const duplicateIndexes = row({ table: str, indexes: { type: 'array', items: str }, advice });

export const indexRecommendationsResponse = row({
  sequential_scan_heavy_tables: { type: 'array', items: seqScanHeavyTable },
  unused_indexes: { type: 'array', items: unusedIndex },
  duplicate_indexes: { type: 'array', items: duplicateIndexes },
});

export const tableHitRatio = row({ table: str, heap_blks_hit: pgDecimal, heap_blks_read: pgDecimal, ratio: pgDecimal });

export const cacheHitRatioResponse = row({
  database: row({ blks_hit: { type: 'number' }, blks_read: { type: 'number' }, ratio: nullableNumber }),
  tables: { type: 'array', items: tableHitRatio },
});

const nullableString = { type: ['string', 'null'] } as const;

export const replicationRow = row({
  application_name: str,
  client_addr: nullableString,
  state: nullableString,
  sync_state: nullableString,
  sent_lsn: nullableString,
  replay_lsn: nullableString,
  lag_bytes: pgDecimal,
  replay_lag_seconds: nullableNumber,
});

export const replicationStatusResponse = row({
  primary: row({
    replicas: { type: 'array', description: "the primary's pg_stat_replication", items: replicationRow },
  }),
  read_replicas: {
    type: 'array',
    description: 'what this pod observes from each replica it reads from',
    items: row({
      name: str,
      address: { type: 'string', description: '`host:port`' },
      healthy: { type: 'boolean' },
      lag_seconds: { type: 'number' },
      replay_lsn: nullableString,
    }),
  },
});

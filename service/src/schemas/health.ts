/** Bodies of the health endpoints (probes read the status code; humans and the local twin read these). */
import { row } from './common';

const status = { type: 'string' } as const;
const latency = { type: 'number', description: 'milliseconds' } as const;
const error = { type: 'string' } as const;

export const livenessResponse = row({ status: { type: 'string', enum: ['ok'] } });

/** What a pod can serve now, from its background probes (readiness and deep health carry it). */
export const servingState = row({
  reads: { type: 'boolean' },
  writes: {
    type: 'boolean',
    description:
      'false while the primary counts as down (a definitive probe failure, or a request that waited 1.2 s on it while the probe failed too): writes get 503 at once',
  },
  sources: row({
    primary: { type: 'boolean' },
    replicas: { type: 'integer', description: 'replicas used for reads now' },
    cache: { type: 'boolean' },
  }),
});

/** 200 `ready`; 503 `draining`, or `not ready` (no data source for reads) with the reason. */
export const readinessResponse = {
  type: 'object',
  required: ['status'],
  additionalProperties: false,
  properties: {
    status: { type: 'string', enum: ['ready', 'draining', 'not ready'] },
    reason: { type: 'string' },
    ...servingState.properties,
  },
} as const;

/** 202 of the fault-injection route. */
export const blockEventLoopResponse = row({ blocking_seconds: { type: 'number' } });

const component = {
  type: 'object',
  required: ['status', 'latency_ms'],
  additionalProperties: false,
  properties: { status, latency_ms: latency, error },
} as const;

/** Every component with status and latency; 503 when the primary is down or the pod drains. */
export const deepHealthResponse = row({
  status: { type: 'string', enum: ['up', 'degraded', 'down'] },
  draining: { type: 'boolean' },
  serving: servingState,
  components: row({
    primary: {
      type: 'object',
      required: ['status', 'latency_ms', 'checked_at'],
      additionalProperties: false,
      properties: {
        status,
        latency_ms: latency,
        error,
        checked_at: { type: 'string', description: "the primary probe's last run (every 0.5 s)" },
      },
    },
    replicas: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'status', 'latency_ms', 'lag_seconds', 'used_for_reads'],
        additionalProperties: false,
        properties: {
          name: { type: 'string' },
          status,
          latency_ms: latency,
          error,
          lag_seconds: { type: 'number' },
          used_for_reads: { type: 'boolean' },
        },
      },
    },
    redis: component,
  }),
});

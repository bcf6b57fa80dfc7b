/** Bodies of the health endpoints (probes read the status code; humans and the local twin read these). */
import { row } from './common';

const status = { type: 'string' } as const;
const latency = { type: 'number', description: 'milliseconds' } as const;
const error = { type: 'string' } as const;

export const livenessResponse = row({ status: { type: 'string', enum: ['ok'] } });

/** 200 `ready`; 503 `draining`, or `not ready` with the primary's error. */
export const readinessResponse = {
  type: 'object',
  required: ['status'],
  additionalProperties: false,
  properties: {
    status: { type: 'string', enum: ['ready', 'draining', 'not ready'] },
    primary: { type: 'string', enum: ['down'] },
    error,
  },
} as const;

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
  components: row({
    primary: component,
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

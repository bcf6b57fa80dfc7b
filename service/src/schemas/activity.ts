import { id, JSON_FIELD_BOUNDS, timestamp } from './common';

export const appendActivityBody = {
  type: 'object',
  required: ['user_id', 'action'],
  additionalProperties: false,
  properties: {
    user_id: id,
    action: {
      type: 'string',
      pattern: '^[a-z][a-z0-9_.:-]{0,63}$',
      description: 'the event; not create, update or delete, which the API records itself with each change',
    },
    details: {
      type: ['object', 'null'],
      maxProperties: 50,
      description: `free-form JSON object stored as JSONB: ${JSON_FIELD_BOUNDS}`,
    },
  },
} as const;

export const listActivityQuery = {
  type: 'object',
  required: ['user_id'],
  additionalProperties: false,
  properties: {
    user_id: id,
    from: { type: 'string', format: 'date-time' },
    to: { type: 'string', format: 'date-time' },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  },
} as const;

export const recentChangesQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    since: { type: 'string', format: 'date-time' },
    limit: { type: 'integer', minimum: 1, maximum: 500, default: 50 },
  },
} as const;

export const activityEntry = {
  type: 'object',
  required: ['id', 'user_id', 'action', 'details', 'created_at'],
  additionalProperties: false,
  properties: {
    id,
    user_id: id,
    action: { type: 'string' },
    details: { type: ['object', 'null'], additionalProperties: true },
    created_at: timestamp,
  },
} as const;

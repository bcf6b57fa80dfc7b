import { id, limit, settings, timestamp } from './common';

const name = { type: 'string', minLength: 1, maxLength: 200 } as const;

export const createProjectBody = {
  type: 'object',
  required: ['owner_id', 'name'],
  additionalProperties: false,
  properties: { owner_id: id, name, settings },
} as const;

export const updateProjectBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: { name, settings },
} as const;

export const listProjectsQuery = {
  type: 'object',
  required: ['owner_id'],
  additionalProperties: false,
  properties: { owner_id: id, limit },
} as const;

export const bySettingQuery = {
  type: 'object',
  required: ['key', 'value'],
  additionalProperties: false,
  properties: {
    key: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
    value: { type: 'string', maxLength: 200 },
    limit,
  },
} as const;

export const project = {
  type: 'object',
  required: ['id', 'owner_id', 'name', 'settings', 'created_at', 'updated_at'],
  additionalProperties: false,
  properties: {
    id,
    owner_id: id,
    name: { type: 'string' },
    settings: { type: 'object', additionalProperties: true },
    created_at: timestamp,
    updated_at: timestamp,
  },
} as const;

import { id, limit, timestamp } from './common';

const email = { type: 'string', format: 'email', maxLength: 254 } as const;
const username = { type: 'string', pattern: '^[A-Za-z0-9_.-]{3,40}$' } as const;
const fullName = { type: ['string', 'null'], maxLength: 200 } as const;

export const createUserBody = {
  type: 'object',
  required: ['email', 'username'],
  additionalProperties: false,
  properties: { email, username, full_name: fullName },
} as const;

export const updateUserBody = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: { email, username, full_name: fullName, is_active: { type: 'boolean' } },
} as const;

export const searchUsersQuery = {
  type: 'object',
  required: ['q'],
  additionalProperties: false,
  properties: {
    q: { type: 'string', minLength: 1, maxLength: 200 },
    limit,
    active: { type: 'boolean', default: true },
  },
} as const;

export const user = {
  type: 'object',
  required: ['id', 'email', 'username', 'full_name', 'is_active', 'created_at', 'updated_at'],
  additionalProperties: false,
  properties: {
    id,
    email: { type: 'string' },
    username: { type: 'string' },
    full_name: { type: ['string', 'null'] },
    is_active: { type: 'boolean' },
    created_at: timestamp,
    updated_at: timestamp,
  },
} as const;

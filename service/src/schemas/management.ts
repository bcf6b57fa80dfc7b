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

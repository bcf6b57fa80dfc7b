/** JSON Schemas shared by the routes (Fastify validates every input with them). */

export const idParam = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', pattern: '^[1-9][0-9]{0,17}$', description: 'a positive integer id' } },
} as const;

export const id = { type: 'string', pattern: '^[1-9][0-9]{0,17}$' } as const;

export const limit = { type: 'integer', minimum: 1, maximum: 100, default: 20 } as const;

export const settings = {
  type: 'object',
  maxProperties: 100,
  description: 'free-form JSON object stored as JSONB',
} as const;

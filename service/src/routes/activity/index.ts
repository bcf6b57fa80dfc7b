import type { FastifyPluginAsyncJsonSchemaToTs } from '@fastify/type-provider-json-schema-to-ts';
import { appendActivity, listActivity, RECORDED_CHANGES, recentChanges } from '../../domain/activity';
import { HttpError } from '../../http/errors';
import { rememberWrite } from '../../http/consistency';
import { activityEntry, appendActivityBody, listActivityQuery, recentChangesQuery } from '../../schemas/activity';
import { listOf, withErrors } from '../../schemas/common';
import { ctxOf, REVALIDATE } from '../context';

const DAY_MS = 86_400_000;
const tags = ['activity'];

const activity: FastifyPluginAsyncJsonSchemaToTs = async (app) => {
  app.post(
    '/activity',
    { schema: { tags, body: appendActivityBody, response: withErrors({ 201: activityEntry }) } },
    async (request, reply) => {
      // The feed of changes is recorded by the API itself; a client cannot add to it (or forge it).
      if ((RECORDED_CHANGES as readonly string[]).includes(request.body.action)) {
        throw new HttpError(
          400,
          'body.action must not be create, update or delete: the API records those changes itself',
          'body.action',
        );
      }
      const { activity: row, lsn } = await appendActivity(ctxOf(app, request), request.body);
      if (!row) throw new HttpError(409, 'user_id refers to a row that does not exist', 'body.user_id');
      rememberWrite(reply, lsn, app.config.managementToken);
      return reply.code(201).send(row);
    },
  );

  /** A user's activity in [from, to); defaults to the last 30 days. */
  app.get(
    '/activity',
    {
      schema: { tags, querystring: listActivityQuery, response: withErrors({ 200: listOf(activityEntry) }) },
      config: { cacheControl: REVALIDATE },
    },
    async (request) => {
      const to = request.query.to ? new Date(request.query.to) : new Date();
      const from = request.query.from ? new Date(request.query.from) : new Date(to.getTime() - 30 * DAY_MS);
      if (from >= to) {
        throw new HttpError(
          400,
          `querystring.from (${from.toISOString()}) must be before to (${to.toISOString()})`,
          'querystring.from',
        );
      }
      return { items: await listActivity(ctxOf(app, request), request.query.user_id, from, to, request.query.limit) };
    },
  );

  /** Creates, updates and deletes of all users (recorded by the API with each change) since `since` (default: the last 7 days), newest first. */
  app.get(
    '/activity/recent-changes',
    {
      schema: { tags, querystring: recentChangesQuery, response: withErrors({ 200: listOf(activityEntry) }) },
      config: { cacheControl: REVALIDATE },
    },
    async (request) => {
      const since = request.query.since ? new Date(request.query.since) : new Date(Date.now() - 7 * DAY_MS);
      return { items: await recentChanges(ctxOf(app, request), since, request.query.limit) };
    },
  );
};

export default activity;

import type { FastifyPluginAsyncJsonSchemaToTs } from '@fastify/type-provider-json-schema-to-ts';
import { createUser, deleteUser, getUser, searchUsers, updateUser } from '../../domain/users';
import { HttpError, locationOf } from '../../http/errors';
import { rememberWrite } from '../../http/consistency';
import { idParam, listOf, withErrors } from '../../schemas/common';
import { createUserBody, searchUsersQuery, updateUserBody, user } from '../../schemas/users';
import { ctxOf, REVALIDATE } from '../context';

const tags = ['users'];

const users: FastifyPluginAsyncJsonSchemaToTs = async (app) => {
  app.post(
    '/users',
    { schema: { tags, body: createUserBody, response: withErrors({ 201: user }) } },
    async (request, reply) => {
      const { user, lsn } = await createUser(ctxOf(app, request), request.body);
      rememberWrite(reply, lsn, app.config.managementToken);
      return reply.code(201).header('location', locationOf(request.url, user.id)).send(user);
    },
  );

  app.get(
    '/users/search',
    {
      schema: { tags, querystring: searchUsersQuery, response: withErrors({ 200: listOf(user) }) },
      config: { cacheControl: REVALIDATE },
    },
    async (request) => {
      const { q, limit, active } = request.query;
      return { items: await searchUsers(ctxOf(app, request), q, limit, active) };
    },
  );

  app.get(
    '/users/:id',
    { schema: { tags, params: idParam, response: withErrors({ 200: user }) }, config: { cacheControl: REVALIDATE } },
    async (request) => {
      const user = await getUser(ctxOf(app, request), request.params.id);
      if (!user) throw new HttpError(404, `user ${request.params.id} not found`, 'params.id');
      return user;
    },
  );

  app.patch(
    '/users/:id',
    { schema: { tags, params: idParam, body: updateUserBody, response: withErrors({ 200: user }) } },
    async (request, reply) => {
      const { user, lsn } = await updateUser(ctxOf(app, request), request.params.id, request.body);
      if (!user) throw new HttpError(404, `user ${request.params.id} not found`, 'params.id');
      rememberWrite(reply, lsn, app.config.managementToken);
      return user;
    },
  );

  app.delete(
    '/users/:id',
    { schema: { tags, params: idParam, response: withErrors({ 204: { type: 'null', description: 'deleted' } }) } },
    async (request, reply) => {
      const { deleted, lsn } = await deleteUser(ctxOf(app, request), request.params.id);
      if (!deleted) throw new HttpError(404, `user ${request.params.id} not found`, 'params.id');
      rememberWrite(reply, lsn, app.config.managementToken);
      return reply.code(204).send(null);
    },
  );
};

export default users;

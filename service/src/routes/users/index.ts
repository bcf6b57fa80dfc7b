import type { FastifyPluginAsync } from 'fastify';
import { createUser, deleteUser, getUser, searchUsers, updateUser } from '../../domain/users';
import { HttpError } from '../../http/errors';
import { rememberWrite } from '../../http/consistency';
import { idParam } from '../../schemas/common';
import { createUserBody, searchUsersQuery, updateUserBody } from '../../schemas/users';
import { ctxOf, REVALIDATE } from '../context';

type Id = { id: string };

const users: FastifyPluginAsync = async (app) => {
  app.post<{ Body: { email: string; username: string; full_name?: string | null } }>(
    '/users',
    { schema: { body: createUserBody } },
    async (request, reply) => {
      const { user, lsn } = await createUser(ctxOf(app, request), request.body);
      rememberWrite(reply, lsn);
      return reply.code(201).header('location', `${request.url}/${user.id}`).send(user);
    },
  );

  app.get<{ Querystring: { q: string; limit: number; active: boolean } }>(
    '/users/search',
    { schema: { querystring: searchUsersQuery }, config: { cacheControl: REVALIDATE } },
    async (request) => {
      const { q, limit, active } = request.query;
      return { items: await searchUsers(ctxOf(app, request), q, limit, active) };
    },
  );

  app.get<{ Params: Id }>(
    '/users/:id',
    { schema: { params: idParam }, config: { cacheControl: REVALIDATE } },
    async (request) => {
      const user = await getUser(ctxOf(app, request), request.params.id);
      if (!user) throw new HttpError(404, `user ${request.params.id} not found`, 'params.id');
      return user;
    },
  );

  app.patch<{ Params: Id; Body: Record<string, never> }>(
    '/users/:id',
    { schema: { params: idParam, body: updateUserBody } },
    async (request, reply) => {
      const { user, lsn } = await updateUser(ctxOf(app, request), request.params.id, request.body);
      if (!user) throw new HttpError(404, `user ${request.params.id} not found`, 'params.id');
      rememberWrite(reply, lsn);
      return user;
    },
  );

  app.delete<{ Params: Id }>('/users/:id', { schema: { params: idParam } }, async (request, reply) => {
    const { deleted, lsn } = await deleteUser(ctxOf(app, request), request.params.id);
    if (!deleted) throw new HttpError(404, `user ${request.params.id} not found`, 'params.id');
    rememberWrite(reply, lsn);
    return reply.code(204).send();
  });
};

export default users;

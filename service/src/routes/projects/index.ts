import type { FastifyPluginAsync } from 'fastify';
import { createProject, getProject, listByOwner, listBySetting, updateProject } from '../../domain/projects';
import { HttpError } from '../../http/errors';
import { rememberWrite } from '../../http/consistency';
import { idParam } from '../../schemas/common';
import { bySettingQuery, createProjectBody, listProjectsQuery, updateProjectBody } from '../../schemas/projects';
import { ctxOf, REVALIDATE } from '../context';

type Id = { id: string };

const projects: FastifyPluginAsync = async (app) => {
  app.post<{ Body: { owner_id: string; name: string; settings?: Record<string, unknown> } }>(
    '/projects',
    { schema: { body: createProjectBody } },
    async (request, reply) => {
      const { project, lsn } = await createProject(ctxOf(app, request), request.body);
      rememberWrite(reply, lsn);
      return reply.code(201).header('location', `${request.url}/${project.id}`).send(project);
    },
  );

  app.get<{ Querystring: { owner_id: string; limit: number } }>(
    '/projects',
    { schema: { querystring: listProjectsQuery }, config: { cacheControl: REVALIDATE } },
    async (request) => ({
      items: await listByOwner(ctxOf(app, request), request.query.owner_id, request.query.limit),
    }),
  );

  app.get<{ Querystring: { key: string; value: string; limit: number } }>(
    '/projects/by-setting',
    { schema: { querystring: bySettingQuery }, config: { cacheControl: REVALIDATE } },
    async (request) => {
      const { key, value, limit } = request.query;
      return { items: await listBySetting(ctxOf(app, request), key, value, limit) };
    },
  );

  app.get<{ Params: Id }>(
    '/projects/:id',
    { schema: { params: idParam }, config: { cacheControl: REVALIDATE } },
    async (request) => {
      const project = await getProject(ctxOf(app, request), request.params.id);
      if (!project) throw new HttpError(404, `project ${request.params.id} not found`, 'params.id');
      return project;
    },
  );

  app.patch<{ Params: Id; Body: { name?: string; settings?: Record<string, unknown> } }>(
    '/projects/:id',
    { schema: { params: idParam, body: updateProjectBody } },
    async (request, reply) => {
      const { project, lsn } = await updateProject(ctxOf(app, request), request.params.id, request.body);
      if (!project) throw new HttpError(404, `project ${request.params.id} not found`, 'params.id');
      rememberWrite(reply, lsn);
      return project;
    },
  );
};

export default projects;

import type { FastifyPluginAsyncJsonSchemaToTs } from '@fastify/type-provider-json-schema-to-ts';
import { createProject, getProject, listByOwner, listBySetting, updateProject } from '../../domain/projects';
import { HttpError, locationOf } from '../../http/errors';
import { rememberWrite } from '../../http/consistency';
import { idParam, listOf, withErrors } from '../../schemas/common';
import {
  bySettingQuery,
  createProjectBody,
  listProjectsQuery,
  project as projectBody,
  updateProjectBody,
} from '../../schemas/projects';
import { ctxOf, REVALIDATE } from '../context';

const tags = ['projects'];

const projects: FastifyPluginAsyncJsonSchemaToTs = async (app) => {
  app.post(
    '/projects',
    { schema: { tags, body: createProjectBody, response: withErrors({ 201: projectBody }) } },
    async (request, reply) => {
      const { project, lsn } = await createProject(ctxOf(app, request), request.body);
      rememberWrite(reply, lsn, app.config.managementToken);
      return reply.code(201).header('location', locationOf(request.url, project.id)).send(project);
    },
  );

  app.get(
    '/projects',
    {
      schema: { tags, querystring: listProjectsQuery, response: withErrors({ 200: listOf(projectBody) }) },
      config: { cacheControl: REVALIDATE },
    },
    async (request) => ({
      items: await listByOwner(ctxOf(app, request), request.query.owner_id, request.query.limit),
    }),
  );

  app.get(
    '/projects/by-setting',
    {
      schema: { tags, querystring: bySettingQuery, response: withErrors({ 200: listOf(projectBody) }) },
      config: { cacheControl: REVALIDATE },
    },
    async (request) => {
      const { key, value, limit } = request.query;
      return { items: await listBySetting(ctxOf(app, request), key, value, limit) };
    },
  );

  app.get(
    '/projects/:id',
    {
      schema: { tags, params: idParam, response: withErrors({ 200: projectBody }) },
      config: { cacheControl: REVALIDATE },
    },
    async (request) => {
      const project = await getProject(ctxOf(app, request), request.params.id);
      if (!project) throw new HttpError(404, `project ${request.params.id} not found`, 'params.id');
      return project;
    },
  );

  app.patch(
    '/projects/:id',
    { schema: { tags, params: idParam, body: updateProjectBody, response: withErrors({ 200: projectBody }) } },
    async (request, reply) => {
      const { project, lsn } = await updateProject(ctxOf(app, request), request.params.id, request.body);
      if (!project) throw new HttpError(404, `project ${request.params.id} not found`, 'params.id');
      rememberWrite(reply, lsn, app.config.managementToken);
      return project;
    },
  );
};

export default projects;

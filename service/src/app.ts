/**
 * The application as a Fastify plugin (fastify/demo style): clients as
 * plugins, routes under /api/v1, one error format, HTTP caching. server.ts
 * listens; tests use `buildApp(...).inject()`.
 */
import { randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyServerOptions, LogController } from 'fastify';
import fp from 'fastify-plugin';
import type { DestinationStream } from 'pino';
import type { ServiceConfig } from './config';
import { API_PREFIX, REQUEST_ID_HEADER } from './contract';
import { BODY_LIMIT_BYTES, clientErrorHandler, installErrorHandlers } from './http/errors';
import { installHttpCaching } from './http/http-cache';
import { checkStorable, checkTextScalars, validatorCompiler } from './http/input';
import { cachePlugin } from './plugins/cache';
import { envPlugin } from './plugins/env';
import { metricsPlugin } from './plugins/metrics';
import { pgPlugin } from './plugins/pg';
import { type NatMap, redisPlugin } from './plugins/redis';
import activity from './routes/activity';
import cacheRoutes, { warmCache } from './routes/cache';
import database from './routes/database';
import openapi, { OPENAPI_DOCUMENT } from './routes/openapi';
import projects from './routes/projects';
import scaling from './routes/scaling';
import users from './routes/users';

export type AppOptions = {
  readonly config: ServiceConfig;
  /** Seconds between replica health probes. @default 1 */
  readonly probeIntervalSeconds?: number;
  /** Redis announced-address map for running outside the cluster network (tests). @default - DNS */
  readonly redisNatMap?: NatMap;
};

// Not encapsulated, so server.ts sees app.metrics, app.draining and the pools on the root instance.
// Each client plugin names what it needs (fastify-plugin `dependencies`): registered out of
// order, the app fails at boot with Fastify's message instead of meeting `undefined` at run time.
export const app = fp<AppOptions>(
  async (instance, opts) => {
    await instance.register(envPlugin, { config: opts.config });
    await instance.register(metricsPlugin);
    await instance.register(pgPlugin, { probeIntervalSeconds: opts.probeIntervalSeconds });
    await instance.register(redisPlugin, { natMap: opts.redisNatMap });
    await instance.register(cachePlugin);
    installRequestChecks(instance);
    installAccessLog(instance);
    installHttpCaching(instance);
    instance.setValidatorCompiler(validatorCompiler());
    // Before the routes: it collects their schemas as they are added.
    await instance.register(swagger, OPENAPI_DOCUMENT);
    await instance.register(
      async (api) => {
        for (const routes of [users, projects, activity, cacheRoutes, database, scaling, openapi]) {
          await api.register(routes);
        }
      },
      { prefix: API_PREFIX },
    );
    if (opts.config.cache.enabled && opts.config.cache.warmOnStart) {
      // Warm in the background once Redis is ready: never delays start, never fails it.
      instance.redis?.once('ready', () => {
        warmCache(instance).then(
          (r) => instance.log.info(r, 'cache warmed'),
          (err: Error) => instance.log.warn({ err: err.message }, 'cache warm-up skipped'),
        );
      });
    }
  },
  { name: 'fastnext-api', fastify: '5.x' },
);

/** What a request id may look like (nginx's `$request_id` is 32 hex digits). */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * What the service does on every request besides its schemas and its access line: the draining hook,
 * the one error shape (installErrorHandlers), JSON-only bodies, and the text-scalar and storable checks.
 * Needs `instance.draining` (the env plugin decorates it). Exported for the bench's floor server
 * (tools/bench/floor-server.ts), which runs the same.
 */
export function installRequestChecks(instance: FastifyInstance): void {
  // While draining, ask clients to reconnect elsewhere instead of reusing this connection.
  instance.addHook('onSend', async (_request, reply, payload) => {
    if (instance.draining) reply.header('connection', 'close');
    return payload;
  });
  installErrorHandlers(instance);
  // JSON only: without this, a text/plain body is parsed as a string and refused as "must be object".
  instance.removeContentTypeParser(['text/plain']);
  instance.addHook('preValidation', checkTextScalars);
  // After validation (names are the schema's), before any handler sends input to PostgreSQL.
  instance.addHook('preHandler', checkStorable);
}

/**
 * One access-log line per request, when it is answered (Fastify's default logs two). `req` and
 * `res` go through Fastify's serializers, as in its own lines: method, url, host, remoteAddress
 * and remotePort; statusCode.
 */
export function installAccessLog(instance: FastifyInstance): void {
  instance.addHook('onResponse', (request, reply, done) => {
    request.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed');
    done();
  });
}

export interface ServerLogOptions {
  logger?: boolean;
  /** Where log lines go. @default stdout */
  logStream?: DestinationStream;
}

/**
 * The service's Fastify server options (logger, request ids, body limit, framework errors).
 * Exported for the bench's floor server (tools/bench/floor-server.ts), which runs the same.
 */
export function serverOptions(logLevel: string, options: ServerLogOptions = {}): FastifyServerOptions {
  return {
    logger:
      options.logger === false
        ? false
        : { level: logLevel, ...(options.logStream ? { stream: options.logStream } : {}) },
    // Fastify's own two lines per request are off: the app's onResponse hook writes one (the top-level
    // option is deprecated, FSTDEP023).
    logController: new LogController({ disableRequestLogging: true }),
    // The edge's request id when it is well-formed; a new one otherwise (it is logged and put in 5xx messages).
    requestIdHeader: false,
    genReqId: (req) => {
      const sent = req.headers[REQUEST_ID_HEADER.toLowerCase()];
      return typeof sent === 'string' && REQUEST_ID.test(sent) ? sent : randomUUID();
    },
    bodyLimit: BODY_LIMIT_BYTES,
    // New requests while closing get a 503 from installErrorHandlers (the one error shape); in-flight ones finish.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    clientErrorHandler,
    // Requests Fastify's router refuses before any handler: a path that is not valid
    // percent-encoding (`/users/%0`), or a path parameter longer than find-my-way's 100 characters.
    frameworkErrors: (error, _request, reply: FastifyReply) => {
      const tooLong = error.code === 'FST_ERR_MAX_PARAM_LENGTH';
      void reply.code(tooLong ? 414 : 400).send({
        error: tooLong ? 'URI Too Long' : 'Bad Request',
        message: tooLong
          ? 'a path parameter is longer than 100 characters'
          : 'the URL path is not valid percent-encoding',
        field: 'url',
      });
    },
  };
}

/** A Fastify instance with the server options the app needs (body limit, strict validation, logger). */
export async function buildApp(
  config: ServiceConfig,
  options: ServerLogOptions & { probeIntervalSeconds?: number; redisNatMap?: NatMap } = {},
): Promise<FastifyInstance> {
  const instance = Fastify(serverOptions(config.logLevel, options));
  await instance.register(app, {
    config,
    probeIntervalSeconds: options.probeIntervalSeconds,
    redisNatMap: options.redisNatMap,
  });
  return instance;
}

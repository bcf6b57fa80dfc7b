/** Makes the validated configuration available as `app.config`. */
import fp from 'fastify-plugin';
import type { ServiceConfig } from '../config';

declare module 'fastify' {
  interface FastifyInstance {
    config: ServiceConfig;
    /** True from SIGTERM on: readiness fails so the endpoints drop the pod before it stops. */
    draining: boolean;
  }
}

export const envPlugin = fp<{ config: ServiceConfig }>(
  async (app, opts) => {
    app.decorate('config', opts.config);
    app.decorate('draining', false);
  },
  { name: 'env', fastify: '5.x' },
);

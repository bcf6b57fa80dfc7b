/** Makes the validated configuration available as `app.config`. */
import type { ServiceConfig } from '../config';
import { shared } from './plugin';

declare module 'fastify' {
  interface FastifyInstance {
    config: ServiceConfig;
    /** True from SIGTERM on: readiness fails so the endpoints drop the pod before it stops. */
    draining: boolean;
  }
}

export const envPlugin = shared<{ config: ServiceConfig }>(async (app, opts) => {
  app.decorate('config', opts.config);
  app.decorate('draining', false);
});

/**
 * The bench baseline: a minimal Fastify route returning a constant, one process,
 * no logger. Prints `listening <port>` once it accepts connections.
 */
import Fastify, { type FastifyInstance } from 'fastify';

/**
 * Serves `app` on a free loopback port until SIGTERM, after printing `listening <port>` (what
 * startBenchServer in http.ts waits for).
 */
export async function serveForBench(app: FastifyInstance): Promise<never> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  process.stdout.write(`listening ${typeof address === 'object' && address ? address.port : 0}\n`);
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
  return new Promise<never>(() => undefined);
}

export async function main(): Promise<number> {
  const app = Fastify({ logger: false });
  app.get('/', async () => ({ hello: 'world' }));
  return serveForBench(app);
}

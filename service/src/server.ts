/**
 * Entry point of the image (SERVICE_COMMANDS): `node dist/server.js [migrate | maintain-partitions]`.
 *
 * Serving: listens on 0.0.0.0 (API on PORT, metrics on METRICS_PORT). On
 * SIGTERM, readiness fails at once so the endpoints drop the pod, the server
 * keeps answering for SHUTDOWN_DRAIN_SECONDS (the preStop window), then stops
 * accepting, lets in-flight requests finish and closes the pools.
 */
import { writeSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import pino from 'pino';
import { buildApp } from './app';
import { EnvError, loadConfig, type ServiceConfig } from './config';
import { SERVICE_PATHS, SERVICE_SUBCOMMANDS, type ServiceSubcommand } from './contract';
import { connectPrimary, maintainPartitions, migrate } from './migrations/migrate';
import type { Metrics } from './plugins/metrics';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function metricsServer(metrics: Metrics): Server {
  return createServer((req, res) => {
    if (req.method === 'GET' && req.url?.split('?')[0] === SERVICE_PATHS.metrics) {
      metrics.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"Not Found"}');
  });
}

/** Logged bytes past which the turn's lines are written at once rather than at its end. */
const LOG_TURN_MAX_BYTES = 65536;

/** Writes all of `data`; a full non-blocking pipe (EAGAIN) is waited out 1 ms at a time. */
function writeAllSync(fd: number, data: Buffer): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let off = 0; off < data.length;) {
    try {
      off += writeSync(fd, data, off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
}

/**
 * Where the serving process logs: stdout, one write per turn of the event loop. The lines logged
 * in a turn (every request answered in it) are kept and written together, synchronously, when the
 * turn ends (setImmediate), or at once past LOG_TURN_MAX_BYTES. So a quiet pod's lines are not held
 * back, and a busy one makes one write per turn: not one per line (pino's default), and without the
 * thread-pool handoff of pino's asynchronous destination (a futex wake-up per write). What is left
 * is written when the process exits, process.exit() included. As with pino's default, a stdout that
 * stops draining (the container runtime reads it) holds the process at its next write.
 */
export function serviceLogStream(fd = 1): pino.DestinationStream & { flushSync(): void } {
  let lines: string[] = [];
  let bytes = 0;
  let scheduled = false;
  const flushSync = () => {
    if (lines.length === 0) return;
    const data = Buffer.from(lines.length === 1 ? lines[0] : lines.join(''));
    lines = [];
    bytes = 0;
    writeAllSync(fd, data);
  };
  const endOfTurn = () => {
    scheduled = false;
    flushSync();
  };
  process.on('exit', flushSync);
  return {
    write(line: string) {
      lines.push(line);
      bytes += line.length;
      if (bytes >= LOG_TURN_MAX_BYTES) flushSync();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(endOfTurn);
      }
    },
    flushSync,
  };
}

async function serve(config: ServiceConfig): Promise<void> {
  const logStream = serviceLogStream();
  const app = await buildApp(config, { logStream });
  const metrics = metricsServer(app.metrics);
  try {
    await app.listen({ host: '0.0.0.0', port: config.port });
    await new Promise<void>((resolve, reject) =>
      metrics.once('error', reject).listen(config.metricsPort, '0.0.0.0', resolve),
    );
  } catch (err) {
    // Port taken and the like: release the pools so the process can exit with the error.
    await app.close();
    metrics.close();
    throw err;
  }
  app.log.info({ metricsPort: config.metricsPort }, 'metrics listening');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.draining = true;
    app.log.info({ signal, drainSeconds: config.shutdownDrainSeconds }, 'draining: readiness now fails');
    await sleep(config.shutdownDrainSeconds * 1000);
    // close() stops accepting, waits for in-flight requests, then runs onClose (pools, Redis).
    // Keep-alive sockets that go idle after close() began would otherwise hold it for the
    // keep-alive timeout (72 s), past the pod's grace period: close them as they go idle.
    const reaper = setInterval(() => app.server.closeIdleConnections(), 250);
    await app.close();
    clearInterval(reaper);
    await new Promise((r) => metrics.close(r));
    app.log.info('stopped');
    logStream.flushSync();
    process.exit(0);
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      shutdown(signal).catch((err: Error) => {
        app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
    });
  }
}

async function oneShot(config: ServiceConfig, command: Exclude<ServiceSubcommand, 'serve'>): Promise<void> {
  const log = pino({ level: config.logLevel });
  const client = await connectPrimary(config.postgres);
  try {
    if (command === SERVICE_SUBCOMMANDS.migrate) {
      const r = await migrate(client);
      log.info(r, r.applied.length ? 'migrations applied' : 'schema up to date');
    } else {
      const created = await maintainPartitions(client);
      log.info({ created }, created.length ? 'partitions created' : 'partitions up to date');
    }
  } finally {
    await client.end();
  }
}

/**
 * Runs a command; resolves to the process exit code (tools/run.js calls this too).
 * Configuration errors are the operator's to fix: one clear line, no stack.
 */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  try {
    const command = (argv[0] ?? SERVICE_SUBCOMMANDS.serve) as ServiceSubcommand;
    const known: readonly string[] = Object.values(SERVICE_SUBCOMMANDS);
    if (!known.includes(command)) {
      throw new EnvError(`unknown command ${JSON.stringify(command)}: use serve, migrate or maintain-partitions`);
    }
    const config = loadConfig(env);
    if (command === SERVICE_SUBCOMMANDS.serve) await serve(config);
    else await oneShot(config, command);
    return 0;
  } catch (err) {
    const e = err as Error;
    process.stderr.write(
      e instanceof EnvError ? `configuration error: ${e.message}\n` : `fatal: ${e.stack ?? e.message}\n`,
    );
    return 1;
  }
}

if (require.main === module) {
  void main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}

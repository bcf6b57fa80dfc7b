/**
 * `npm run local:up -- --env dev`: starts the twin, prints what runs where, and
 * stays up until Ctrl-C / SIGTERM. It writes .local/twin.json so that
 * `npm run local:down` (another shell) can stop it. Any failure tears down
 * everything already started.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { environmentNames } from '../../../stacks/environments';
import { SERVICE_PATHS } from '../../../service/src/contract';
import type { PodMode } from './pod-runner';
import { startTwin } from './twin';

const ROOT = join(__dirname, '..', '..', '..');
/** Where local:up records the running twin; FASTNEXT_TWIN_STATE moves it (tests). */
export const STATE_FILE = process.env.FASTNEXT_TWIN_STATE ?? join(ROOT, '.local', 'twin.json');

export interface TwinState {
  readonly pid: number;
  readonly env: string;
  readonly url: string;
  readonly startedAt: string;
}

function usage(): string {
  return `usage: local:up -- --env <${environmentNames().join('|')}> [--monitoring] [--containers] | local:down`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function readState(): TwinState | undefined {
  if (!existsSync(STATE_FILE)) return undefined;
  return JSON.parse(readFileSync(STATE_FILE, 'utf8')) as TwinState;
}

async function up(env: string, monitoring: boolean, pods: PodMode): Promise<number> {
  const previous = readState();
  if (previous && alive(previous.pid)) {
    console.error(
      `a twin is already running (pid ${previous.pid}, env ${previous.env}, ${previous.url}): run npm run local:down first`,
    );
    return 1;
  }
  const log = (line: string) => console.log(line);
  // The twin's servers are unreferenced children: this keeps local:up alive until a signal ends it.
  const keepAlive = setInterval(() => undefined, 60_000);
  try {
    return await serve(env, monitoring, pods, log);
  } finally {
    clearInterval(keepAlive);
  }
}

async function serve(env: string, monitoring: boolean, pods: PodMode, log: (line: string) => void): Promise<number> {
  let stopping: Promise<void> | undefined;
  // Set once the twin is up; the signal handlers read it.
  const started: { stop?: () => Promise<void> } = {};
  const abort = new AbortController();
  const shutdown = (signal: string) => {
    const stop = started.stop;
    if (!stop) {
      // Still starting: the start aborts after its current step and stops what is up.
      // A second signal exits at once; the launcher's exit hook kills its servers and removes their dirs.
      if (abort.signal.aborted) process.exit(130);
      log(`\n${signal}: stopping after the current start-up step (again to stop now)`);
      abort.abort();
      return;
    }
    log(`\n${signal}: stopping the twin`);
    stopping ??= stop().finally(() => {
      rmSync(STATE_FILE, { force: true });
      process.exit(0);
    });
  };
  // Installed before starting, so Ctrl-C during start-up also tears down what is already up.
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  let twin;
  try {
    twin = await startTwin({ env, log, monitoring, pods, signal: abort.signal });
  } catch (e) {
    if (abort.signal.aborted) return 130;
    throw e;
  }
  started.stop = twin.stop;
  mkdirSync(dirname(STATE_FILE), { recursive: true });
  const state: TwinState = { pid: process.pid, env: twin.env, url: twin.url, startedAt: new Date().toISOString() };
  writeFileSync(STATE_FILE, JSON.stringify(state, null, 2) + '\n');
  console.log(`\n${await twin.table()}\n`);
  console.log(`Try:  curl ${twin.url}${SERVICE_PATHS.deep}`);
  console.log(
    `      curl -X POST ${twin.url}/api/v1/users -H 'content-type: application/json' -d '{"email":"ada@example.com","username":"ada"}'`,
  );
  console.log(`Management token (cache and replication endpoints): ${twin.managementToken}`);
  console.log('Stop with Ctrl-C or `npm run local:down`.');
  // Stay up: the signal handlers end the process.
  await new Promise<never>(() => undefined);
  return 0;
}

async function down(): Promise<number> {
  const state = readState();
  if (!state) {
    console.log('no twin is running (no .local/twin.json)');
    return 0;
  }
  if (!alive(state.pid)) {
    rmSync(STATE_FILE, { force: true });
    console.log(`the twin (pid ${state.pid}) is not running any more; removed the stale state file`);
    return 0;
  }
  process.kill(state.pid, 'SIGTERM');
  const deadline = Date.now() + 60000;
  while (alive(state.pid)) {
    if (Date.now() > deadline) {
      console.error(`the twin (pid ${state.pid}) did not stop within 60 s`);
      return 1;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  rmSync(STATE_FILE, { force: true });
  console.log(`stopped the ${state.env} twin (pid ${state.pid})`);
  return 0;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'down') return down();
  if (command !== 'up') {
    console.error(usage());
    return 2;
  }
  const i = rest.indexOf('--env');
  const env = i >= 0 ? rest[i + 1] : 'dev';
  if (!env || !environmentNames().includes(env)) {
    console.error(`--env (${JSON.stringify(env)}) must be one of ${environmentNames().join(', ')}\n${usage()}`);
    return 2;
  }
  try {
    return await up(env, rest.includes('--monitoring'), rest.includes('--containers') ? 'container' : 'process');
  } catch (e) {
    console.error(`local:up failed (everything it started has been stopped):\n${(e as Error).message}`);
    return 1;
  }
}

/**
 * Password rotation of every Redis ACL user (docs/redis-acl.md#rotation) on a real six-node
 * Redis 7 Cluster started from the shipped files (ConfigMap `redis-config` of the dev
 * environment), the users' Secret updated the way the kubelet updates a mounted Secret, under
 * a traffic loop of application clients:
 *   1. add the new password as `<user>-password-next`: every node accepts both;
 *   2. make it the user's password (`<user>-password`, the old one kept as
 *      `<user>-password-previous`) and roll the clients: they log in with the new one;
 *   3. remove the old key: every node refuses the old password.
 */
import { randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import { REDIS_USER_ROLES, type RedisUserRole, redisPasswordKey } from '../constructs/redis/acl';
import { loadEnvironment } from '../stacks/environments';
import { synthObjects } from '../stacks/synth';
import { startRedisCluster, type RedisClusterLaunch } from '../tools/runtime/launcher';
import { runToEnd, sleep, waitFor } from '../tools/runtime/launcher/processes';
import { localExecCommand } from '../tools/runtime/twin/data-probes';
import { find, type Obj } from './helpers/objects';

jest.setTimeout(300000);

/** REDIS_USERS_SYNC_SECONDS of the nodes here (shipped default: 10). */
const SYNC_SECONDS = 1;
const objects = synthObjects(loadEnvironment('dev'));
let redis: RedisClusterLaunch;
/** The users' Secret as it is now (key -> password). */
let secret: Record<string, string>;

beforeAll(async () => {
  redis = await startRedisCluster(objects, { usersSyncSeconds: SYNC_SECONDS });
  secret = Object.fromEntries(REDIS_USER_ROLES.map((role) => [redisPasswordKey(role), redis.passwords[role]]));
});
afterAll(async () => {
  await traffic?.stop();
  await redis?.stop();
});

const nodeIndexes = () => redis.nodes.map((_, i) => i);

/** Whether node i lets `role` log in with `password`. */
async function accepts(role: RedisUserRole, i: number, password: string): Promise<boolean> {
  const out = await redis.cliAs(role, i, '--pass', password, 'ping');
  return out.trim() === 'PONG';
}

/** Waits until every node accepts exactly `accepted` (and refuses `refused`) for `role`; resolves the ms it took. */
async function applied(role: RedisUserRole, accepted: string[], refused: string[]): Promise<number> {
  const t0 = Date.now();
  await waitFor(
    `every node: ${role} accepts ${accepted.length} password(s), refuses ${refused.length}`,
    async () => {
      for (const i of nodeIndexes()) {
        for (const p of accepted) if (!(await accepts(role, i, p))) return false;
        for (const p of refused) if (await accepts(role, i, p)) return false;
      }
      return true;
    },
    60000,
    () => redis.log(0).slice(-2000),
  );
  return Date.now() - t0;
}

/** Writes the Secret as the kubelet would, after `change` edits it. */
function update(change: (s: Record<string, string>) => void): void {
  change(secret);
  redis.writeUsers({ ...secret });
}

/**
 * Application pods: each an ioredis Cluster client logged in as `app` with the password it read
 * when it started (as the API reads REDIS_PASSWORD_FILE), writing and reading its own keys in a
 * loop. `roll()` replaces them one at a time with clients that read the password now.
 */
class Traffic {
  ok = 0;
  failed: string[] = [];
  private pods: Cluster[] = [];
  private running = true;
  private loops: Promise<void>[] = [];

  constructor(pods: number) {
    for (let p = 0; p < pods; p++) {
      this.pods.push(this.pod());
      this.loops.push(this.loop(p));
    }
  }

  private pod(): Cluster {
    return new Cluster(
      redis.nodes.map((n) => ({ host: n.host, port: n.port })),
      { natMap: redis.natMap(), redisOptions: redis.auth('app'), enableOfflineQueue: true },
    );
  }

  private async loop(p: number): Promise<void> {
    let n = 0;
    while (this.running) {
      const key = `fastnext:rotation:${p}:${n++ % 200}`;
      const value = `${n}`;
      try {
        await this.pods[p].set(key, value, 'EX', 60);
        const got = await this.pods[p].get(key);
        if (got !== value) throw new Error(`read ${got} after writing ${value}`);
        this.ok++;
      } catch (e) {
        this.failed.push(`pod ${p}: ${(e as Error).message}`);
      }
      await sleep(5);
    }
  }

  /** A rolling restart: each pod in turn is replaced by one that reads the current password. */
  async roll(): Promise<void> {
    for (let p = 0; p < this.pods.length; p++) {
      const fresh = this.pod();
      await fresh.ping();
      const old = this.pods[p];
      this.pods[p] = fresh;
      await sleep(200);
      old.disconnect();
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const c of this.pods) c.disconnect();
  }
}

let traffic: Traffic | undefined;
const report: string[] = [];

/** Rotates `role`'s password in the three steps, `rollClients` between steps 2 and 3. */
async function rotate(role: RedisUserRole, rollClients: () => Promise<void> = async () => undefined) {
  const key = redisPasswordKey(role);
  const old = secret[key];
  const next = randomBytes(18).toString('base64url');
  // 1. the new password beside the old one
  update((s) => (s[`${key}-next`] = next));
  const added = await applied(role, [old, next], []);
  // 2. the new one is the user's password; the old one still valid; clients roll
  update((s) => {
    s[key] = next;
    s[`${key}-previous`] = old;
    delete s[`${key}-next`];
  });
  await sleep(3 * SYNC_SECONDS * 1000);
  await applied(role, [old, next], []);
  await rollClients();
  // 3. the old one goes
  update((s) => delete s[`${key}-previous`]);
  const removed = await applied(role, [next], [old]);
  report.push(`${role}: new password live on all 6 nodes in ${added} ms, old one refused by all in ${removed} ms`);
  return { old, next };
}

describe('rotation of every ACL user under a traffic loop of app clients', () => {
  beforeAll(async () => {
    traffic = new Traffic(3);
    await waitFor('traffic flowing', async () => traffic!.ok > 100, 30000);
  });

  test('app: the new password is live everywhere before the clients roll onto it; no request fails', async () => {
    const before = traffic!.ok;
    const { next } = await rotate('app', () => traffic!.roll());
    expect(redis.passwords.app).toBe(next);
    await sleep(1000);
    expect(traffic!.ok).toBeGreaterThan(before);
    expect(traffic!.failed).toEqual([]);
  });

  test('replication: masterauth follows the Secret on the running nodes; replicas re-link with the new password', async () => {
    await rotate('replication');
    // Every replica's link is cut; each reconnects with what its node holds as masterauth now.
    for (const i of nodeIndexes()) {
      if ((await redis.cli(i, 'role')).startsWith('master')) await redis.cli(i, 'client', 'kill', 'type', 'replica');
    }
    const t0 = Date.now();
    await waitFor(
      'every replica linked again',
      async () => {
        let linked = 0;
        for (const i of nodeIndexes()) {
          if ((await redis.cli(i, 'info', 'replication')).includes('master_link_status:up')) linked++;
        }
        return linked === 3;
      },
      60000,
    );
    // (The old password is refused by every node by now: rotate() waited for it.)
    report.push(`replication: replicas linked again ${Date.now() - t0} ms after their links were cut`);
  });

  test('exporter: the probes read the mounted Secret at each run, so they pass with the new password', async () => {
    const sts = find(objects as Obj[], 'StatefulSet', 'redis');
    const probe = sts.spec.template.spec.containers.find((c: Obj) => c.name === 'redis').readinessProbe.exec
      .command as string[];
    const run = async (i: number) => {
      const [cmd, ...args] = localExecCommand(probe, redis.nodes[i]);
      return (await runToEnd(cmd, args, { env: { PATH: process.env.PATH ?? '', REDIS_USERS_DIR: redis.usersDir } }))
        .code;
    };
    expect(await run(0)).toBe(0);
    await rotate('exporter');
    expect(await Promise.all(nodeIndexes().map(run))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  test('admin: the sync loop logs in with whichever admin password is valid; the create Job runs with the new one', async () => {
    await rotate('admin');
    const create = await redis.runCreate();
    expect(create.output).toContain('cluster ok');
    expect(create.code).toBe(0);
  });

  test('through all four rotations: no app request failed, and every node logged each change', async () => {
    await traffic!.stop();
    report.push(`traffic: ${traffic!.ok} app requests (SET + GET) ok, ${traffic!.failed.length} failed`);
    console.log(`[drill] Redis password rotation (sync every ${SYNC_SECONDS} s):\n  ${report.join('\n  ')}`);
    expect(traffic!.failed).toEqual([]);
    expect(traffic!.ok).toBeGreaterThan(1000);
    for (const i of nodeIndexes()) {
      expect(redis.log(i).match(/users sync: passwords applied/g)?.length ?? 0).toBeGreaterThanOrEqual(4 * 3);
    }
  });
});

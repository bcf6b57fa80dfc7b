/**
 * What the service may do on Redis: the `app` ACL user's commands, key patterns and
 * channels. The platform renders the user's ACL from this list (constructs/redis/acl.ts),
 * and a test on a real cluster records every command the service's client sends and fails
 * on one missing here (service/test/integration/redis-acl.test.ts). A command the code
 * starts sending must be added here, with why, or the ACL refuses it (NOPERM) and the cache
 * degrades to the database.
 */
import { INVALIDATION_CHANNEL, KEY_PREFIX, TAG_ADD } from './cache';

/** One allowed command, in ACL syntax (`name` or `container|subcommand`, lowercase). */
export interface AclCommand {
  readonly command: string;
  /** Who sends it and when. */
  readonly why: string;
  /** Sent only in a state the tests may not reach (a slot being migrated); undefined: sent in normal work. */
  readonly onlyWhen?: string;
  /** Run by a Lua script on the server (ACLs apply inside scripts), not sent by the client. */
  readonly inScript?: true;
}

/** The commands a Lua script runs (`redis.call('NAME'`), lowercase, in order of first use. */
export function scriptCommands(lua: string): string[] {
  return [...new Set([...lua.matchAll(/redis\.(?:p?call)\('([A-Za-z]+)'/g)].map((m) => m[1].toLowerCase()))];
}

export interface RedisAclUser {
  readonly user: string;
  readonly commands: readonly AclCommand[];
  /** Key glob patterns (`~pattern`). */
  readonly keys: readonly string[];
  /** Pub/sub channel patterns (`&pattern`). */
  readonly channels: readonly string[];
}

/** The service's Redis user: exactly what its cluster client and cache send. */
export const REDIS_APP_ACL: RedisAclUser = {
  user: 'app',
  commands: [
    { command: 'auth', why: 'ioredis, first on every connection (username and password)' },
    { command: 'info', why: "ioredis' ready check on every node connection; GET /cache/stats" },
    { command: 'cluster|info', why: "ioredis Cluster's ready check" },
    { command: 'cluster|slots', why: 'ioredis Cluster: the slot map, at connect and after MOVED' },
    {
      command: 'readonly',
      why: "ioredis Cluster on a connection to a replica (reads still go to masters: scaleReads 'master')",
      onlyWhen: "a replica's connection opens: the cluster ready check picks a node at random",
    },
    { command: 'client|setname', why: 'the invalidation subscriber names its connection' },
    {
      command: 'asking',
      why: 'ioredis after an ASK redirection',
      onlyWhen: 'a slot is being migrated (resharding)',
    },
    { command: 'get', why: 'Cache.get' },
    { command: 'set', why: 'Cache.set (SET key value EX ttl)' },
    { command: 'eval', why: 'the tag-add script, first on each connection (ioredis defineCommand)' },
    { command: 'evalsha', why: 'the tag-add script, after the first time on a connection' },
    ...scriptCommands(TAG_ADD).map((command) => ({
      command,
      why: 'inside the tag-add script',
      inScript: true as const,
    })),
    { command: 'smembers', why: 'Cache.invalidateTags reads a tag' },
    { command: 'unlink', why: 'Cache.invalidateTags and Cache.del' },
    { command: 'publish', why: 'invalidation announcements and subscription pings' },
    { command: 'subscribe', why: 'the invalidation subscriber' },
    { command: 'ping', why: 'deep health check of every master' },
    { command: 'dbsize', why: 'GET /cache/stats' },
    { command: 'scan', why: 'GET /cache/keys (MATCH below the key prefix)' },
  ],
  keys: [`${KEY_PREFIX}*`],
  channels: [INVALIDATION_CHANNEL],
};

/** Redis 7 commands that take a subcommand, which ACL rules name as `container|subcommand`. */
const CONTAINER_COMMANDS = new Set([
  'acl',
  'client',
  'cluster',
  'command',
  'config',
  'function',
  'latency',
  'memory',
  'module',
  'object',
  'pubsub',
  'script',
  'slowlog',
  'xgroup',
  'xinfo',
]);

/** The ACL name of a command as a client sends it (`CLUSTER SLOTS` -> `cluster|slots`). */
export function aclCommandName(name: string, args: readonly unknown[]): string {
  const n = name.toLowerCase();
  const sub = args[0];
  return CONTAINER_COMMANDS.has(n) && (typeof sub === 'string' || Buffer.isBuffer(sub))
    ? `${n}|${String(sub).toLowerCase()}`
    : n;
}

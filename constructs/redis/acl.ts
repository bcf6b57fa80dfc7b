/**
 * Redis 7 ACL users of the cluster. `default` is off; every client names its user:
 *   app          the API service: exactly the commands, keys and channels it sends
 *                (REDIS_APP_ACL, exported by the service and checked there on a real cluster);
 *   exporter     redis_exporter and the pods' probes: read-only INFO-style commands, no keys;
 *   admin        the Jobs (cluster create, replica assignment) and operators: every command.
 *                It holds ACL SETUSER (password rotation needs it), so any narrower list
 *                would not make it less powerful, only break the Jobs;
 *   replication  replicas authenticate to their master as this user (masteruser): PSYNC,
 *                REPLCONF and PING, as the Redis ACL docs give for replicas.
 * The cluster bus (port + 10000) has no authentication in Redis 7: the NetworkPolicy guards it.
 *
 * Passwords: one Secret, key `<user>-password` per user, generated once in-cluster. The start
 * script turns every key `<user>-password` or `<user>-password-<suffix>` of the mounted Secret
 * into one `#<sha256>` password of that user (ACL users accept several), so a second password
 * can be added next to the first and the old one removed later, without a new layout.
 */
import { REDIS_APP_ACL, type RedisAclUser } from '../../service/src/contract';

/** The ACL users, by role. */
export const REDIS_USERS = {
  app: REDIS_APP_ACL.user,
  exporter: 'exporter',
  admin: 'admin',
  replication: 'replication',
} as const;
export type RedisUserRole = keyof typeof REDIS_USERS;
export const REDIS_USER_ROLES = Object.keys(REDIS_USERS) as RedisUserRole[];

/** Key of a user's password in the users' Secret (`app-password`). */
export function redisPasswordKey(role: RedisUserRole): string {
  return `${REDIS_USERS[role]}-password`;
}

/**
 * What redis_exporter and the probes send, and nothing more: measured with Debian's exporter
 * 1.45 on a cluster node (INFO commandstats of its connection: AUTH, CLIENT SETNAME, INFO,
 * CLUSTER INFO, CONFIG GET, SLOWLOG GET/LEN, LATENCY LATEST), plus LATENCY HISTOGRAM, which
 * newer exporters read for their latency histograms, and PING (the probes). test/redis.test.ts
 * scrapes with Debian 12's 1.45 and Debian 13's 1.69 (around the shipped 1.62): no ACL denial. Its documented ACL also grants key reads and EVAL, for `check-keys` and scripts,
 * which we do not configure.
 */
export const EXPORTER_COMMANDS = [
  'auth',
  'ping',
  'info',
  'cluster|info',
  'config|get',
  'slowlog|get',
  'slowlog|len',
  'latency|latest',
  'latency|histogram',
  'client|setname',
] as const;

const REPLICATION_COMMANDS = ['psync', 'replconf', 'ping'] as const;

/** The command names of the service's `app` user (the default of `appCommands`). */
export const APP_COMMANDS: readonly string[] = REDIS_APP_ACL.commands.map((c) => c.command);

/** A command in ACL syntax: `name` or `container|subcommand`, lowercase. */
const ACL_COMMAND = /^[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)?$/;

/**
 * Why `appCommands` cannot be the `app` user's list, or undefined: each must be a command name
 * (no categories, no `-`, nothing that is not one rule), and every command the bundled
 * service sends must be there, or the cache would fail with NOPERM and fall back to the database.
 */
export function appCommandsProblem(commands: readonly string[]): string | undefined {
  const bad = commands.filter((c) => !ACL_COMMAND.test(c));
  if (bad.length > 0) {
    return `has ${bad.map((c) => JSON.stringify(c)).join(', ')}: each entry must be one lowercase command in ACL syntax ('get', 'cluster|info'), no categories or '-' rules`;
  }
  const missing = APP_COMMANDS.filter((c) => !commands.includes(c));
  if (missing.length > 0) {
    return `refuses ${missing.join(', ')}, which the API service sends (service/src/cache/acl.ts): add them, or leave appCommands unset for exactly the service's list`;
  }
  return undefined;
}

/** The ACL rules of each user, without passwords (the start script adds those from the Secret). */
export function redisAclRules(appCommands: readonly string[] = APP_COMMANDS): Record<RedisUserRole, string> {
  const app: RedisAclUser = REDIS_APP_ACL;
  const allow = (cs: readonly string[]) => ['-@all', ...cs.map((c) => `+${c}`)].join(' ');
  return {
    app: `resetkeys ${app.keys.map((k) => `~${k}`).join(' ')} resetchannels ${app.channels.map((c) => `&${c}`).join(' ')} ${allow(appCommands)}`,
    exporter: `resetkeys resetchannels ${allow(EXPORTER_COMMANDS)}`,
    admin: 'allkeys allchannels +@all',
    replication: `resetkeys resetchannels ${allow(REPLICATION_COMMANDS)}`,
  };
}

/**
 * The `app` ACL user's command list (service/src/cache/acl.ts) against what the service
 * really sends. Every command any of the service's Redis connections sends (cluster client,
 * node connections, the invalidation subscriber) is recorded where ioredis serializes it for
 * the socket (`Command.prototype.toWritable`, after a script call became EVAL or EVALSHA),
 * while the app runs every cache path against a real
 * cluster started from the shipped files with ACLs on, as the `app` user. The test fails
 * when the service sends a command the list lacks, when the list names a command the
 * service no longer sends, and when any node logged an ACL denial.
 */
import type { FastifyInstance } from 'fastify';
import { Command } from 'ioredis';
import { aclCommandName, REDIS_APP_ACL } from '../../src/cache/acl';
import { SERVICE_PATHS } from '../../src/contract';
import { ownerTag } from '../../src/domain/projects';
import { type DataTier, eventually, startDataTier, TOKEN } from '../helpers/servers';

jest.setTimeout(120_000);

const sent = new Set<string>();
type ToWritable = (this: Command, ...rest: unknown[]) => unknown;
const proto = Command.prototype as unknown as { toWritable: ToWritable };
const original = proto.toWritable;

let tier: DataTier;
let app: FastifyInstance;
const auth = { authorization: `Bearer ${TOKEN}` };

beforeAll(async () => {
  proto.toWritable = function (...rest) {
    sent.add(aclCommandName(this.name, this.args));
    return original.apply(this, rest);
  };
  tier = await startDataTier({ replicas: 0 });
  await tier.migrate();
  // The local tier on: its subscriber (SUBSCRIBE, CLIENT SETNAME, pings) is part of what the service sends.
  app = await tier.app({ CACHE_LOCAL_TTL_SECONDS: '5' });
});

afterAll(async () => {
  proto.toWritable = original;
  await tier?.stop();
});

test('the service sends exactly the commands of its ACL list, and no node denies one', async () => {
  const send = (method: 'GET' | 'POST' | 'PATCH', url: string, payload?: object, headers = {}) =>
    app.inject({ method, url: `/api/v1${url}`, payload, headers });
  // GIVEN the app connected as `app`, its invalidation subscription up
  await eventually('local tier serving (subscription pings echoed)', async () => app.cache.localServing);
  expect(tier.redis!.auth('app').username).toBe(REDIS_APP_ACL.user);

  // WHEN every cache path runs: reads with tags, writes that invalidate, management and health routes
  const created = await send('POST', '/users', { email: 'acl@example.com', username: 'acl_user', full_name: 'Ada' });
  expect(created.statusCode).toBe(201);
  const id = created.json().id as string;
  expect((await send('POST', '/projects', { owner_id: id, name: 'acl' })).statusCode).toBe(201);
  for (let i = 0; i < 2; i++) expect((await send('GET', `/users/${id}`)).statusCode).toBe(200);
  expect((await send('POST', '/cache/warm', { users: 5 }, auth)).statusCode).toBe(200);
  expect((await send('PATCH', `/users/${id}`, { full_name: 'Grace' })).statusCode).toBe(200);
  const stats = await send('GET', '/cache/stats', undefined, auth);
  expect(stats.json().nodes.map((n: { status: string }) => n.status)).toEqual(['up', 'up', 'up']);
  expect((await send('GET', '/cache/keys?pattern=*&limit=5', undefined, auth)).json().keys.length).toBeGreaterThan(0);
  expect((await send('POST', '/cache/clear-tags', { tags: [ownerTag(id)] }, auth)).statusCode).toBe(200);
  await app.cache.del([`user:${id}`]);
  // Twelve tags over three masters: a connection runs the tag script again (EVALSHA after its first EVAL).
  for (let i = 0; i < 12; i++) expect(await app.cache.set(`acl:${i}`, i, { tags: [`acl-tag-${i}`] })).toBe(true);
  const deep = await app.inject({ method: 'GET', url: SERVICE_PATHS.deep });
  expect(deep.json().components.redis.status).toBe('up');

  // THEN nothing was sent outside the list, and the list holds nothing the service does not send
  const allowed = new Set(REDIS_APP_ACL.commands.map((c) => c.command));
  expect([...sent].filter((c) => !allowed.has(c)).sort()).toEqual([]);
  const unused = REDIS_APP_ACL.commands.filter((c) => !c.onlyWhen && !c.inScript && !sent.has(c.command));
  expect(unused.map((c) => c.command)).toEqual([]);
  // AND the rendered ACL admitted all of it (commands, keys, channel): no denial on any node, no cache error
  const logs = await Promise.all(tier.redis!.nodes.map((_, i) => tier.redis!.cli(i, 'acl', 'log')));
  expect(logs.map((l) => l.trim())).toEqual(tier.redis!.nodes.map(() => ''));
  expect(app.cache.errors).toBe(0);
});

/**
 * The domain endpoints on a real primary (no replicas, cache off): users,
 * projects with JSONB settings, the activity log, and the 404/409 answers the
 * database decides.
 */
import type { FastifyInstance } from 'fastify';
import { type DataTier, startDataTier } from '../helpers/servers';

jest.setTimeout(120_000);

let tier: DataTier;
let app: FastifyInstance;

const req = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
  app.inject({ method, url: `/api/v1${url}`, payload });

beforeAll(async () => {
  tier = await startDataTier({ replicas: 0, redis: false });
  await tier.migrate();
  app = await tier.app();
});

afterAll(async () => {
  await tier?.stop();
});

describe('users', () => {
  test('create, get, update, search, delete', async () => {
    const created = await req('POST', '/users', {
      email: 'Linus@Example.com',
      username: 'linus',
      full_name: 'Linus T',
    });
    expect(created.statusCode).toBe(201);
    const { id } = created.json();
    expect(created.headers.location).toBe(`/api/v1/users/${id}`);
    expect((await req('GET', `/users/${id}`)).json()).toMatchObject({ username: 'linus', is_active: true });
    expect((await req('PATCH', `/users/${id}`, { is_active: false })).json().is_active).toBe(false);
    expect((await req('GET', '/users/search?q=linus')).json().items).toEqual([]); // inactive filtered out
    expect(
      (await req('GET', '/users/search?q=linus&active=false')).json().items.map((u: { id: string }) => u.id),
    ).toEqual([id]);
    expect((await req('DELETE', `/users/${id}`)).statusCode).toBe(204);
    expect((await req('GET', `/users/${id}`)).statusCode).toBe(404);
  });

  test('fails when the email is taken, case-insensitively', async () => {
    await req('POST', '/users', { email: 'dup@example.com', username: 'dup1' });
    const res = await req('POST', '/users', { email: 'DUP@example.com', username: 'dup2' });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toEqual({ error: 'Conflict', message: 'email already exists', field: 'body.email' });
  });

  test('fails when the user does not exist', async () => {
    const res = await req('GET', '/users/999999');
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: 'Not Found', message: 'user 999999 not found', field: 'params.id' });
  });
});

describe('projects', () => {
  test('JSONB settings: list by owner, find by a settings key, merge on update', async () => {
    const owner = (await req('POST', '/users', { email: 'owner@example.com', username: 'owner' })).json().id;
    const a = (
      await req('POST', '/projects', { owner_id: owner, name: 'a', settings: { plan: 'pro', seats: 5 } })
    ).json();
    await req('POST', '/projects', { owner_id: owner, name: 'b', settings: { plan: 'free' } });
    expect((await req('GET', `/projects?owner_id=${owner}`)).json().items.map((p: { name: string }) => p.name)).toEqual(
      ['b', 'a'],
    );
    const pro = (await req('GET', '/projects/by-setting?key=plan&value=pro')).json().items;
    expect(pro.map((p: { id: string }) => p.id)).toEqual([a.id]);
    expect((await req('GET', '/projects/by-setting?key=seats&value=5')).json().items).toHaveLength(1); // 5 as a number
    const merged = await req('PATCH', `/projects/${a.id}`, { settings: { region: 'eu' } });
    expect(merged.json().settings).toEqual({ plan: 'pro', seats: 5, region: 'eu' });
  });

  test('fails when the owner does not exist', async () => {
    const res = await req('POST', '/projects', { owner_id: '424242', name: 'orphan' });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toEqual({
      error: 'Conflict',
      message: 'owner_id refers to a row that does not exist',
      field: 'body.owner_id',
    });
  });
});

describe('activity', () => {
  test('append, then list by user and time range, newest first', async () => {
    const user = (await req('POST', '/users', { email: 'act@example.com', username: 'act_user' })).json();
    for (const action of ['login', 'view', 'logout']) {
      const res = await req('POST', '/activity', { user_id: user.id, action, details: { ip: '10.0.0.1' } });
      expect(res.statusCode).toBe(201);
    }
    const items = (await req('GET', `/activity?user_id=${user.id}`)).json().items;
    expect(items.map((i: { action: string }) => i.action)).toEqual(['logout', 'view', 'login', 'create']);
    const past = (
      await req('GET', `/activity?user_id=${user.id}&from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z`)
    ).json();
    expect(past.items).toEqual([]);
  });

  test('the recent-changes feed holds the changes the API made, and only those', async () => {
    // GIVEN a user created, updated and deleted through the API
    const user = (await req('POST', '/users', { email: 'feed@example.com', username: 'feed_user' })).json();
    expect((await req('PATCH', `/users/${user.id}`, { full_name: 'Feed', is_active: false })).statusCode).toBe(200);
    expect((await req('DELETE', `/users/${user.id}`)).statusCode).toBe(204);
    // WHEN a client tries to forge a change, or log an event for a user that does not exist
    const forged = await req('POST', '/activity', { user_id: user.id, action: 'update' });
    const unknown = await req('POST', '/activity', { user_id: '999999999', action: 'login' });
    // THEN both are refused, and the feed shows exactly the three real changes, newest first
    expect(forged.statusCode).toBe(400);
    expect(forged.json().field).toBe('body.action');
    expect(unknown.statusCode).toBe(409);
    expect(unknown.json()).toEqual({
      error: 'Conflict',
      message: 'user_id refers to a row that does not exist',
      field: 'body.user_id',
    });
    const changes = (await req('GET', '/activity/recent-changes')).json().items;
    const mine = changes.filter((c: { user_id: string }) => c.user_id === user.id);
    expect(mine.map((c: { action: string; details: unknown }) => [c.action, c.details])).toEqual([
      ['delete', null],
      ['update', { fields: ['full_name', 'is_active'] }],
      ['create', null],
    ]);
  });
});

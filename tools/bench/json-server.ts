/**
 * The edge benchmark's upstream: fixed JSON bodies shaped like the API's (one
 * user, a page of 20 users), with Content-Length, from a bare node:http server so
 * that what the run measures is nginx. Prints `listening <port>` once it accepts.
 */
import * as http from 'node:http';

const user = (i: number) => ({
  id: String(100000 + i),
  email: `user-${i}@example.test`,
  username: `user-${i}`,
  full_name: `Example User ${i}`,
  is_active: true,
  created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
  updated_at: new Date(Date.UTC(2026, 0, 2, 0, 0, i)).toISOString(),
});

/** The bodies, by path. */
export const BODIES: Readonly<Record<string, string>> = {
  '/user': JSON.stringify(user(1)),
  '/users': JSON.stringify({ items: Array.from({ length: 20 }, (_, i) => user(i)), next_cursor: 'MTAwMDIw' }),
};

export async function main(): Promise<number> {
  const server = http.createServer((req, res) => {
    const body = BODIES[req.url ?? ''];
    if (body === undefined) {
      res.statusCode = 404;
      res.end();
      return;
    }
    res.setHeader('content-type', 'application/json; charset=utf-8');
    res.setHeader('content-length', Buffer.byteLength(body));
    res.end(body);
  });
  server.keepAliveTimeout = 65000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`);
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
  await new Promise(() => undefined);
  return 0;
}

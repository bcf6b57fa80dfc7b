/**
 * withTimeout judges its deadline after the I/O already waiting for the process: an answer that
 * arrived while the event loop was busy (a process the machine did not schedule) is an answer.
 */
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { withTimeout } from '../../src/timeout';

let server: Server;
let client: Socket;
/** The server's end of the connection: what it writes is in the client's socket once the kernel has it. */
let peer: Socket;

beforeAll(async () => {
  server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const accepted = once(server, 'connection');
  client = connect(port, '127.0.0.1');
  await once(client, 'connect');
  [peer] = (await accepted) as [Socket];
});

afterAll(async () => {
  client.destroy();
  peer.destroy();
  server.close();
  await once(server, 'close');
});

const busy = (ms: number) => {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // The event loop runs nothing meanwhile.
  }
};

test('an answer that arrived while the event loop was busy past the deadline wins', async () => {
  // GIVEN a wait for the answer with a 50 ms deadline, and the answer sent
  const raced = withTimeout(once(client, 'data'), 50, 'the answer');
  peer.write('pong');
  // WHEN the event loop is busy for 300 ms (the deadline passes, the answer arrives)
  busy(300);
  // THEN the answer wins: Node runs due timers before it reads sockets, the verdict waits for the read
  await expect(raced).resolves.toEqual([Buffer.from('pong')]);
});

test('no answer by the deadline rejects with what timed out and after how long', async () => {
  await expect(withTimeout(new Promise(() => undefined), 30, 'the thing')).rejects.toThrow(
    'the thing timed out after 30 ms',
  );
});

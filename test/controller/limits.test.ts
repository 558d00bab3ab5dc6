import { connect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addNode, createCluster, rejection, startTestController, type TestController, type TestNode } from './helpers.ts';

/** What one caller, and all callers, may hold of the controller at once. */

let t: TestController;
const opened: TestNode[] = [];
const sockets: TLSSocket[] = [];

beforeAll(async () => {
  t = await startTestController({ limits: { connections: 12, longPolls: 3, longPollsPerNode: 2 } });
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(opened.map((n) => n.client.close()));
  await t?.close();
});

function tlsSocket(): Promise<TLSSocket> {
  const { hostname, port } = new URL(t.controller.url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), ca: t.controller.caCertPem }, () => resolve(socket));
    socket.once('error', reject);
    sockets.push(socket);
  });
}

/** Sends `head` and resolves with what came back once the server closes the connection, or undefined after `ms`. */
function untilClosed(socket: TLSSocket, head: string, ms: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
    });
    const timer = setTimeout(() => resolve(undefined), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
    socket.write(head);
  });
}

describe('limits', () => {
  it('closes the connection when it refuses a request before its body is in', async () => {
    const socket = await tlsSocket();
    // 1000 bytes announced, one sent: the rest never comes.
    const answer = await untilClosed(
      socket,
      'POST /v1/clusters HTTP/1.1\r\nhost: controller\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{',
      2000,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
    expect(answer?.toLowerCase()).toContain('connection: close');
  });

  it('caps the long-polls of one node and of all, with a clear 503', async () => {
    const cluster = (await createCluster(t.admin)).id;
    const [m1, m2, m3] = await Promise.all(['m1', 'm2', 'm3'].map((name) => addNode(t.admin, cluster, name, 'master')));
    if (!m1 || !m2 || !m3) throw new Error('three masters');
    opened.push(m1, m2, m3);
    const { epoch } = await m1.client.claimLeader({});
    // What the callers know is the state: they wait for a change.
    const known = { epoch, initialized: false };
    const waits = [m1, m1, m2].map((node) => node.client.leaderState({ waitSeconds: 2, known }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    const perNode = await rejection(m1.client.leaderState({ waitSeconds: 2, known }));
    expect({ status: perNode.context.status, code: perNode.code }).toEqual({ status: 503, code: 'overloaded' });
    expect(perNode.message).toContain('m1 has 2 long-polls waiting');
    const total = await rejection(m3.client.leaderState({ waitSeconds: 2, known }));
    expect(total.code).toBe('overloaded');
    await Promise.all(waits);
    // Released once answered.
    expect(await m3.client.leaderState({ waitSeconds: 0, known })).toMatchObject({ epoch });
  });

  it('answers 503 on a connection past the cap, and closes it', async () => {
    const idle = await Promise.all(Array.from({ length: 12 }, () => tlsSocket()));
    const answer = await untilClosed(await tlsSocket(), 'GET /livez HTTP/1.1\r\nhost: controller\r\n\r\n', 2000);
    expect(answer).toMatch(/^HTTP\/1\.1 503 /);
    expect(answer).toContain('overloaded');
    for (const socket of idle) socket.destroy();
  });
});

import { execa } from 'execa';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../agent/core/log.ts';
import { renderTable } from '../../agent/core/table.ts';
import { AGENT_ENTRY } from '../helpers/cli.ts';
import { addNode, createCluster, startTestController, type TestController, type TestNode } from './helpers.ts';

/** Text from outside reaches operators' terminals with its control characters shown, never obeyed. */

// ESC, BEL, a C1 CSI and a right-to-left override.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for raw control characters
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202e]/;
const HOSTILE = 'x\u001b[2J\u0007\u009b31m\u202e';

let t: TestController;
let node: TestNode | undefined;
const logs: string[] = [];

beforeAll(async () => {
  t = await startTestController({ log: createLogger({ json: false, write: (line) => logs.push(line) }) });
});

afterAll(async () => {
  await node?.client.close();
  await t?.close();
});

describe('control characters', () => {
  it('are escaped in the request log, also for a request that is refused', async () => {
    const dispatcher = new Agent({ connect: { ca: t.controller.caCertPem } });
    const answer = await request(`${t.controller.url}/v1/clusters/${encodeURIComponent(HOSTILE)}/status`, { dispatcher });
    await answer.body.text();
    await dispatcher.close();
    expect(answer.statusCode).toBe(401);
    const line = logs.find((l) => l.includes(' request ')) ?? '';
    expect(line).toContain('status=401');
    expect(line).not.toMatch(RAW);
  });

  it('are escaped in every log value, as text and as JSON', () => {
    const lines: string[] = [];
    for (const json of [false, true]) createLogger({ json, write: (l) => lines.push(l) }).warn(`event${HOSTILE}`, { message: HOSTILE });
    for (const line of lines) {
      expect(line).not.toMatch(RAW);
      expect(line).toContain('\\x1b[2J');
    }
  });

  it('are escaped in every table cell', () => {
    const table = renderTable(['A', 'B'], [[HOSTILE, 'ok']]);
    expect(table).not.toMatch(RAW);
    expect(table).toContain('x\\x1b[2J\\x07\\x9b31m\\u{202e}');
  });

  it('are escaped where controller status prints what a node reported', async () => {
    const cluster = (await createCluster(t.admin)).id;
    node = await addNode(t.admin, cluster, 'w1', 'worker');
    await node.client.register({
      uuid: 'u-1',
      hostname: `w1${HOSTILE}`,
      ips: [`10.0.0.1${HOSTILE}`],
      primaryIp: '10.0.0.1',
      agentVersion: 't',
    });
    await node.client.events({
      events: [
        {
          phase: `host-prep${HOSTILE}`,
          type: 'fail',
          at: new Date().toISOString(),
          attempt: 1,
          message: `failed${HOSTILE}`,
          command: `modprobe${HOSTILE}`,
        },
      ],
    });
    const result = await execa(
      process.execPath,
      [AGENT_ENTRY, 'controller', 'status', '--cluster', cluster, '--url', t.controller.url, '--data-dir', t.dataDir],
      { reject: false },
    );
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('failed');
    expect(result.stdout).not.toMatch(RAW);
  });
});

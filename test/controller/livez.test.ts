import { afterAll, beforeAll, expect, it } from 'vitest';
import { probeHttps } from '../../agent/net/https-probe.ts';
import { startTestController, type TestController } from './helpers.ts';

let running: TestController;
beforeAll(async () => {
  running = await startTestController();
});
afterAll(() => running?.close());

it('answers /livez without a token, and says nothing but ok', async () => {
  const answer = await probeHttps(`${running.controller.url}/livez`, { ca: running.controller.caCertPem });
  expect(answer).toMatchObject({ ok: true, status: 200, detail: '{"status":"ok"}' });
});

it('still refuses every other route without a token', async () => {
  const answer = await probeHttps(`${running.controller.url}/v1/clusters`, { ca: running.controller.caCertPem });
  expect(answer.status).toBe(401);
});

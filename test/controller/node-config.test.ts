import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatGuestinfo } from '../../agent/controller/node-config/formats.ts';
import type { NodeConfigResponse } from '../../agent/protocol/api.ts';
import { createNodeClient } from '../../agent/protocol/client.ts';
import { ControllerRequestError } from '../../agent/protocol/errors.ts';
import { scratchDir } from '../helpers/cli.ts';
import {
  NO_RETRY,
  agentConfigOf,
  createCluster,
  decodeGuestinfo,
  registration,
  startTestController,
  type TestController,
} from './helpers.ts';

let t: TestController;
let clusterId: string;
let master: NodeConfigResponse;
let worker: NodeConfigResponse;
const files = scratchDir('node-config');

const GUESTINFO_KEYS = ['guestinfo.metadata', 'guestinfo.userdata', 'guestinfo.pke.config'];

beforeAll(async () => {
  t = await startTestController();
  clusterId = (
    await createCluster(t.admin, {
      pools: [
        { name: 'general', labels: {}, taints: [] },
        { name: 'gpu', labels: { 'example.com/gpu': 'true' }, taints: [{ key: 'example.com/gpu', value: 'true', effect: 'NoSchedule' }] },
      ],
      controlPlaneEndpoint: { vip: '10.40.0.10', port: 6443, interface: 'ens192' },
    })
  ).id;
  master = await t.admin.nodeConfig(clusterId, { name: 'prod-master-01', role: 'master' });
  worker = await t.admin.nodeConfig(clusterId, { name: 'prod-gpu-01', role: 'worker', pool: 'gpu', tokenTtlSeconds: 3600 });
});

afterAll(async () => {
  await t?.close();
  files.remove();
});

describe.each([
  ['master', () => master],
  ['worker', () => worker],
])('guestinfo of a %s', (role, rendered) => {
  it('has each key gzip+base64 with its .encoding, and stays under 4 KiB', () => {
    const guestinfo = rendered().guestinfo;
    expect(Object.keys(guestinfo).sort()).toEqual(GUESTINFO_KEYS.flatMap((k) => [k, `${k}.encoding`]).sort());
    for (const key of GUESTINFO_KEYS) expect(guestinfo[`${key}.encoding`]).toBe('gzip+base64');
    const total = Object.entries(guestinfo).reduce((sum, [k, v]) => sum + k.length + v.length, 0);
    expect(rendered().encodedBytes).toBe(total);
    expect(total).toBeLessThan(4096);
  });

  it('carries an agent config that passes the agent schema', () => {
    const config = agentConfigOf(rendered());
    expect(config).toMatchObject({
      cluster: { id: clusterId },
      role,
      nodeName: rendered().node,
      controller: { url: t.controller.advertiseUrl, caCert: t.controller.caCertPem },
      kubernetes: { version: '1.31.2' },
      controlPlaneEndpoint: { vip: '10.40.0.10', port: 6443, interface: 'ens192' },
    });
  });

  it('carries metadata with instance-id, local-hostname and the redact list', () => {
    const metadata = JSON.parse(decodeGuestinfo(rendered().guestinfo, 'guestinfo.metadata'));
    expect(metadata).toEqual({
      'instance-id': `${clusterId}-${rendered().node}`,
      'local-hostname': rendered().node,
      redact: ['userdata', 'vendordata'],
    });
  });

  it('carries user-data that the real cloud-init schema check accepts', async () => {
    const userData = decodeGuestinfo(rendered().guestinfo, 'guestinfo.userdata');
    expect(userData.startsWith('#cloud-config\n')).toBe(true);
    expect(userData).toContain(`hostname: "${rendered().node}"`);
    expect(userData).toContain('preserve_hostname: false');
    expect(userData).toContain('- [pke-agent, bootstrap]');
    const file = path.join(files.dir, `${role}-user-data.yaml`);
    writeFileSync(file, userData);
    const check = await execa('cloud-init', ['schema', '--config-file', file], { reject: false });
    expect({ exitCode: check.exitCode, out: `${check.stdout}${check.stderr}` }).toEqual({
      exitCode: 0,
      out: expect.stringContaining('Valid cloud-config'),
    });
  });
});

describe('node tokens in node configs', () => {
  it('scopes the token to cluster, role, pool and node, with a jti and the TTL asked for', () => {
    const claims = decodeJwt(agentConfigOf(worker).controller.token);
    expect(claims).toMatchObject({
      sub: 'prod-gpu-01',
      cluster: clusterId,
      role: 'worker',
      pool: 'gpu',
      jti: worker.tokenId,
      iss: 'pke-controller',
    });
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(3600);
    expect(Date.parse(worker.tokenExpiresAt)).toBe((claims.exp ?? 0) * 1000);
    const masterClaims = decodeJwt(agentConfigOf(master).controller.token);
    expect(masterClaims).toMatchObject({ role: 'master', pool: 'control-plane' });
    expect((masterClaims.exp ?? 0) - (masterClaims.iat ?? 0)).toBe(86400);
  });

  it("uses the cluster's node token TTL when the call names none", async () => {
    const short = (await createCluster(t.admin, { nodeTokenTtlSeconds: 7200 })).id;
    const claims = decodeJwt(agentConfigOf(await t.admin.nodeConfig(short, { name: 'w1', role: 'worker' })).controller.token);
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(7200);
  });

  it('gives the worker its pool labels and taints', () => {
    const config = agentConfigOf(worker);
    expect(config.labels).toEqual({ 'example.com/gpu': 'true' });
    expect(config.taints).toEqual([{ key: 'example.com/gpu', value: 'true', effect: 'NoSchedule' }]);
  });

  it('works as rendered: a VM with this config can register', async () => {
    const client = createNodeClient(agentConfigOf(worker), { retry: NO_RETRY });
    const record = await client.register(registration('prod-gpu-01'));
    expect(record).toMatchObject({ name: 'prod-gpu-01', role: 'worker', pool: 'gpu' });
    await client.close();
  });

  it('refuses an unknown pool and a name already used for another role', async () => {
    const badPool = await t.admin.nodeConfig(clusterId, { name: 'x1', role: 'worker', pool: 'nope' }).catch((e: unknown) => e);
    expect(badPool).toBeInstanceOf(ControllerRequestError);
    expect((badPool as ControllerRequestError).message).toContain('general, gpu');
    expect((badPool as ControllerRequestError).context.status).toBe(400);
    const clash = await t.admin.nodeConfig(clusterId, { name: 'prod-master-01', role: 'worker' }).catch((e: unknown) => e);
    expect((clash as ControllerRequestError).context.status).toBe(409);
  });
});

describe('output formats', () => {
  const guestinfo = () => worker.guestinfo;

  it('govc: one ready vm.change command line', () => {
    const line = formatGuestinfo('govc', 'prod-gpu-01', guestinfo());
    expect(line.startsWith('govc vm.change -vm prod-gpu-01 ')).toBe(true);
    expect(line).not.toContain('\n');
    for (const [key, value] of Object.entries(guestinfo())) expect(line).toContain(`-e ${key}=${value}`);
  });

  it('terraform: an extra_config block', () => {
    const block = formatGuestinfo('terraform', 'prod-gpu-01', guestinfo());
    const lines = block.split('\n');
    expect(lines[0]).toBe('extra_config = {');
    expect(lines.at(-1)).toBe('}');
    const entries = Object.fromEntries(
      lines
        .slice(1, -1)
        .map((l) => /^\s+("[^"]+")\s+= (".*")$/.exec(l))
        .map((m) => [JSON.parse(m?.[1] ?? '""'), JSON.parse(m?.[2] ?? '""')]),
    );
    expect(entries).toEqual(guestinfo());
  });

  it('vmx: key = "value" lines', () => {
    const entries = Object.fromEntries(
      formatGuestinfo('vmx', 'prod-gpu-01', guestinfo())
        .split('\n')
        .map((l) => /^(\S+) = (".*")$/.exec(l))
        .map((m) => [m?.[1], JSON.parse(m?.[2] ?? '""')]),
    );
    expect(entries).toEqual(guestinfo());
  });

  it('json: a map', () => {
    expect(JSON.parse(formatGuestinfo('json', 'prod-gpu-01', guestinfo()))).toEqual(guestinfo());
  });
});

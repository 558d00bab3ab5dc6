import { freePort } from '../../scripts/free-port.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { caCertHash, createClusterPki } from '../../agent/controller/clusters/pki.ts';
import { PkeError } from '../../agent/core/errors.ts';
import { createKubeJoinPhase } from '../../agent/phases/kube-join.ts';
import { createWaitReadyPhase } from '../../agent/phases/wait-ready.ts';
import {
  agentConfig,
  createStandinNode,
  fakeController,
  initLeader,
  markHostPrepared,
  phaseContext,
  withEnv,
  type Leader,
  type StandinNode,
} from '../helpers/standins.ts';

describe('wait-ready', () => {
  let pki: Record<string, string>;
  let clusterDir: string;
  let leader: Leader;
  const nodes: StandinNode[] = [];

  beforeAll(async () => {
    pki = await createClusterPki();
    clusterDir = await mkdtemp(path.join(tmpdir(), 'pke-clusters-'));
    leader = await initLeader(pki, clusterDir);
  });
  afterAll(async () => {
    await leader?.node.cleanup();
    await rm(clusterDir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const node of nodes.splice(0)) await node.cleanup();
  });

  const leaderContext = (port = leader.port, nodeName = 'cp-1') =>
    phaseContext(leader.node, agentConfig({ nodeName, controlPlaneEndpoint: { vip: '127.0.0.1', port } }), fakeController({}), {
      register: { nodeName, primaryIp: '10.10.0.11', interface: 'eth0', ips: ['10.10.0.11'] },
      elect: { leader: true, epoch: 1 },
    });

  it('passes once the API answers through the VIP and the node is Ready, asking the API itself', async () => {
    const output = await createWaitReadyPhase({ timeoutMs: 20_000 }).run(leaderContext());
    expect(output.endpoint).toBe(`https://127.0.0.1:${leader.port}`);
    expect(leader.node.calls('kubectl')).toEqual([]);
  });

  it('sees a joined worker Ready through its kubelet.conf, whose client certificate is a file', async () => {
    const worker = await createStandinNode();
    nodes.push(worker);
    await markHostPrepared(worker);
    const config = agentConfig({
      role: 'worker',
      pool: 'workers',
      nodeName: 'w-1',
      controlPlaneEndpoint: { vip: '127.0.0.1', port: leader.port },
    });
    const grant = {
      mode: 'join' as const,
      token: leader.token,
      tokenExpiresAt: new Date(Date.now() + 900_000).toISOString(),
      caCertHash: caCertHash(pki['ca.crt'] ?? ''),
      endpoint: `127.0.0.1:${leader.port}`,
    };
    const ctx = phaseContext(worker, config, fakeController({ joins: [grant] }), {
      register: { nodeName: 'w-1', primaryIp: '10.10.0.21', interface: 'eth0', ips: ['10.10.0.21'] },
    });
    await withEnv({ PKE_STANDIN_CLUSTER_DIR: clusterDir }, () => createKubeJoinPhase().run(ctx));

    expect(await worker.host.readText('/etc/kubernetes/kubelet.conf')).toContain(
      'client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem',
    );
    await createWaitReadyPhase({ timeoutMs: 20_000 }).run(ctx);

    // Without its certificate file the kubeconfig is of no use, and the phase says which file is missing.
    await worker.host.remove('/var/lib/kubelet/pki/kubelet-client-current.pem');
    await expect(createWaitReadyPhase({ timeoutMs: 20_000 }).run(ctx)).rejects.toThrow(
      '/etc/kubernetes/kubelet.conf: its client-certificate /var/lib/kubelet/pki/kubelet-client-current.pem is missing',
    );
  });

  it('times out naming the endpoint it waited for and the last answer', async () => {
    const closed = await freePort();
    const started = Date.now();
    const error = await createWaitReadyPhase({ timeoutMs: 1_500 })
      .run(leaderContext(closed))
      .catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(error).toBeInstanceOf(PkeError);
    expect((error as PkeError).message).toMatch(
      new RegExp(
        `^timed out after \\d+ s waiting for the API server to be live at https://127\\.0\\.0\\.1:${closed}/livez; last answer: ECONNREFUSED$`,
      ),
    );
    expect((error as PkeError).context.url).toBe(`https://127.0.0.1:${closed}/livez`);
  });

  it('times out on a node the API does not know, saying what the API answered', async () => {
    const error = await createWaitReadyPhase({ timeoutMs: 3_000, maxIntervalMs: 500 })
      .run(leaderContext(leader.port, 'cp-9'))
      .catch((e: unknown) => e);
    expect((error as PkeError).message).toMatch(/waiting for node cp-9 to be Ready; last answer: HTTP 404: nodes "cp-9" not found$/);
  });

  it('fails at once without the cluster CA to verify the API with', async () => {
    const bare = await createStandinNode();
    nodes.push(bare);
    const ctx = phaseContext(bare, agentConfig(), fakeController({}), {
      register: { nodeName: 'node-a', primaryIp: '10.10.0.30', interface: 'eth0', ips: [] },
    });
    await expect(createWaitReadyPhase().run(ctx)).rejects.toThrow('/etc/kubernetes/pki/ca.crt is missing');
  });
});

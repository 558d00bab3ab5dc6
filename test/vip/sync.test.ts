import { afterEach, describe, expect, it } from 'vitest';
import { SAVED_CONFIG_PATH } from '../../agent/core/state-paths.ts';
import { Journal } from '../../agent/journal/journal.ts';
import { vipPhase } from '../../agent/phases/vip.ts';
import type { ControlPlaneView, EventsRequest } from '../../agent/protocol/api.ts';
import { syncVip } from '../../agent/vip/sync.ts';
import { agentConfig, createStandinNode, existingInterface, fakeController, phaseContext, type StandinNode } from '../helpers/standins.ts';

/** `pke-agent vip sync` on a node the controller is removing: the VIP is handed over first. */

const iface = existingInterface();
const view: ControlPlaneView = {
  vip: '10.10.0.100',
  port: 6443,
  virtualRouterId: 173,
  leader: 'cp-1',
  nodes: [
    { name: 'cp-1', primaryIp: '10.10.0.11' },
    { name: 'cp-2', primaryIp: '10.10.0.12' },
  ],
};

describe.skipIf(!iface)('vip sync on a leaving node', () => {
  const nodes: StandinNode[] = [];
  afterEach(async () => {
    for (const node of nodes.splice(0)) await node.cleanup();
  });

  it('stops and disables keepalived, then reports vip-release, when the view shows this node leaving', async () => {
    const node = await createStandinNode();
    nodes.push(node);
    const config = agentConfig({ nodeName: 'cp-1', controlPlaneEndpoint: { vip: view.vip, port: view.port, interface: iface } });
    const outputs = {
      register: { nodeName: 'cp-1', primaryIp: '10.10.0.11', interface: 'not-used-when-configured', ips: ['10.10.0.11'] },
      elect: { leader: true },
    };
    // The node as its bootstrap left it: keepalived enabled and running, the vip phase done in the journal.
    await vipPhase.run(phaseContext(node, config, fakeController({ view }), outputs));
    const journal = await Journal.open(node.host);
    for (const [phase, output] of [
      ['register', outputs.register],
      ['elect', outputs.elect],
      ['vip', {}],
    ] as const) {
      await journal.start(phase);
      await journal.finish(phase, output);
    }
    await node.host.writeFile(SAVED_CONFIG_PATH, JSON.stringify(config), { mode: 0o600 });
    expect(await node.host.service.states(['keepalived'])).toEqual({ keepalived: { active: true, enabled: true } });

    const reports: EventsRequest[] = [];
    const leaving = { ...view, nodes: [{ ...view.nodes[0]!, leaving: true }, view.nodes[1]!] };
    const controller = {
      ...fakeController({ view: leaving }),
      events: async (request: EventsRequest) => {
        // Reported only once keepalived is down: the controller goes on to remove the etcd member then.
        expect(await node.host.service.states(['keepalived'])).toEqual({ keepalived: { active: false, enabled: false } });
        reports.push(request);
      },
    };
    expect(await syncVip({ host: node.host, log: node.log, connect: () => controller })).toEqual({ released: true });
    expect(reports).toHaveLength(1);
    expect(reports[0]?.events[0]).toMatchObject({ phase: 'vip-release', type: 'end' });
    expect(node.calls('systemctl').map((call) => call.argv.join(' '))).toContain('disable --now keepalived');

    // A peer that is not leaving keeps syncing as before.
    const peer = { ...fakeController({ view: leaving }) };
    const other = await createStandinNode();
    nodes.push(other);
    const otherConfig = agentConfig({ nodeName: 'cp-2', controlPlaneEndpoint: { vip: view.vip, port: view.port, interface: iface } });
    const otherOutputs = {
      register: { nodeName: 'cp-2', primaryIp: '10.10.0.12', interface: 'not-used-when-configured', ips: ['10.10.0.12'] },
      elect: { leader: false },
    };
    await vipPhase.run(phaseContext(other, otherConfig, fakeController({ view }), otherOutputs));
    const otherJournal = await Journal.open(other.host);
    for (const [phase, output] of [
      ['register', otherOutputs.register],
      ['elect', otherOutputs.elect],
      ['vip', {}],
    ] as const) {
      await otherJournal.start(phase);
      await otherJournal.finish(phase, output);
    }
    await other.host.writeFile(SAVED_CONFIG_PATH, JSON.stringify(otherConfig), { mode: 0o600 });
    const synced = await syncVip({ host: other.host, log: other.log, connect: () => peer });
    expect(synced).toMatchObject({ synced: { changed: false, peers: ['10.10.0.11'] } });
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import { PkeError } from '../../agent/core/errors.ts';
import { vipPhase } from '../../agent/phases/vip.ts';
import type { ControlPlaneView } from '../../agent/protocol/api.ts';
import { renderKeepalivedConfig, unicastPeers, vrrpPriority } from '../../agent/vip/keepalived.ts';
import {
  agentConfig,
  commandLines,
  createStandinNode,
  existingInterface,
  fakeController,
  phaseContext,
  type StandinNode,
} from '../helpers/standins.ts';

const iface = existingInterface();
const threeNodes: ControlPlaneView = {
  vip: '10.10.0.100',
  port: 6443,
  virtualRouterId: 173,
  leader: 'cp-1',
  nodes: [
    { name: 'cp-1', primaryIp: '10.10.0.11' },
    { name: 'cp-2', primaryIp: '10.10.0.12' },
    { name: 'cp-3', primaryIp: '10.10.0.13' },
  ],
};

describe('keepalived.conf', () => {
  it('gives the leader the top priority and every other node a distinct one by registration order', () => {
    expect(threeNodes.nodes.map((n) => vrrpPriority(threeNodes, n.name, false))).toEqual([150, 148, 147]);
    // Once the lease ends the view names no leader; the node that won the election still knows.
    expect(vrrpPriority({ ...threeNodes, leader: undefined }, 'cp-1', true)).toBe(150);
    expect(() => vrrpPriority(threeNodes, 'cp-9', false)).toThrow(/does not list this node/);
  });

  it('lists every other control-plane node as a unicast peer, never itself', () => {
    expect(unicastPeers(threeNodes, 'cp-2', '10.10.0.12')).toEqual(['10.10.0.11', '10.10.0.13']);
    expect(unicastPeers({ ...threeNodes, nodes: [threeNodes.nodes[0]!] }, 'cp-1', '10.10.0.11')).toEqual([]);
  });

  it('has all nodes start as BACKUP with a weightless health check (a failing API means FAULT)', () => {
    const text = renderKeepalivedConfig({
      nodeName: 'cp-2',
      primaryIp: '10.10.0.12',
      interface: 'ens192',
      vip: '10.10.0.100',
      apiPort: 6443,
      view: threeNodes,
      isLeader: false,
      beforeInit: false,
    });
    expect(text).toContain('state BACKUP');
    expect(text).not.toContain('nopreempt');
    expect(text).toContain('virtual_router_id 173');
    expect(text).toContain('unicast_src_ip 10.10.0.12\n  unicast_peer {\n    10.10.0.11\n    10.10.0.13\n  }');
    expect(text).toContain('10.10.0.100/32 dev ens192');
    expect(text).toContain(
      'script "/usr/bin/curl --silent --fail --insecure --max-time 2 --output /dev/null https://127.0.0.1:6443/livez"',
    );
    expect(text).toMatch(/interval 1\n\s+timeout 3\n\s+fall 2\n\s+rise 1\n\}/);
    expect(text).not.toContain('weight');
    expect(text).not.toContain('init_fail');
    expect(text).toContain('track_script {\n    pke_apiserver_livez\n  }');
  });

  it('has the leader’s config before kubeadm init take the VIP at once (MASTER, address owner), with no health check', () => {
    const text = renderKeepalivedConfig({
      nodeName: 'cp-1',
      primaryIp: '10.10.0.11',
      interface: 'ens192',
      vip: '10.10.0.100',
      apiPort: 6443,
      view: threeNodes,
      isLeader: true,
      beforeInit: true,
    });
    expect(text).toContain('state MASTER');
    expect(text).toContain('priority 255');
    expect(text).not.toContain('vrrp_script');
    expect(text).not.toContain('track_script');
  });
});

/** The real keepalived is no stand-in: its runs show in the host's command log. */
function keepalivedChecks(node: StandinNode): { command: unknown; exitCode: unknown }[] {
  return node.logLines
    .filter((l) => l.event === 'host.command' && String(l.command).startsWith('keepalived'))
    .map((l) => ({ command: l.command, exitCode: l.exitCode }));
}

describe.skipIf(!iface)('vip phase (checked by the real keepalived -t)', () => {
  const nodes: StandinNode[] = [];
  afterEach(async () => {
    for (const node of nodes.splice(0)) await node.cleanup();
  });

  async function runFor(name: string, primaryIp: string, view: ControlPlaneView, leader: boolean) {
    const node = await createStandinNode();
    nodes.push(node);
    const config = agentConfig({ nodeName: name, controlPlaneEndpoint: { vip: view.vip, port: view.port, interface: iface } });
    const ctx = phaseContext(node, config, fakeController({ view }), {
      register: { nodeName: name, primaryIp, interface: 'not-used-when-configured', ips: [primaryIp] },
      elect: { leader },
    });
    return { node, ctx, state: await vipPhase.run(ctx) };
  }

  it('brings up a single control-plane node with its VIP', async () => {
    const single: ControlPlaneView = { ...threeNodes, nodes: [threeNodes.nodes[0]!] };
    const { node, state } = await runFor('cp-1', '10.10.0.11', single, true);
    expect(state).toEqual({ changed: true, started: true, interface: iface, priority: 150, peers: [], virtualRouterId: 173 });
    expect(keepalivedChecks(node)).toEqual([{ command: 'keepalived -t -f /etc/keepalived/keepalived.conf', exitCode: 0 }]);
    expect(commandLines(node.calls('systemctl'), 3)).toContain('systemctl enable --now');
    expect(await node.host.service.states(['keepalived'])).toEqual({ keepalived: { active: true, enabled: true } });
    const text = await node.host.readText('/etc/keepalived/keepalived.conf');
    expect(text).toContain(`10.10.0.100/32 dev ${iface}`);
    expect(text).not.toContain('unicast_peer');
  });

  it("renders three nodes with distinct priorities, peers without self, the view's router id", async () => {
    const results = [];
    for (const [i, n] of threeNodes.nodes.entries()) results.push(await runFor(n.name, n.primaryIp, threeNodes, i === 0));
    expect(results.map((r) => r.state.priority)).toEqual([150, 148, 147]);
    expect(results.map((r) => r.state.peers)).toEqual([
      ['10.10.0.12', '10.10.0.13'],
      ['10.10.0.11', '10.10.0.13'],
      ['10.10.0.11', '10.10.0.12'],
    ]);
    for (const { node } of results) {
      expect(await node.host.readText('/etc/keepalived/keepalived.conf')).toContain('virtual_router_id 173');
      expect(keepalivedChecks(node)).toEqual([{ command: 'keepalived -t -f /etc/keepalived/keepalived.conf', exitCode: 0 }]);
    }
  });

  it('asks systemd once per run, and reloads keepalived only when the peers changed', async () => {
    const SHOW = 'systemctl show --property=ActiveState,UnitFileState keepalived';
    const systemctlSince = (node: StandinNode, from: number) =>
      node
        .calls('systemctl')
        .slice(from)
        .map((call) => ['systemctl', ...call.argv].join(' '));
    const twoNodes: ControlPlaneView = { ...threeNodes, nodes: threeNodes.nodes.slice(0, 2) };
    const { node, ctx } = await runFor('cp-1', '10.10.0.11', twoNodes, true);
    expect(systemctlSince(node, 0)).toEqual([SHOW, 'systemctl enable --now keepalived']);

    let seen = node.calls('systemctl').length;
    expect(await vipPhase.run(ctx)).toMatchObject({ changed: false, started: false });
    expect(systemctlSince(node, seen)).toEqual([SHOW]);

    seen = node.calls('systemctl').length;
    const grown = phaseContext(node, ctx.config, fakeController({ view: threeNodes }), ctx.outputs);
    expect(await vipPhase.run(grown)).toMatchObject({ changed: true, started: false, peers: ['10.10.0.12', '10.10.0.13'] });
    expect(systemctlSince(node, seen)).toEqual([SHOW, 'systemctl reload-or-restart keepalived']);
    expect(keepalivedChecks(node)).toHaveLength(2);
  });

  it('keeps its last peers when the others are removed: no fall back to multicast, which would drop the VIP on reload', async () => {
    const twoNodes: ControlPlaneView = { ...threeNodes, nodes: threeNodes.nodes.slice(0, 2) };
    const { node, ctx } = await runFor('cp-1', '10.10.0.11', twoNodes, true);
    const alone = phaseContext(node, ctx.config, fakeController({ view: { ...threeNodes, nodes: [threeNodes.nodes[0]!] } }), ctx.outputs);
    expect(await vipPhase.run(alone)).toMatchObject({ changed: false, peers: ['10.10.0.12'] });
    expect(await node.host.readText('/etc/keepalived/keepalived.conf')).toContain(
      'unicast_src_ip 10.10.0.11\n  unicast_peer {\n    10.10.0.12\n  }',
    );
    // A new peer replaces the kept one.
    const joined: ControlPlaneView = { ...threeNodes, nodes: [threeNodes.nodes[0]!, threeNodes.nodes[2]!] };
    expect(await vipPhase.run(phaseContext(node, ctx.config, fakeController({ view: joined }), ctx.outputs))).toMatchObject({
      changed: true,
      peers: ['10.10.0.13'],
    });
  });

  it('enables a running keepalived that is not enabled, without restarting it', async () => {
    const { node, ctx } = await runFor('cp-1', '10.10.0.11', threeNodes, true);
    await node.host.run('systemctl', ['disable', 'keepalived']);
    const seen = node.calls('systemctl').length;
    expect(await vipPhase.run(ctx)).toMatchObject({ changed: false, started: false });
    expect(
      node
        .calls('systemctl')
        .slice(seen)
        .map((call) => call.argv.join(' ')),
    ).toEqual(['show --property=ActiveState,UnitFileState keepalived', 'enable keepalived']);
    expect(await node.host.service.states(['keepalived'])).toEqual({ keepalived: { active: true, enabled: true } });
  });

  it('never replaces a working config with one keepalived rejects', async () => {
    const { node, ctx } = await runFor('cp-1', '10.10.0.11', threeNodes, true);
    const working = await node.host.readText('/etc/keepalived/keepalived.conf');
    const broken = agentConfig({ nodeName: 'cp-1', controlPlaneEndpoint: { vip: '10.10.0.100', port: 6443, interface: 'nosuchif0' } });
    const error = await vipPhase
      .run(phaseContext(node, broken, fakeController({ view: threeNodes }), ctx.outputs))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PkeError);
    expect((error as PkeError).message).toMatch(/keepalived rejected the rendered \/etc\/keepalived\/keepalived.conf: .*exited 5/);
    expect((error as PkeError).context.stderrTail).toContain('nosuchif0');
    expect(await node.host.readText('/etc/keepalived/keepalived.conf')).toBe(working);
    expect(await node.host.exists('/etc/keepalived/keepalived.conf.pke-check')).toBe(false);
  });

  it('applies to control-plane nodes only', async () => {
    const node = await createStandinNode();
    nodes.push(node);
    const worker = phaseContext(node, agentConfig({ role: 'worker', pool: 'workers' }), fakeController({}), {});
    expect(vipPhase.appliesTo?.(worker)).toBe(false);
  });
});

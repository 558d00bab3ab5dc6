import { cpSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createAddonsPhase } from '../../agent/phases/addons.ts';
import { PHASES } from '../../agent/phases/index.ts';
import type { AgentConfigInput } from '../../agent/config/schema.ts';
import { upstreamBundles } from '../../scripts/addons/cache.ts';
import { agentConfig, createStandinNode, fakeController, phaseContext, withEnv, type StandinNode } from '../helpers/standins.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const upstream = upstreamBundles();
const ADMIN_CONF = '/etc/kubernetes/admin.conf';

describe('the addons phase', () => {
  const nodes: StandinNode[] = [];
  afterEach(async () => {
    for (const node of nodes.splice(0)) await node.cleanup();
  });

  /** A leader after kube-init: admin.conf written, the image's bundles (the trimmed fixture unless `from`) at /opt/pke/addons. */
  async function leaderNode(options: { bundle?: boolean; from?: string } = {}): Promise<StandinNode> {
    const node = await createStandinNode();
    nodes.push(node);
    await node.host.writeFile(ADMIN_CONF, 'apiVersion: v1\nkind: Config\n', { mode: 0o600 });
    if (options.bundle !== false)
      cpSync(options.from ?? path.join(REPO, 'test/fixtures/addons-subset'), node.host.file('/opt/pke/addons'), { recursive: true });
    return node;
  }

  const context = (node: StandinNode, overrides: Partial<AgentConfigInput> = {}, leader = true) =>
    phaseContext(node, agentConfig({ nodeName: 'cp-1', ...overrides }), fakeController({}), {
      register: { nodeName: 'cp-1', primaryIp: '10.10.0.11', interface: 'eth0', ips: ['10.10.0.11'] },
      elect: { leader, epoch: leader ? 1 : undefined },
    });

  const kubectlCalls = (node: StandinNode) => node.calls('kubectl').map((call) => call.argv.join(' ').replaceAll(node.root, ''));
  const phase = createAddonsPhase({ rolloutTimeoutSeconds: 30 });

  it('runs on the leader only, after kube-init and vip and before wait-ready', async () => {
    const node = await leaderNode();
    expect(phase.appliesTo?.(context(node))).toBe(true);
    expect(phase.appliesTo?.(context(node, {}, false))).toBe(false);
    expect(phase.appliesTo?.(context(node, { role: 'worker', pool: 'workers' }, false))).toBe(false);
    const names = PHASES.map((p) => p.name);
    expect(names.indexOf('addons')).toBeGreaterThan(names.indexOf('vip'));
    expect(names.indexOf('addons')).toBeLessThan(names.indexOf('wait-ready'));
    expect(PHASES.find((p) => p.name === 'wait-ready')?.needs).toContain('addons');
  });

  it('applies Calico by default with admin.conf, waits for each rollout with a timeout, and logs each add-on', async () => {
    const node = await leaderNode();
    const output = await phase.run(context(node));
    expect(output.addons.map((a) => `${a.name} ${a.version}`)).toEqual(['calico v3.28.5']);
    expect(kubectlCalls(node)).toEqual([
      `--kubeconfig ${ADMIN_CONF} apply ${['10-rbac', '20-config', '30-calico-node', '40-calico-kube-controllers'].map((f) => `-f /etc/kubernetes/pke/addons/calico/${f}.yaml`).join(' ')}`,
      `--kubeconfig ${ADMIN_CONF} -n kube-system rollout status daemonset/calico-node --timeout=30s`,
      `--kubeconfig ${ADMIN_CONF} -n kube-system rollout status deployment/calico-kube-controllers --timeout=30s`,
    ]);
    const rendered = readFileSync(node.host.file('/etc/kubernetes/pke/addons/calico/30-calico-node.yaml'), 'utf8');
    expect(rendered).toMatch(/- name: CALICO_IPV4POOL_CIDR\n\s+value: 10\.244\.0\.0\/16\n/);
    expect(node.logLines.filter((l) => l.event.startsWith('addons.')).map((l) => `${l.event} ${String(l.addon)}`)).toEqual([
      'addons.applied calico',
      'addons.rolled-out calico',
      'addons.rolled-out calico',
      'addons.ready calico',
    ]);
  });

  it.skipIf(!upstream.available)(
    `applies the upstream Calico release as the image stages it, the pool set and the images under the mirror${upstream.available ? '' : ` (skipped: ${upstream.reason})`}`,
    async () => {
      const node = await leaderNode({ from: upstream.available ? upstream.dir : '' });
      const output = await phase.run(
        context(node, { kubernetes: { version: '1.31.2', podCidr: '172.20.0.0/16', imageRepository: 'registry.example.net/mirror' } }),
      );
      expect(output.addons.map((a) => `${a.name} ${a.version}`)).toEqual(['calico v3.28.5']);
      expect(kubectlCalls(node)).toEqual([
        `--kubeconfig ${ADMIN_CONF} apply -f /etc/kubernetes/pke/addons/calico/10-calico.yaml`,
        `--kubeconfig ${ADMIN_CONF} -n kube-system rollout status daemonset/calico-node --timeout=30s`,
        `--kubeconfig ${ADMIN_CONF} -n kube-system rollout status deployment/calico-kube-controllers --timeout=30s`,
      ]);
      const rendered = readFileSync(node.host.file('/etc/kubernetes/pke/addons/calico/10-calico.yaml'), 'utf8');
      expect(rendered).toMatch(/- name: CALICO_IPV4POOL_CIDR\n\s+value: 172\.20\.0\.0\/16\n/);
      expect(
        [...rendered.matchAll(/^\s*image: (\S+)/gm)]
          .map((m) => m[1])
          .every((image) => image?.startsWith('registry.example.net/mirror/calico/')),
      ).toBe(true);
      expect(output.addons[0]!.objects).toBeGreaterThan(30);
    },
  );

  it('installs the selected CNI and MetalLB with its layer-2 pool only when addresses are configured', async () => {
    const node = await leaderNode();
    const output = await phase.run(context(node, { addons: { cni: 'flannel', metallb: { addresses: ['198.51.100.240/28'] } } }));
    expect(output.addons.map((a) => a.name)).toEqual(['flannel', 'metallb']);
    const calls = kubectlCalls(node);
    expect(calls.filter((c) => c.includes('rollout status')).map((c) => c.split(' ').slice(-2, -1)[0])).toEqual([
      'daemonset/kube-flannel-ds',
      'deployment/controller',
      'daemonset/speaker',
    ]);
    // The pool goes in after MetalLB's controller is up.
    expect(calls.at(-1)).toBe(`--kubeconfig ${ADMIN_CONF} apply -f /etc/kubernetes/pke/addons/metallb/zz-pke-address-pool.yaml`);
    expect(calls.some((c) => c.includes('/calico/'))).toBe(false);
    const pool = readFileSync(node.host.file('/etc/kubernetes/pke/addons/metallb/zz-pke-address-pool.yaml'), 'utf8');
    expect(pool).toContain('kind: IPAddressPool');
    expect(pool).toContain('198.51.100.240/28');
    expect(pool).toContain('kind: L2Advertisement');
  });

  it('changes nothing when run again: the same files applied, every object unchanged, no error', async () => {
    const node = await leaderNode();
    const ctx = context(node, { addons: { cni: 'flannel', metallb: { addresses: ['198.51.100.10-198.51.100.20'] } } });
    await phase.run(ctx);
    const first = kubectlCalls(node);
    const rendered = readFileSync(node.host.file('/etc/kubernetes/pke/addons/flannel/10-kube-flannel.yaml'), 'utf8');
    await phase.run(ctx);
    const calls = kubectlCalls(node);
    expect(calls.slice(first.length)).toEqual(first);
    expect(readFileSync(node.host.file('/etc/kubernetes/pke/addons/flannel/10-kube-flannel.yaml'), 'utf8')).toBe(rendered);
    const applied = node.logLines.filter((l) => l.event === 'addons.applied').map((l) => l.changed);
    expect(applied.slice(0, 3).every((changed) => Number(changed) > 0)).toBe(true);
    expect(applied.slice(3)).toEqual([0, 0, 0]);
    expect(node.logLines.filter((l) => l.level === 'error' || l.level === 'warn')).toEqual([]);
  });

  it('fails naming the add-on and the workload whose rollout did not finish', async () => {
    const node = await leaderNode();
    const error = await withEnv({ PKE_STANDIN_KUBECTL_ROLLOUT_FAIL: 'calico-node' }, () =>
      phase.run(context(node)).then(
        () => undefined,
        (e: unknown) => e,
      ),
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(
      /^add-on calico v3\.28\.5: daemonset\/calico-node in kube-system did not roll out within 30 s: kubectl .*rollout status daemonset\/calico-node --timeout=30s exited 1: error: timed out waiting for the condition/,
    );
    expect((error as { context: { command?: string } }).context.command).toContain('rollout status daemonset/calico-node');
    expect(node.logLines.some((l) => l.event === 'addons.ready')).toBe(false);
  });

  it('fails without touching the cluster when a bundle is missing, naming the add-on, its version and the path', async () => {
    const node = await leaderNode();
    await node.host.remove('/opt/pke/addons/metallb');
    const error = await phase.run(context(node, { addons: { cni: 'calico', metallb: { addresses: ['198.51.100.240/28'] } } })).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toBe(
      'add-on metallb v0.14.8: its bundle /opt/pke/addons/metallb/v0.14.8 is missing (the image build fetches it: scripts/addons/fetch.ts, then packer/scripts/75-addons.sh)',
    );
    expect(node.calls('kubectl')).toEqual([]);

    const bare = await leaderNode({ bundle: false });
    await expect(phase.run(context(bare))).rejects.toThrow('add-on calico v3.28.5: its bundle /opt/pke/addons/calico/v3.28.5 is missing');
  });
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PkeError } from '../../agent/core/errors.ts';
import { hostPrepPhase } from '../../agent/phases/host-prep.ts';
import type { CallRecord } from '../standins/standin-common.ts';
import { agentConfig, commandLines, createStandinNode, fakeController, phaseContext, type StandinNode } from '../helpers/standins.ts';

describe('host-prep', () => {
  let node: StandinNode;
  beforeEach(async () => {
    node = await createStandinNode();
  });
  afterEach(async () => {
    await node.cleanup();
  });

  const context = () => phaseContext(node, agentConfig(), fakeController({}), {});

  const SHOW = 'systemctl show --property=ActiveState,UnitFileState containerd kubelet';
  const commands = (calls: CallRecord[]) => calls.map((call) => [call.tool, ...call.argv].join(' '));

  it('changes what a fresh VM lacks on the first run and nothing on the second', async () => {
    const ctx = context();
    expect(await hostPrepPhase.isDone?.(ctx)).toBe(false);

    const first = await hostPrepPhase.run(ctx);
    expect(first.changed).toEqual(['kernel-modules', 'sysctl', 'swap', 'containerd-config', 'containerd-service', 'kubelet']);
    // systemd asked once for both units; the sysctls written to the kernel without a command.
    expect(commands(node.calls())).toEqual([
      'modprobe -a overlay br_netfilter',
      'swapoff -a',
      'containerd --version',
      SHOW,
      'systemctl enable --now containerd',
      'systemctl enable kubelet',
    ]);
    expect(await node.host.readText('/etc/modules-load.d/pke-kubernetes.conf')).toMatch(/^overlay\nbr_netfilter\n$/m);
    for (const key of ['net/bridge/bridge-nf-call-iptables', 'net/bridge/bridge-nf-call-ip6tables', 'net/ipv4/ip_forward']) {
      expect((await node.host.readText(`/proc/sys/${key}`))?.trim()).toBe('1');
    }
    expect(await node.host.readText('/proc/swaps')).not.toContain('/dev/sda3');
    expect(await node.host.readText('/etc/fstab')).toBe(
      'UUID=0a1b / ext4 errors=remount-ro 0 1\n# swap disabled by pke-agent (the kubelet needs swap off): UUID=2c3d none swap sw 0 0\n',
    );
    const containerd = await node.host.readText('/etc/containerd/config.toml');
    expect(containerd).toContain('version = 2');
    expect(containerd).toContain('[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n  SystemdCgroup = true');
    expect(await node.host.service.states(['containerd', 'kubelet'])).toEqual({
      containerd: { active: true, enabled: true },
      kubelet: { active: false, enabled: true },
    });

    const callsBefore = node.calls().length;
    expect(await hostPrepPhase.isDone?.(ctx)).toBe(true);
    const second = await hostPrepPhase.run(ctx);
    expect(second.changed).toEqual([]);
    // Each look at the host asks systemd once and changes nothing.
    expect(commands(node.calls().slice(callsBefore))).toEqual([SHOW, SHOW]);
  });

  it('loads only the modules that are missing, and writes only the settings that are off', async () => {
    await node.host.ensureDir('/sys/module/overlay');
    await node.host.writeFile('/proc/sys/net/ipv4/ip_forward', '1\n');
    await hostPrepPhase.run(context());
    expect(commands(node.calls('modprobe'))).toEqual(['modprobe -a br_netfilter']);
    expect((await node.host.readText('/proc/sys/net/bridge/bridge-nf-call-iptables'))?.trim()).toBe('1');
  });

  it('takes a module built into the kernel without parameters (no /sys/module entry) by the sysctls it brings', async () => {
    await node.host.ensureDir('/sys/module/overlay');
    for (const key of ['iptables', 'ip6tables']) await node.host.writeFile(`/proc/sys/net/bridge/bridge-nf-call-${key}`, '0\n');
    await hostPrepPhase.run(context());
    expect(node.calls('modprobe')).toEqual([]);
    expect((await node.host.readText('/proc/sys/net/bridge/bridge-nf-call-iptables'))?.trim()).toBe('1');
  });

  it('fails naming the setting when the kernel does not have it', async () => {
    // br_netfilter counts as loaded, yet its settings are not there: nothing creates them.
    await node.host.ensureDir('/sys/module/overlay');
    await node.host.ensureDir('/sys/module/br_netfilter');
    const error = await hostPrepPhase.run(context()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PkeError);
    expect((error as PkeError).message).toMatch(
      /^cannot set net\.bridge\.bridge-nf-call-iptables = 1 through \/proc\/sys\/net\/bridge\/bridge-nf-call-iptables: ENOENT/,
    );
    expect((error as PkeError).context.path).toBe('/proc/sys/net/bridge/bridge-nf-call-iptables');
    expect(await node.host.exists('/proc/sys/net/bridge/bridge-nf-call-iptables')).toBe(false);
  });

  it('restarts a running containerd when its config changes, and only then', async () => {
    await node.host.writeFile('/etc/containerd/config.toml', 'version = 2\ndisabled_plugins = ["cri"]\n');
    await node.host.service.enableNow('containerd');
    await hostPrepPhase.run(context());
    expect(commandLines(node.calls('systemctl'), 2).filter((c) => c === 'systemctl restart')).toHaveLength(1);

    await hostPrepPhase.run(context());
    expect(commandLines(node.calls('systemctl'), 2).filter((c) => c === 'systemctl restart')).toHaveLength(1);
  });

  it('keeps a containerd config that already uses the systemd cgroup driver, and writes the v3 layout for containerd 2', async () => {
    const tuned =
      'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n  BinaryName = "/usr/bin/runc"\n';
    await node.host.writeFile('/etc/containerd/config.toml', tuned);
    const result = await hostPrepPhase.run(context());
    expect(result.changed).not.toContain('containerd-config');
    expect(await node.host.readText('/etc/containerd/config.toml')).toBe(tuned);

    await node.host.remove('/etc/containerd/config.toml');
    process.env.PKE_STANDIN_CONTAINERD_VERSION = '2.0.2';
    try {
      await hostPrepPhase.run(context());
    } finally {
      delete process.env.PKE_STANDIN_CONTAINERD_VERSION;
    }
    const v3 = await node.host.readText('/etc/containerd/config.toml');
    expect(v3).toContain('version = 3');
    expect(v3).toContain("[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n  SystemdCgroup = true");
  });

  it('applies the sysctls again when the kernel lost them, though the file is in place', async () => {
    await hostPrepPhase.run(context());
    await node.host.writeFile('/proc/sys/net/ipv4/ip_forward', '0\n');
    const result = await hostPrepPhase.run(context());
    expect(result.changed).toEqual(['sysctl']);
    expect((await node.host.readText('/proc/sys/net/ipv4/ip_forward'))?.trim()).toBe('1');
  });
});

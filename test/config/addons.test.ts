import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../agent/config/schema.ts';
import { clusterSpecSchema } from '../../agent/protocol/api.ts';
import { agentConfigOf, createCluster, decodeGuestinfo, startTestController, type TestController } from '../controller/helpers.ts';
import { validConfig } from '../helpers/agent-config.ts';

describe('add-ons in the agent config and the cluster spec', () => {
  it("defaults to Calico without MetalLB, with kubeadm's kube-proxy and CoreDNS, in both schemas", () => {
    const defaults = { cni: 'calico', kubeProxy: true, coreDns: true };
    expect(agentConfigSchema.parse(validConfig()).addons).toEqual(defaults);
    expect(
      clusterSpecSchema.parse({ name: 'prod', kubernetesVersion: '1.31.2', controlPlaneEndpoint: { vip: '10.0.0.10' } }).addons,
    ).toEqual(defaults);
    expect(agentConfigSchema.parse(validConfig({ addons: { cni: 'calico' } })).addons).toEqual(defaults);
  });

  it('takes `cni: none` for a site that brings its own CNI, and kube-proxy or CoreDNS turned off', () => {
    const parsed = agentConfigSchema.parse(validConfig({ addons: { cni: 'none', kubeProxy: false, coreDns: false } }));
    expect(parsed.addons).toEqual({ cni: 'none', kubeProxy: false, coreDns: false });
    const problem = agentConfigSchema.safeParse({ ...validConfig(), addons: { kubeProxy: 'no' } }).error?.issues[0];
    expect(problem?.path.join('.')).toBe('addons.kubeProxy');
  });

  it('takes Flannel and MetalLB CIDRs or ranges; refuses other CNIs, bad addresses and unknown keys, naming the key', () => {
    const parsed = agentConfigSchema.parse(
      validConfig({ addons: { cni: 'flannel', metallb: { addresses: ['198.51.100.240/28', '198.51.100.10-198.51.100.20'] } } }),
    );
    expect(parsed.addons).toEqual({
      cni: 'flannel',
      kubeProxy: true,
      coreDns: true,
      metallb: { addresses: ['198.51.100.240/28', '198.51.100.10-198.51.100.20'] },
    });
    const problems = (addons: unknown) =>
      agentConfigSchema.safeParse({ ...validConfig(), addons }).error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`) ??
      [];
    expect(problems({ cni: 'weave' })[0]).toMatch(/^addons\.cni: /);
    expect(problems({ cni: 'calico', metallb: { addresses: ['198.51.100.10-nope'] } })).toEqual([
      'addons.metallb.addresses.0: expected a CIDR (198.51.100.240/28) or an IPv4 range (198.51.100.240-198.51.100.250)',
    ]);
    expect(problems({ cni: 'calico', metallb: { addresses: [] } })[0]).toMatch(/^addons\.metallb\.addresses: /);
    expect(problems({ cni: 'calico', vcenter: {} })[0]).toMatch(/^addons: .*vcenter/);
    expect(problems({ cni: 'calico', vsphere: { password: 'x' } })[0]).toMatch(/^addons\.vsphere: .*password/);
  });
});

describe('add-ons carried from the cluster to the leader through node-config', () => {
  let t: TestController;
  beforeAll(async () => {
    t = await startTestController();
  });
  afterAll(() => t?.close());

  it('gives control-plane nodes the add-ons block and workers none, staying under 4 KiB', async () => {
    const addons = { cni: 'flannel' as const, metallb: { addresses: ['198.51.100.240/28', '198.51.100.10-198.51.100.20'] } };
    const cluster = await createCluster(t.admin, { name: 'addons', podCidr: '172.20.0.0/16', addons });
    const master = await t.admin.nodeConfig(cluster.id, { name: 'addons-master-01', role: 'master' });
    const worker = await t.admin.nodeConfig(cluster.id, { name: 'addons-worker-01', role: 'worker', pool: 'workers' });
    expect(agentConfigOf(master)).toMatchObject({
      addons,
      kubernetes: { podCidr: '172.20.0.0/16' },
      controlPlaneNodes: cluster.spec.controlPlaneNodes,
    });
    expect(JSON.parse(decodeGuestinfo(worker.guestinfo, 'guestinfo.pke.config'))).not.toHaveProperty('addons');
    expect(JSON.parse(decodeGuestinfo(worker.guestinfo, 'guestinfo.pke.config'))).not.toHaveProperty('controlPlaneNodes');
    expect(master.encodedBytes).toBeLessThan(4096);
  });
});

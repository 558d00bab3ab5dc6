import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../agent/config/load.ts';
import { clusterSpecSchema } from '../../agent/protocol/api.ts';
import { fakeNodeToken, validConfig } from '../helpers/agent-config.ts';

const parse = (overrides: Parameters<typeof validConfig>[0]) => parseConfig('test config', JSON.stringify(validConfig(overrides)));

describe('agent config schema', () => {
  it('refuses node labels the kubelet may not set itself, naming the label', () => {
    expect(() => parse({ labels: { 'node-role.kubernetes.io/worker': '' } })).toThrow(
      /^test config: labels\.node-role\.kubernetes\.io\/worker: the kubelet may not set labels under kubernetes\.io or k8s\.io itself/,
    );
    expect(() => parse({ labels: { 'prod.k8s.io/tier': 'a' } })).toThrow(/labels\.prod\.k8s\.io\/tier: the kubelet may not set/);
    const allowed = {
      'node.kubernetes.io/pool': 'a',
      'kubelet.kubernetes.io/x': 'b',
      'topology.kubernetes.io/zone': 'rack-1',
      'example.com/x': 'y',
      team: 'infra',
    };
    expect(parse({ labels: allowed }).labels).toEqual(allowed);
  });

  it('refuses them in a pool of the cluster spec too, where node-config would copy them from', () => {
    const spec = {
      name: 'prod',
      kubernetesVersion: '1.31.2',
      controlPlaneEndpoint: { vip: '10.10.0.100' },
      pools: [{ name: 'gpu', labels: { 'node-role.kubernetes.io/gpu': '' }, taints: [] }],
    };
    const parsed = clusterSpecSchema.safeParse(spec);
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]?.path).toEqual(['pools', 0, 'labels', 'node-role.kubernetes.io/gpu']);
  });

  it('refuses Kubernetes versions before the oldest supported minor', () => {
    expect(() => parse({ kubernetes: { version: '1.21.9' } })).toThrow(
      'kubernetes.version: Kubernetes versions before 1.22 are not supported',
    );
    expect(parse({ kubernetes: { version: 'v1.22.0' } }).kubernetes.version).toBe('v1.22.0');
  });

  it('refuses a config that names no node: no nodeName, and a token without a sub claim', () => {
    const token = fakeNodeToken({ exp: Math.floor(Date.now() / 1000) + 3600 });
    expect(() => parse({ nodeName: undefined, controller: { ...validConfig().controller, token } })).toThrow(
      'test config: controller.token: the token names no node (no sub claim) and there is no nodeName: set nodeName',
    );
    expect(parse({ nodeName: 'cp-1', controller: { ...validConfig().controller, token } }).nodeName).toBe('cp-1');
  });
});

import { describe, expect, it } from 'vitest';
import { cloneSource, desiredVms, replacementName, surplusVms } from '../../agent/controller/pools/desired.ts';
import type { ClusterState } from '../../agent/controller/store/state.ts';
import { CONTROL_PLANE_POOL } from '../../agent/protocol/api.ts';
import { provisionedCluster as cluster, provisionedNode as node, replacingCluster as upgrading } from '../helpers/cluster-state.ts';

/** Which VMs the pools want: names kept, gaps filled lowest first, shrinks from the top, one more while a node is replaced. */

const names = (c: ClusterState) => desiredVms(c).map((vm) => vm.name);

describe('the VMs a provisioned cluster wants', () => {
  it('numbers a new cluster from 1', () => {
    expect(names(cluster([]))).toEqual(['c-cp-1', 'c-cp-2', 'c-cp-3', 'c-workers-1', 'c-workers-2']);
  });

  it("keeps its members' names and gives a removed node's name to the VM that takes its place", () => {
    const c = cluster([
      node('c-cp-1'),
      node('c-cp-2', { removedAt: 5, revokedAt: 4 }),
      node('c-cp-3'),
      node('c-workers-1'),
      node('c-workers-2'),
    ]);
    expect(names(c)).toEqual(['c-cp-1', 'c-cp-3', 'c-cp-2', 'c-workers-1', 'c-workers-2']);
  });

  it('counts a node whose removal still runs, and leaves names it did not make to the operator', () => {
    const removing = node('c-workers-2', {
      revokedAt: 4,
      removal: { requestedAt: 1, force: false, timeoutSeconds: 300, state: 'running', steps: {} },
    });
    const manual = node('db-1', { pool: 'workers', vm: undefined });
    expect(names(cluster([node('c-cp-1'), node('c-workers-1'), removing, manual], { cp: 1 }))).toEqual([
      'c-cp-1',
      'c-workers-1',
      'c-workers-2',
    ]);
  });

  it('drops the highest numbers first when a pool shrinks', () => {
    const c = cluster(
      ['c-cp-1', 'c-workers-1', 'c-workers-2', 'c-workers-3'].map((n) => node(n)),
      { cp: 1, workers: 1 },
    );
    expect(names(c)).toEqual(['c-cp-1', 'c-workers-1']);
    expect(surplusVms(c, desiredVms(c)).map((n) => n.name)).toEqual(['c-workers-2', 'c-workers-3']);
  });

  describe('during an upgrade by rolling replacement', () => {
    it('wants the node being replaced and its replacement, the lowest number free of the upgrade, from the new template', () => {
      const c = upgrading('c-cp-1', 'c-cp-3');
      expect(replacementName(c, CONTROL_PLANE_POOL)).toBe('c-cp-3');
      // cp-1 is out, but its name is the upgrade's: cp-2's replacement does not take it.
      c.nodes['c-cp-1']!.removedAt = 3;
      c.nodes['c-cp-3'] = node('c-cp-3');
      expect(replacementName(c, CONTROL_PLANE_POOL)).toBe('c-cp-4');
      delete c.nodes['c-cp-1']!.removedAt;
      delete c.nodes['c-cp-3'];
      expect(desiredVms(c).map((vm) => [vm.name, vm.placement.template, vm.kubernetesVersion])).toEqual([
        ['c-cp-1', 'pke-node-k8s-1.32.0', '1.32.0'],
        ['c-cp-3', 'pke-node-k8s-1.32.0', '1.32.0'],
        ['c-cp-2', 'pke-node-k8s-1.32.0', '1.32.0'],
        ['c-workers-1', 'pke-node-k8s-1.31.2', '1.31.2'],
      ]);
    });

    it('clones new workers from the old template until the control plane is replaced (no kubelet newer than an API server)', () => {
      expect(cloneSource(upgrading('c-cp-2', 'c-cp-1', ['c-cp-1']), 'worker')).toEqual({ kubernetesVersion: '1.31.2' });
      expect(cloneSource(upgrading('c-workers-1', 'c-workers-2', ['c-cp-1', 'c-cp-2']), 'worker')).toEqual({
        template: 'pke-node-k8s-1.32.0',
        kubernetesVersion: '1.32.0',
      });
    });

    it('stops wanting the old node once its removal is done', () => {
      const c = upgrading('c-cp-1', 'c-cp-3');
      c.nodes['c-cp-3'] = node('c-cp-3');
      c.nodes['c-cp-1']!.removedAt = 3;
      expect(names(c)).toEqual(['c-cp-2', 'c-cp-3', 'c-workers-1']);
    });
  });
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../agent/config/schema.ts';
import { certsPhase } from '../../agent/phases/certs.ts';
import type { PkiBundle } from '../../agent/protocol/api.ts';
import { PKI_FILES } from '../../agent/protocol/api.ts';
import type { NodeApi } from '../../agent/protocol/node-api.ts';
import { validConfig } from '../helpers/agent-config.ts';
import { createStandinNode, phaseContext, type StandinNode } from '../helpers/standins.ts';

let node: StandinNode;
beforeEach(async () => {
  node = await createStandinNode();
});
afterEach(() => node.cleanup());

const config = agentConfigSchema.parse(validConfig());

function bundle(tag: string): PkiBundle {
  return { files: Object.fromEntries(PKI_FILES.map((name) => [name, `-----BEGIN ${tag} ${name}-----\n`])) as PkiBundle['files'] };
}

function controllerServing(pki: PkiBundle): NodeApi {
  return { pki: async () => pki } as Partial<NodeApi> as NodeApi;
}

describe('certs phase', () => {
  it('writes every shared file at kubeadm’s path, keys 0600 and certificates 0644', async () => {
    const output = await certsPhase.run(phaseContext(node, config, controllerServing(bundle('A')), {}));
    expect(output.written).toEqual([...PKI_FILES]);
    for (const name of PKI_FILES) {
      const path = `/etc/kubernetes/pki/${name}`;
      expect(await node.host.readText(path)).toBe(`-----BEGIN A ${name}-----\n`);
      expect(await node.host.fileMode(path)).toBe(name.endsWith('.key') ? 0o600 : 0o644);
    }
  });

  it('leaves identical files alone on a rerun', async () => {
    await certsPhase.run(phaseContext(node, config, controllerServing(bundle('A')), {}));
    const output = await certsPhase.run(phaseContext(node, config, controllerServing(bundle('A')), {}));
    expect(output).toEqual({ written: [], unchanged: [...PKI_FILES] });
  });

  it('replaces different files on a node that has not joined yet', async () => {
    await certsPhase.run(phaseContext(node, config, controllerServing(bundle('OLD')), {}));
    const output = await certsPhase.run(phaseContext(node, config, controllerServing(bundle('NEW')), {}));
    expect(output.written).toHaveLength(PKI_FILES.length);
    expect(await node.host.readText('/etc/kubernetes/pki/ca.key')).toContain('NEW');
  });

  it('refuses different files on a node that already joined, and writes nothing', async () => {
    await certsPhase.run(phaseContext(node, config, controllerServing(bundle('OLD')), {}));
    await node.host.writeFile('/etc/kubernetes/kubelet.conf', 'apiVersion: v1\n');
    const changed = bundle('OLD');
    changed.files['sa.key'] = '-----BEGIN OTHER sa.key-----\n';
    await expect(certsPhase.run(phaseContext(node, config, controllerServing(changed), {}))).rejects.toThrow(
      /sa\.key under \/etc\/kubernetes\/pki differ from the cluster's and this node has already joined a cluster; refusing to overwrite/,
    );
    expect(await node.host.readText('/etc/kubernetes/pki/sa.key')).toBe('-----BEGIN OLD sa.key-----\n');
  });
});

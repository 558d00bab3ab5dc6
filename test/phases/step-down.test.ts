import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stepDownBeforeInit } from '../../agent/phases/step-down.ts';
import { INIT_STARTED_MARKER } from '../../agent/core/state-paths.ts';
import { commandLines, createStandinNode, type StandinNode } from '../helpers/standins.ts';

describe('a leader stepping down before its init finished', () => {
  let node: StandinNode;
  beforeEach(async () => {
    node = await createStandinNode();
  });
  afterEach(() => node.cleanup());

  it('stops keepalived, which runs the leader config from before init, and resets the init it began', async () => {
    await node.host.run('systemctl', ['start', 'keepalived']);
    await node.host.writeFile(INIT_STARTED_MARKER, '{}\n');
    await node.host.writeFile('/etc/kubernetes/pki/ca.crt', 'CA\n');

    await stepDownBeforeInit(node.host, node.log);

    expect(await node.host.service.states(['keepalived'])).toEqual({ keepalived: { active: false, enabled: false } });
    expect(commandLines(node.calls('kubeadm'))).toEqual(['kubeadm reset']);
    expect(await node.host.exists(INIT_STARTED_MARKER)).toBe(false);
    expect(await node.host.readText('/etc/kubernetes/pki/ca.crt')).toBe('CA\n');
    expect(node.logLines.some((line) => line.event === 'vip.released')).toBe(true);
  });

  it('changes nothing on a node that neither began an init nor runs keepalived', async () => {
    await stepDownBeforeInit(node.host, node.log);
    expect(commandLines(node.calls())).toEqual(['systemctl show']);
    expect(node.logLines.some((line) => line.event === 'vip.released')).toBe(false);
  });
});

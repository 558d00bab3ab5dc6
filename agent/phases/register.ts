import { nodeName } from '../config/node-name.ts';
import { PkeError } from '../core/errors.ts';
import { AGENT_VERSION } from '../core/version.ts';
import { primaryAddress, subnetContains } from '../node/facts.ts';
import type { RegisterOutput } from '../journal/phase-outputs.ts';
import type { Phase } from './phase.ts';

export const registerPhase: Phase<RegisterOutput> = {
  name: 'register',
  summary: 'Tell the controller who this node is: BIOS UUID, host name, addresses',
  needs: ['preflight'],
  run: async (ctx) => {
    const facts = await ctx.facts();
    const { vip, interface: vipInterface } = ctx.config.controlPlaneEndpoint;
    const primary = primaryAddress(facts, vip, vipInterface);
    if (!primary) {
      const where = vipInterface
        ? `interface ${vipInterface} (controlPlaneEndpoint.interface)`
        : `the VIP's network (${vip}) or the default route's interface`;
      throw new PkeError(
        `register: no IPv4 address on ${where}; interfaces: ${facts.interfaces.map((i) => `${i.name} ${i.ipv4.join(',') || '-'}`).join('; ') || 'none'}`,
      );
    }
    // keepalived can only hold the VIP on a network the control-plane nodes are on.
    if (ctx.config.role === 'master' && !subnetContains(primary.cidr, vip)) {
      throw new PkeError(
        `register: controlPlaneEndpoint.vip ${vip} is not on the network of ${primary.interface} (${primary.cidr}); keepalived could not serve it there. Fix the cluster's VIP, or name the interface on the VIP's network in controlPlaneEndpoint.interface`,
      );
    }
    const ips = facts.interfaces.flatMap((i) => i.ipv4.map((cidr) => cidr.split('/')[0] ?? cidr));
    const name = nodeName(ctx.config);
    await ctx.controller.register({
      uuid: facts.biosUuid,
      hostname: facts.hostname,
      ips,
      primaryIp: primary.ip,
      agentVersion: AGENT_VERSION,
    });
    ctx.log.info('register.done', { node: name, primaryIp: primary.ip, interface: primary.interface });
    return { nodeName: name, primaryIp: primary.ip, interface: primary.interface, ips, biosUuid: facts.biosUuid };
  },
};

import { gzipSync } from 'node:zlib';
import { metaDataTemplate } from '../../../cloud-init/templates/meta-data.ts';
import { userDataTemplate } from '../../../cloud-init/templates/user-data.ts';
import type { AgentConfigInput, Role } from '../../config/schema.ts';
import type { ClusterSpec, Guestinfo } from '../../protocol/api.ts';
import { ownValue } from '../../core/records.ts';

/** Everything one VM needs in guestinfo: cloud-init metadata, user-data, and the agent's config. */

const GUESTINFO_ENCODING = 'gzip+base64';
const GUESTINFO_KEYS = { metadata: 'guestinfo.metadata', userdata: 'guestinfo.userdata', agentConfig: 'guestinfo.pke.config' } as const;

export interface NodeConfigInput {
  cluster: { id: string; name: string; spec: ClusterSpec };
  node: string;
  role: Role;
  pool: string;
  controller: { url: string; otherUrls?: string[]; caCert: string; token: string };
}

export function renderGuestinfo(input: NodeConfigInput): Guestinfo {
  const values = { hostname: input.node, instanceId: `${input.cluster.id}-${input.node}` };
  return {
    ...encoded(GUESTINFO_KEYS.metadata, renderTemplate(metaDataTemplate, values)),
    ...encoded(GUESTINFO_KEYS.userdata, renderTemplate(userDataTemplate, values)),
    ...encoded(GUESTINFO_KEYS.agentConfig, JSON.stringify(agentConfig(input))),
  };
}

/** The agent config per agent/config/schema.ts. */
function agentConfig(input: NodeConfigInput): AgentConfigInput {
  const { spec } = input.cluster;
  const pool = input.role === 'worker' ? spec.pools.find((p) => p.name === input.pool) : undefined;
  return {
    cluster: { id: input.cluster.id, name: input.cluster.name },
    role: input.role,
    pool: input.pool,
    nodeName: input.node,
    controller: input.controller,
    kubernetes: {
      version: spec.kubernetesVersion,
      podCidr: spec.podCidr,
      serviceCidr: spec.serviceCidr,
      ...(spec.addons.vsphere ? { cloudProvider: 'external' as const } : {}),
      cgroupDriver: spec.cgroupDriver,
      allowCgroupV1: spec.allowCgroupV1,
      ...(spec.imageRepository ? { imageRepository: spec.imageRepository } : {}),
    },
    controlPlaneEndpoint: spec.controlPlaneEndpoint,
    labels: pool?.labels ?? {},
    taints: pool?.taints ?? [],
    // Only a control-plane node can become the leader, the one node that installs add-ons.
    ...(input.role === 'master' ? { addons: spec.addons, controlPlaneNodes: spec.controlPlaneNodes } : {}),
  };
}

/** The length of every key and value together: what the VM's ExtraConfig has to carry. */
export function encodedSize(guestinfo: Guestinfo): number {
  return Object.entries(guestinfo).reduce((sum, [key, value]) => sum + key.length + value.length, 0);
}

/** Replaces each `{{ name }}` with the value as a JSON string, which is also a valid YAML scalar. */
function renderTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, name: string) => {
    const value = ownValue(values, name);
    if (value === undefined) throw new Error(`template placeholder {{ ${name} }} has no value`);
    return JSON.stringify(value);
  });
}

function encoded(key: string, text: string): Guestinfo {
  return { [key]: gzipSync(text, { level: 9 }).toString('base64'), [`${key}.encoding`]: GUESTINFO_ENCODING };
}

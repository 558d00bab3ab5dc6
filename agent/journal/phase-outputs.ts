import { PkeError } from '../core/errors.ts';

/**
 * What phases hand to later phases (and to later runs: the journal keeps it). Defined below the
 * phases, so that the logic they call (kubeadm configs, keepalived) can take these values
 * without knowing the phases. The phase named by a key is its one writer.
 */
export interface PhaseOutputs {
  register?: RegisterOutput;
  elect?: ElectOutput;
  'signal-joined'?: SignalJoinedOutput;
  [phase: string]: unknown;
}

/** What `register` learned about this node and told the controller. */
export interface RegisterOutput {
  nodeName: string;
  /** The IPv4 address on the VIP's network: API advertise address and keepalived source. */
  primaryIp: string;
  /** The interface that carries primaryIp (and the VIP on control-plane nodes). */
  interface: string;
  ips: string[];
  /** The VM's BIOS UUID, as vSphere knows it (the kubelet's providerID with an external cloud provider). */
  biosUuid?: string;
}

/** The election's outcome. Workers do not take part: `leader` is false and `epoch` absent. */
export interface ElectOutput {
  leader: boolean;
  /** The lease epoch this node holds, when it is the leader. */
  epoch?: number;
}

/** The controller took this node's joined report: on the leader, the cluster is initialized and its lease no longer ends. */
export interface SignalJoinedOutput {
  joinedAt: string;
}

/** This node as register recorded it, for a step that cannot go on without it (named in the error). */
export function registeredNode(outputs: PhaseOutputs, neededBy: string): RegisterOutput {
  if (!outputs.register) throw new PkeError(`${neededBy} needs the register output`);
  return outputs.register;
}

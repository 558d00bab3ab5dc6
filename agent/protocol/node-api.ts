import type {
  ClusterStatus,
  ControlPlaneView,
  EventsRequest,
  JoinGrant,
  JoinRequest,
  JoinedRequest,
  LeaderClaimRequest,
  LeaderClaimResponse,
  LeaderState,
  NodeStatus,
  PkiBundle,
  ReadyRequest,
  RegisterRequest,
  VsphereCredentials,
} from './api.ts';

/**
 * What a node asks of the controller, as the phases see it. The HTTPS client implements it;
 * the cluster and node names come from the node's config and token, not from each call.
 */
export interface NodeApi {
  /** Registers this node; answers with the node as `status` shows it. */
  register(request: RegisterRequest): Promise<NodeStatus>;
  claimLeader(request: LeaderClaimRequest): Promise<LeaderClaimResponse>;
  /**
   * The leader state; with `waitSeconds`, a long-poll that answers as soon as the state differs
   * from `known` (the cluster was initialized, or the lease changed), or when the wait ends.
   */
  leaderState(options?: { waitSeconds?: number; known?: { epoch: number; initialized: boolean } }): Promise<LeaderState>;
  pki(): Promise<PkiBundle>;
  /** The vCenter connection for the vSphere CPI and CSI; the lease holder only. */
  vsphere(): Promise<VsphereCredentials>;
  /** Long-polls up to `waitSeconds` for the cluster to be initialized and, on control plane, a join slot. */
  join(request: JoinRequest, options?: { waitSeconds?: number }): Promise<JoinGrant>;
  controlPlane(): Promise<ControlPlaneView>;
  events(request: EventsRequest): Promise<void>;
  /** This node is a cluster member; the leader hands over admin.conf, a control-plane node frees the join slot. */
  joined(request: JoinedRequest): Promise<void>;
  ready(request: ReadyRequest): Promise<void>;
  /** The cluster as the controller sees it: nodes, phases, leader, join slot. */
  status(): Promise<ClusterStatus>;
}

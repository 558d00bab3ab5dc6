import { z } from 'zod';
import { errorMessage } from '../../core/errors.ts';
import { ConnectionPool, request } from '../../net/https.ts';

/**
 * The cluster's etcd reached from the controller: its member list, each member's health and
 * leader, alarms, moving leadership, removing a member. Through etcd's JSON gateway (`/v3/...`
 * on every client URL, on by default) with a client certificate of the cluster's etcd CA,
 * which the controller made and keeps: no agent needs to run on a node, so a dead node's member
 * is removed from the survivors alike. kubeadm's etcd listens on each control-plane node's
 * address, port 2379; the controller must be able to reach it there.
 */

export interface EtcdMember {
  /** etcd's uint64 member id, as the gateway writes it (a decimal string). */
  id: string;
  /** kubeadm names a member after its node. */
  name: string;
  clientUrls: string[];
  peerUrls: string[];
  learner: boolean;
}

export interface EtcdMemberStatus {
  /** The member's view of the leader's id ('0': it knows no leader). */
  leaderId: string;
  /** Errors the member reports about itself (e.g. a NOSPACE alarm). */
  errors: string[];
}

export interface ClusterEtcd {
  /** The member list, from the first endpoint that answers. */
  members(): Promise<EtcdMember[]>;
  /** The member's own status; throws when it does not answer (within a few seconds). */
  status(member: EtcdMember): Promise<EtcdMemberStatus>;
  /** Active alarms (`NOSPACE`, `CORRUPT`) as `name: alarm`. */
  alarms(): Promise<string[]>;
  /** Hands leadership from `leader` (it must be the leader) to the member `targetId`. */
  moveLeader(leader: EtcdMember, targetId: string): Promise<void>;
  /** Removes a member; one that is gone already is fine. */
  removeMember(id: string): Promise<void>;
  close(): Promise<void>;
}

export class EtcdError extends Error {}

const REQUEST_TIMEOUT_MS = 5_000;
/** A member whose status takes longer is not counted as healthy. */
const STATUS_TIMEOUT_MS = 3_000;

const uint64 = z.union([z.string(), z.number()]).transform(String);
const memberListSchema = z.object({
  members: z
    .array(
      z.object({
        ID: uint64,
        name: z.string().optional(),
        peerURLs: z.array(z.string()).optional(),
        clientURLs: z.array(z.string()).optional(),
        isLearner: z.boolean().optional(),
      }),
    )
    .default([]),
});
const statusSchema = z.object({ leader: uint64.optional(), errors: z.array(z.string()).optional() });
const alarmSchema = z.object({ alarms: z.array(z.object({ memberID: uint64, alarm: z.string().optional() })).optional() });

export interface EtcdAccess {
  /** The etcd CA (PEM), the only CA trusted. */
  caPem: string;
  /** A client certificate and key of that CA. */
  certPem: string;
  keyPem: string;
  /** Client URLs to ask first (the control-plane nodes' `https://IP:2379`); members' own URLs after. */
  endpoints: string[];
}

export function httpsClusterEtcd(access: EtcdAccess): ClusterEtcd {
  const pool = new ConnectionPool({ ca: access.caPem, cert: access.certPem, key: access.keyPem, connections: 8 });
  let known: EtcdMember[] = [];

  const call = async <T>(base: string, method: string, body: unknown, schema: z.ZodType<T>, timeoutMs = REQUEST_TIMEOUT_MS): Promise<T> => {
    const url = `${base.replace(/\/$/, '')}/v3/${method}`;
    let answer;
    try {
      answer = await request(url, {
        pool,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        timeoutMs,
      });
    } catch (error) {
      throw new EtcdError(`etcd ${url}: ${errorMessage(error)}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(answer.text);
    } catch {
      json = undefined;
    }
    if (answer.statusCode !== 200) {
      const message = (json as { message?: unknown } | undefined)?.message;
      throw new EtcdError(
        `etcd ${url} answered ${answer.statusCode}: ${typeof message === 'string' ? message : answer.text.slice(0, 200)}`,
      );
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new EtcdError(`etcd ${url} answered an unexpected shape: ${parsed.error.message.slice(0, 200)}`);
    return parsed.data;
  };

  /** Tries each endpoint (the seeds, then what the last member list named) until one answers. */
  const anyMember = async <T>(what: (base: string) => Promise<T>): Promise<T> => {
    const endpoints = [...new Set([...access.endpoints, ...known.flatMap((m) => m.clientUrls)])];
    const failures: string[] = [];
    for (const base of endpoints) {
      try {
        return await what(base);
      } catch (error) {
        failures.push(errorMessage(error));
      }
    }
    throw new EtcdError(`no etcd member answered (${failures.join('; ') || 'no endpoints'})`);
  };

  return {
    members: async () => {
      const list = await anyMember((base) => call(base, 'cluster/member/list', {}, memberListSchema));
      known = list.members.map((m) => ({
        id: m.ID,
        name: m.name ?? '',
        clientUrls: m.clientURLs ?? [],
        peerUrls: m.peerURLs ?? [],
        learner: m.isLearner ?? false,
      }));
      return known;
    },
    status: async (member) => {
      const failures: string[] = [];
      for (const base of member.clientUrls) {
        try {
          const status = await call(base, 'maintenance/status', {}, statusSchema, STATUS_TIMEOUT_MS);
          return { leaderId: status.leader ?? '0', errors: status.errors ?? [] };
        } catch (error) {
          failures.push(errorMessage(error));
        }
      }
      throw new EtcdError(`etcd member ${member.name} does not answer (${failures.join('; ') || 'it has no client URL'})`);
    },
    alarms: async () => {
      const answer = await anyMember((base) => call(base, 'maintenance/alarm', { action: 'GET' }, alarmSchema));
      return (answer.alarms ?? [])
        .filter((a) => a.alarm !== undefined && a.alarm !== 'NONE')
        .map((a) => `${known.find((m) => m.id === a.memberID)?.name ?? a.memberID}: ${a.alarm}`);
    },
    moveLeader: async (leader, targetId) => {
      const failures: string[] = [];
      for (const base of leader.clientUrls) {
        try {
          await call(base, 'maintenance/transfer-leadership', { targetID: targetId }, z.unknown(), 15_000);
          return;
        } catch (error) {
          failures.push(errorMessage(error));
        }
      }
      throw new EtcdError(`moving etcd leadership from ${leader.name} failed: ${failures.join('; ')}`);
    },
    removeMember: async (id) => {
      try {
        await anyMember((base) => call(base, 'cluster/member/remove', { ID: id }, z.unknown()));
      } catch (error) {
        // etcd answers "member not found" for a member removed already.
        if (/member not found/i.test(errorMessage(error))) return;
        throw error;
      }
    },
    close: () => pool.close(),
  };
}

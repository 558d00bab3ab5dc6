import { PkeError } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import { request, requestErrorDetail } from '../net/https.ts';
import { kubeApiConnection, statusMessage } from './api-client.ts';
import { KubeconfigError, loadKubeconfig } from './kubeconfig.ts';

export interface NodeReadyAnswer {
  ready: boolean;
  /** `Ready=` the condition's status (`True`, `False`, `Unknown`), or what the API answered instead. */
  detail: string;
  /** The kubelet's version as the Node reports it (`status.nodeInfo.kubeletVersion`), once registered. */
  kubeletVersion?: string;
}

export interface NodeReadiness {
  /** A node not registered yet (404) and an API that does not answer are answers, not failures. */
  check(nodeName: string): Promise<NodeReadyAnswer>;
  close(): Promise<void>;
}

const REQUEST_TIMEOUT_MS = 5_000;

/**
 * A Node's Ready condition straight from the API (`GET /api/v1/nodes/NAME`), with the server
 * and credentials of a kubeconfig on the node (a node path): what `kubectl get node` shows,
 * without starting kubectl at every poll. Every check goes over one kept-alive connection.
 */
export async function nodeReadiness(host: Host, kubeconfig: string): Promise<NodeReadiness> {
  let access;
  try {
    access = await loadKubeconfig(kubeconfig, (file) => host.readText(file));
  } catch (error) {
    if (error instanceof KubeconfigError) throw new PkeError(error.message, { context: { path: kubeconfig }, cause: error });
    throw error;
  }
  const { pool, headers } = kubeApiConnection(access);
  return {
    async check(nodeName) {
      const url = `${access.server}/api/v1/nodes/${encodeURIComponent(nodeName)}`;
      let answer;
      try {
        answer = await request(url, { pool, headers, timeoutMs: REQUEST_TIMEOUT_MS });
      } catch (error) {
        return { ready: false, detail: `GET ${url}: ${requestErrorDetail(error)}` };
      }
      const { text } = answer;
      if (answer.statusCode !== 200) return { ready: false, detail: `HTTP ${answer.statusCode}: ${statusMessage(text)}` };
      const { ready: status, kubeletVersion } = readyStatus(text);
      return { ready: status === 'True', detail: `Ready=${status ?? '(no condition yet)'}`, kubeletVersion };
    },
    close: () => pool.close(),
  };
}

function readyStatus(text: string): { ready?: string; kubeletVersion?: string } {
  try {
    const node = JSON.parse(text) as {
      status?: { conditions?: { type?: unknown; status?: unknown }[]; nodeInfo?: { kubeletVersion?: unknown } };
    };
    const status = node.status?.conditions?.find((condition) => condition.type === 'Ready')?.status;
    const version = node.status?.nodeInfo?.kubeletVersion;
    return { ready: typeof status === 'string' ? status : undefined, kubeletVersion: typeof version === 'string' ? version : undefined };
  } catch {
    return {};
  }
}

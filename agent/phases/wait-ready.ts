import { setTimeout as sleep } from 'node:timers/promises';
import { PkeError } from '../core/errors.ts';
import { probeHttps } from '../net/https-probe.ts';
import { nodeReadiness } from '../kube/node-ready.ts';
import { ADMIN_KUBECONFIG, CLUSTER_CA_CERT, KUBELET_KUBECONFIG } from '../kube/paths.ts';
import type { Phase } from './phase.ts';

export interface WaitReadyOptions {
  timeoutMs?: number;
  initialIntervalMs?: number;
  maxIntervalMs?: number;
}

export interface WaitReadyOutput {
  endpoint: string;
  readyAfterMs: number;
}

const DEFAULTS: Required<WaitReadyOptions> = { timeoutMs: 5 * 60_000, initialIntervalMs: 200, maxIntervalMs: 500 };

interface Answer {
  ok: boolean;
  detail: string;
}

/**
 * Waits, within one deadline, for the API server behind the VIP to be live and ready (TLS
 * verified against the cluster CA) and for this node to be Ready. Polls start quick and back
 * off to a short cap, so a node that is ready is seen within a second or two.
 */
export function createWaitReadyPhase(options: WaitReadyOptions = {}): Phase<WaitReadyOutput> {
  const settings = { ...DEFAULTS, ...options };
  return {
    name: 'wait-ready',
    summary: 'The API server answers /livez and /readyz through the VIP and this node is Ready',
    needs: ['register', 'kube-init', 'kube-join', 'vip', 'addons'],
    run: async ({ config, host, outputs, signal }) => {
      const started = Date.now();
      const deadline = started + settings.timeoutMs;
      const nodeName = outputs.register?.nodeName;
      if (!nodeName) throw new PkeError('wait-ready needs the register output');
      const endpoint = `https://${config.controlPlaneEndpoint.vip}:${config.controlPlaneEndpoint.port}`;
      const ca = await host.readText(CLUSTER_CA_CERT);
      if (!ca)
        throw new PkeError(`${CLUSTER_CA_CERT} is missing: kubeadm writes it on init and join`, { context: { path: CLUSTER_CA_CERT } });
      const kubeconfig = config.role === 'master' ? ADMIN_KUBECONFIG : KUBELET_KUBECONFIG;

      const waitFor = async (what: string, url: string | undefined, check: () => Promise<Answer>) => {
        let interval = settings.initialIntervalMs;
        for (;;) {
          signal.throwIfAborted();
          const answer = await check();
          if (answer.ok) return;
          if (Date.now() + interval > deadline) {
            throw new PkeError(
              `timed out after ${Math.round((Date.now() - started) / 1000)} s waiting for ${what}; last answer: ${answer.detail}`,
              { context: url ? { url } : {} },
            );
          }
          await sleep(interval, undefined, { signal });
          interval = Math.min(settings.maxIntervalMs, Math.round(interval * 1.5));
        }
      };
      const health = (path: string) => async (): Promise<Answer> => {
        const answer = await probeHttps(`${endpoint}${path}`, { ca, timeoutMs: 2_000 });
        return { ok: answer.ok, detail: answer.status === undefined ? answer.detail : `HTTP ${answer.status} ${answer.detail}`.trim() };
      };
      await waitFor(`the API server to be live at ${endpoint}/livez`, `${endpoint}/livez`, health('/livez'));
      await waitFor(`the API server to be ready at ${endpoint}/readyz`, `${endpoint}/readyz`, health('/readyz'));
      const readiness = await nodeReadiness(host, kubeconfig);
      try {
        await waitFor(`node ${nodeName} to be Ready`, undefined, async () => {
          const answer = await readiness.check(nodeName);
          return { ok: answer.ready, detail: answer.detail };
        });
      } finally {
        await readiness.close();
      }
      return { endpoint, readyAfterMs: Date.now() - started };
    },
  };
}

export const waitReadyPhase = createWaitReadyPhase();

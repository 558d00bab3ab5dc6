import { PkeError } from '../core/errors.ts';
import { kubeadmApiVersion, renderInitConfig, type KubeadmApiVersion } from '../kube/kubeadm-config.ts';
import { forgetInitStarted, initDoneEvidence, markInitDone, markInitStarted, resetUnfinishedInit } from '../kube/init-marker.ts';
import { failedInPreflight, isTransientKubeadmError, kubeadmInit } from '../kube/kubeadm.ts';
import { KUBEADM_INIT_CONFIG } from '../kube/paths.ts';
import { applyKeepalived } from '../vip/apply-keepalived.ts';
import { LEADER_ONLY, type Phase } from './phase.ts';

export interface KubeInitOutput {
  kubernetesVersion: string;
  kubeadmApiVersion: KubeadmApiVersion;
}

/** kubeadm init takes minutes; a token that ends sooner would fail the first joins. */
const MIN_TOKEN_TTL_SECONDS = 30 * 60;

/**
 * `kubeadm init` on the elected leader, exactly once per node. Its marker files say what this
 * node began: a retry after a failed init first runs `kubeadm reset -f`, but only when the
 * init-started marker shows that this node's own init left the files behind.
 */
export const kubeInitPhase: Phase<KubeInitOutput> = {
  name: 'kube-init',
  summary: 'kubeadm init on the leader: the first control-plane node, behind the VIP',
  needs: ['register', 'elect', 'certs', 'host-prep'],
  ...LEADER_ONLY,
  isDone: async ({ host }) => (await initDoneEvidence(host)) !== undefined,
  retry: { attempts: 2, initialDelayMs: 10_000, maxDelayMs: 10_000, retryable: isTransientKubeadmError },
  run: async (ctx) => {
    const { config, host, log, controller, outputs } = ctx;
    const output = { kubernetesVersion: config.kubernetes.version, kubeadmApiVersion: kubeadmApiVersion(config.kubernetes.version) };
    const evidence = await initDoneEvidence(host);
    if (evidence) {
      log.info('kube-init.already-done', { evidence });
      return output;
    }
    const node = outputs.register;
    const epoch = outputs.elect?.epoch;
    if (!node || epoch === undefined) throw new PkeError('kube-init needs the register output and the leader epoch from elect');

    await resetUnfinishedInit(host, log, 'an earlier kubeadm init on this node did not finish');

    // Normally here since the election: the claim answer carried it.
    const grant = ctx.lease.initGrant(epoch) ?? (await controller.join({ epoch }));
    if (grant.mode !== 'init')
      throw new PkeError(`the controller answered the leader (epoch ${epoch}) with ${grant.mode} material instead of init`);
    const ttlSeconds = (Date.parse(grant.tokenExpiresAt) - Date.now()) / 1000;
    if (!(ttlSeconds >= MIN_TOKEN_TTL_SECONDS)) {
      throw new PkeError(
        `the init grant's bootstrap token expires at ${grant.tokenExpiresAt}, too soon to cover kubeadm init and the first joins`,
      );
    }
    await host.writeFile(KUBEADM_INIT_CONFIG, renderInitConfig({ config, node, bootstrapToken: { token: grant.token, ttlSeconds } }), {
      mode: 0o600,
    });

    await markInitStarted(host, epoch);
    // kubeadm's kubeconfigs and the kubelet talk to the VIP, but only once the control plane's
    // static pods run, well into the init: keepalived starts while kubeadm begins, and takes the
    // VIP at once. If it cannot start, the init is stopped and undone. An end of the run (the
    // lease lost, SIGTERM) stops the init too: it would go on for a leader this node may no
    // longer be, and its marker tells the next run to reset it.
    const stopInit = new AbortController();
    const init = kubeadmInit(host, KUBEADM_INIT_CONFIG, log, AbortSignal.any([ctx.signal, stopInit.signal]));
    init.catch(() => undefined);
    try {
      const view = await controller.controlPlane();
      await applyKeepalived(host, log, { endpoint: config.controlPlaneEndpoint, node, isLeader: true, view, beforeInit: true });
    } catch (error) {
      stopInit.abort();
      await init.catch(() => undefined);
      await resetUnfinishedInit(host, log, 'keepalived did not start, so the init was stopped');
      throw error;
    }
    try {
      await init;
    } catch (error) {
      if (failedInPreflight(error)) await forgetInitStarted(host);
      throw ctx.signal.aborted ? ctx.signal.reason : error;
    }
    await markInitDone(host, epoch);
    return output;
  },
};

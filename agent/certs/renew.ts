import { z } from 'zod';
import { PkeError, errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { STATE_DIR } from '../core/state-paths.ts';
import type { Host } from '../host/host.ts';
import { acquireBootstrapLock } from '../journal/lock.ts';
import { ADMIN_KUBECONFIG } from '../kube/paths.ts';
import { CONTROL_PLANE_PODS, restartStaticPod, resumePausedManifests, waitForEndpoint } from '../kube/static-pods.ts';
import type { CertificatesReport, EventsRequest, RenewalClaim } from '../protocol/api.ts';
import { daysLeft, readLeafCertificates, soonest, type LeafExpiry } from './expiry.ts';

/**
 * `pke-agent certs renew`: `kubeadm certs renew all`, then a restart of each static pod (one at a
 * time, each waited out until it serves again), journaled step by step in
 * /var/lib/pke-agent/certs-renewal.json so that a run stopped anywhere resumes where it stopped
 * (a manifest it had moved out is put back first) and never renews twice for one restart. The
 * image's timer runs it hourly; it renews only when the soonest leaf certificate expires within
 * `withinDays` (or with `force`). Before it renews, it asks the controller for the cluster's one
 * renewal claim, so that no two control-plane nodes restart their etcd and API server at the same
 * time; a node refused the claim renews on its next run. The run and the expiry dates after it are
 * reported to the controller (which ends the claim); a controller that cannot be reached does not
 * stop a renewal: it goes on without a claim.
 */

export const RENEWAL_JOURNAL = `${STATE_DIR}/certs-renewal.json`;
/** The phase name renewal reports carry (controller status shows it as the node's last step). */
export const RENEW_PHASE = 'certs-renew';
const RENEW_TIMEOUT_MS = 5 * 60_000;

const renewalSchema = z.object({
  startedAt: z.string(),
  before: z.array(z.object({ name: z.string(), notAfter: z.string() })),
  renewedAt: z.string().optional(),
  restarted: z.array(z.string()),
  finishedAt: z.string().optional(),
});
type Renewal = z.infer<typeof renewalSchema>;

/** What the controller hears of certificates (the run's steps and the expiry dates), and whom it lets renew now. */
export interface CertificatesReporter {
  events(request: EventsRequest): Promise<void>;
  reportCertificates(report: CertificatesReport): Promise<void>;
  claimRenewal(): Promise<RenewalClaim>;
}

export type RenewResult =
  | { renewed: false; reason: string; expiries: LeafExpiry[] }
  | { renewed: true; renewedAt: string; before: Renewal['before']; expiries: LeafExpiry[] };

export async function renewCertificates(options: {
  host: Host;
  log: Logger;
  withinDays: number;
  force: boolean;
  /** The cluster's endpoint (VIP and port), which must answer again before the run is done. */
  endpoint: { vip: string; port: number };
  reporter?: CertificatesReporter;
  now?: () => Date;
  signal?: AbortSignal;
}): Promise<RenewResult> {
  const { host, log } = options;
  const now = options.now ?? (() => new Date());
  const unlock = await acquireBootstrapLock(host);
  try {
    await resumePausedManifests(host, log);
    let renewal = await readRenewal(host);
    if (renewal?.finishedAt === undefined && renewal !== undefined) {
      log.warn('certs.renew.resume', {
        startedAt: renewal.startedAt,
        renewedAt: renewal.renewedAt,
        restarted: renewal.restarted.join(','),
      });
    } else {
      const expiries = await readLeafCertificates(host);
      const first = soonest(expiries);
      if (first === undefined) throw new PkeError('no kubeadm leaf certificates on this node: certs renew is for control-plane nodes');
      if (!options.force && daysLeft(first, now()) > options.withinDays) {
        const reason = `the soonest certificate, ${first.name}, expires in ${daysLeft(first, now())} days, more than ${options.withinDays}`;
        await report(options.reporter, log, expiries, now, undefined);
        return { renewed: false, reason, expiries };
      }
      // Asked once the renewal is due, also when forced: an operator's renewal should not collide either.
      const refusal = await askForClaim(options.reporter, log);
      if (refusal !== undefined) {
        await report(options.reporter, log, expiries, now, undefined);
        return { renewed: false, reason: refusal, expiries };
      }
      renewal = {
        startedAt: now().toISOString(),
        before: expiries.map((e) => ({ name: e.name, notAfter: e.notAfter.toISOString() })),
        restarted: [],
      };
      await writeRenewal(host, renewal);
    }
    const attempt = 1;
    await event(options.reporter, log, { phase: RENEW_PHASE, type: 'start', at: now().toISOString(), attempt });
    try {
      renewal = await carryOut(host, log, renewal, now, options.signal);
      await waitForEndpoint(host, options.endpoint, log, options.signal);
    } catch (error) {
      await event(options.reporter, log, {
        phase: RENEW_PHASE,
        type: 'fail',
        at: now().toISOString(),
        attempt,
        message: errorMessage(error).slice(0, 4096),
        command: error instanceof PkeError ? error.context.command?.slice(0, 4096) : undefined,
        exitCode: error instanceof PkeError ? error.context.exitCode : undefined,
      });
      throw error;
    }
    const expiries = await readLeafCertificates(host);
    await event(options.reporter, log, { phase: RENEW_PHASE, type: 'end', at: now().toISOString(), attempt });
    await report(options.reporter, log, expiries, now, renewal.renewedAt, () => host.readText(ADMIN_KUBECONFIG));
    return { renewed: true, renewedAt: renewal.renewedAt!, before: renewal.before, expiries };
  } finally {
    await unlock();
  }
}

/**
 * Asks the controller for the cluster's renewal claim. Returns why this node does not renew now
 * when another node holds it; undefined when this node may go on: it got the claim, or no answer
 * came (no controller, a 5xx, a controller that does not know the route), since certificates must
 * not expire because the controller is down.
 */
async function askForClaim(reporter: CertificatesReporter | undefined, log: Logger): Promise<string | undefined> {
  if (!reporter) return undefined;
  let claim: RenewalClaim;
  try {
    claim = await reporter.claimRenewal();
  } catch (error) {
    log.warn('certs.renew.unclaimed', { note: 'no answer from the controller: renewing without the claim', error: errorMessage(error) });
    return undefined;
  }
  if (claim.granted) {
    log.info('certs.renew.claimed', { until: claim.expiresAt });
    return undefined;
  }
  return `control-plane node ${claim.holder} is renewing until ${claim.expiresAt}; this node renews on its next run`;
}

/** The steps not yet done: renew, then each static pod in turn; the journal is written after each. */
async function carryOut(host: Host, log: Logger, start: Renewal, now: () => Date, signal?: AbortSignal): Promise<Renewal> {
  let renewal = start;
  if (renewal.renewedAt === undefined) {
    log.info('certs.renewing', { command: 'kubeadm certs renew all' });
    await host.run('kubeadm', ['certs', 'renew', 'all'], {
      timeoutMs: RENEW_TIMEOUT_MS,
      signal,
      onLine: (_, line) => log.debug('kubeadm.output', { line }),
    });
    renewal = { ...renewal, renewedAt: now().toISOString() };
    await writeRenewal(host, renewal);
    await assertRenewed(host, renewal);
  }
  for (const pod of CONTROL_PLANE_PODS) {
    if (renewal.restarted.includes(pod.name)) continue;
    await restartStaticPod(host, pod, log, signal);
    renewal = { ...renewal, restarted: [...renewal.restarted, pod.name] };
    await writeRenewal(host, renewal);
  }
  renewal = { ...renewal, finishedAt: now().toISOString() };
  await writeRenewal(host, renewal);
  log.info('certs.renewed', { renewedAt: renewal.renewedAt, restarted: renewal.restarted.join(',') });
  return renewal;
}

/** Every certificate that was there before lasts longer now: kubeadm renewed them all. */
async function assertRenewed(host: Host, renewal: Renewal): Promise<void> {
  const after = new Map((await readLeafCertificates(host)).map((e) => [e.name, e.notAfter.getTime()]));
  const stale = renewal.before.filter((b) => (after.get(b.name as LeafExpiry['name']) ?? 0) <= Date.parse(b.notAfter));
  if (stale.length > 0) {
    throw new PkeError(`kubeadm certs renew all left ${stale.map((s) => s.name).join(', ')} with the expiry it had`);
  }
}

async function report(
  reporter: CertificatesReporter | undefined,
  log: Logger,
  expiries: LeafExpiry[],
  now: () => Date,
  renewedAt: string | undefined,
  adminKubeconfig: () => Promise<string | undefined> = async () => undefined,
): Promise<void> {
  if (!reporter || expiries.length === 0) return;
  try {
    await reporter.reportCertificates({
      checkedAt: now().toISOString(),
      renewedAt,
      certificates: expiries.map((e) => ({ name: e.name, notAfter: e.notAfter.toISOString() })),
      // The controller keeps an admin.conf of its own (for join tokens): it takes this one if it outlives that.
      adminKubeconfig: renewedAt === undefined ? undefined : await adminKubeconfig(),
    });
  } catch (error) {
    log.warn('certs.report-failed', { error: errorMessage(error) });
  }
}

async function event(reporter: CertificatesReporter | undefined, log: Logger, e: EventsRequest['events'][number]): Promise<void> {
  if (!reporter) return;
  try {
    await reporter.events({ events: [e] });
  } catch (error) {
    log.warn('certs.report-failed', { error: errorMessage(error) });
  }
}

async function readRenewal(host: Host): Promise<Renewal | undefined> {
  const text = await host.readText(RENEWAL_JOURNAL);
  if (text === undefined) return undefined;
  const parsed = renewalSchema.safeParse(safeJson(text));
  if (!parsed.success) throw new PkeError(`${host.file(RENEWAL_JOURNAL)} is corrupt; move it aside to start a renewal afresh`);
  return parsed.data;
}

async function writeRenewal(host: Host, renewal: Renewal): Promise<void> {
  await host.writeFile(RENEWAL_JOURNAL, `${JSON.stringify(renewal, null, 2)}\n`, { mode: 0o600 });
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

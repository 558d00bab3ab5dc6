import { CommandError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Host } from '../host/host.ts';
import { PKI_FILES } from '../protocol/api.ts';
import { PKI_DIR } from './paths.ts';

/**
 * kubeadm, run through the host: output streamed to the log line by line, bootstrap tokens and
 * certificate keys masked in the log and in errors.
 */

const INIT_TIMEOUT_MS = 15 * 60_000;
const JOIN_TIMEOUT_MS = 15 * 60_000;
const RESET_TIMEOUT_MS = 3 * 60_000;

/** `kubeadm init --config FILE`; the join command kubeadm prints at the end is withheld. Aborting `signal` stops it. */
export async function kubeadmInit(host: Host, configPath: string, log: Logger, signal?: AbortSignal): Promise<void> {
  await runKubeadm(host, ['init', '--config', configPath, '--skip-token-print'], log, INIT_TIMEOUT_MS, signal);
}

/** `kubeadm join --config FILE`. Aborting `signal` stops it. */
export async function kubeadmJoin(host: Host, configPath: string, log: Logger, signal?: AbortSignal): Promise<void> {
  await runKubeadm(host, ['join', '--config', configPath], log, JOIN_TIMEOUT_MS, signal);
}

/**
 * Undoes a half-done init or join: static pods, kubeconfigs, local etcd data, and everything in
 * /etc/kubernetes/pki. On control-plane nodes the cluster's shared CAs and service-account keys
 * are put back afterwards: kubeadm would otherwise make a new CA on the next init, or fail the
 * next control-plane join for want of one.
 */
export async function kubeadmReset(host: Host, log: Logger, options: { keepSharedPki: boolean }): Promise<void> {
  const kept = new Map<string, { data: Buffer; mode: number }>();
  if (options.keepSharedPki) {
    for (const name of PKI_FILES) {
      const file = `${PKI_DIR}/${name}`;
      const data = await host.readBytes(file);
      if (data) kept.set(file, { data, mode: (await host.fileMode(file)) ?? 0o600 });
    }
  }
  await runKubeadm(host, ['reset', '-f'], log, RESET_TIMEOUT_MS);
  for (const [file, { data, mode }] of kept) await host.writeFile(file, data, { mode });
  if (kept.size > 0) log.info('kubeadm.reset-kept-shared-pki', { files: kept.size });
}

/** kubeadm's preflight checks change nothing: a failure there leaves nothing to reset. */
export function failedInPreflight(error: unknown): boolean {
  return error instanceof CommandError && /error execution phase preflight/.test(`${error.context.stderrTail ?? ''}`);
}

async function runKubeadm(host: Host, args: string[], log: Logger, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const configIndex = args.indexOf('--config') + 1;
  // Node paths read better than the root-prefixed ones the command is given.
  const command = configIndex > 0 ? args.map((arg, i) => (i === configIndex ? host.file(arg) : arg)) : args;
  const kubeadmLog = log.child({ command: `kubeadm ${args[0]}` });
  try {
    await host.run('kubeadm', command, {
      timeoutMs,
      signal,
      displayArgs: args,
      onLine: (stream, line) => kubeadmLog.info('kubeadm.output', { stream, line: maskSecrets(line) }),
    });
  } catch (error) {
    throw explained(error);
  }
}

const BOOTSTRAP_TOKEN = /\b[a-z0-9]{6}\.[a-z0-9]{16}\b/g;
const CERTIFICATE_KEY = /(--certificate-key[= ])[a-f0-9]{64}\b/g;

/** Replaces bootstrap tokens and certificate keys in a line of kubeadm output. */
export function maskSecrets(text: string): string {
  return text.replace(BOOTSTRAP_TOKEN, '[token withheld]').replace(CERTIFICATE_KEY, '$1[key withheld]');
}

/** A failed preflight check as kubeadm lists it, e.g. `[ERROR ImagePull]: failed to pull image ...`. */
const PREFLIGHT_ERROR = /^\[ERROR [^\]]+\]:/;
const SHOWN_CHECK_CHARS = 400;
/** kubeadm's image preflight, in its output and in the message that names the first failed check. */
const IMAGE_PULL_FAILURE = /\[ERROR ImagePull\]/;

/**
 * kubeadm ends every failure with a hint about --v=5; the line worth showing is the one that
 * names the phase and the cause, and for a preflight failure the first check that failed (newer
 * kubeadm lists them above and ends with only "preflight checks failed").
 */
function explained(error: unknown): unknown {
  if (!(error instanceof CommandError)) return error;
  const tail = maskSecrets(error.context.stderrTail ?? '');
  error.context.stderrTail = tail;
  const lines = tail
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !/^To see the stack trace of this error/.test(line));
  const reason = lines.findLast((line) => /^(error: )?error execution phase/.test(line)) ?? lines.at(-1);
  const checks = lines.filter((line) => PREFLIGHT_ERROR.test(line));
  const firstCheck =
    checks[0] === undefined
      ? ''
      : `: ${checks[0].slice(0, SHOWN_CHECK_CHARS)}${checks[0].length > SHOWN_CHECK_CHARS ? '...' : ''}${checks.length > 1 ? ` (and ${checks.length - 1} more)` : ''}`;
  error.message = maskSecrets(
    error.context.exitCode !== undefined && reason
      ? `${error.context.command} exited ${error.context.exitCode}: ${reason}${firstCheck}`
      : error.message,
  );
  return error;
}

/**
 * Failures a later attempt can get past: the API or etcd not answering yet, etcd's one-learner
 * limit while another control-plane node joins, a leader election inside etcd, a token the
 * cluster has not signed into cluster-info yet.
 */
const TRANSIENT = [
  /connection refused/i,
  /connection reset by peer/i,
  /no route to host/i,
  /i\/o timeout/i,
  /TLS handshake timeout/i,
  /context deadline exceeded/i,
  /timed out/i,
  /unexpected EOF/i,
  /too many learner members in cluster/i,
  /etcdserver: leader changed/i,
  /etcdserver: no leader/i,
  /etcdserver: request timed out/i,
  // The token is not (or no longer) signed into cluster-info: kubeadm polls until its discovery timeout, then says so.
  /could not find a JWS signature in the cluster-info ConfigMap/i,
];

export function isTransientKubeadmError(error: unknown): boolean {
  if (!(error instanceof CommandError)) return false;
  const text = `${error.message}\n${error.context.stderrTail ?? ''}`;
  // A preflight that failed only on image pulls reads like a network blip (its "connection
  // refused" is the DNS resolver's where no registry is reachable), but another attempt meets
  // the same missing images.
  const checks = text.split('\n').filter((line) => PREFLIGHT_ERROR.test(line.trim()));
  if (checks.length > 0 && checks.every((line) => IMAGE_PULL_FAILURE.test(line))) return false;
  return TRANSIENT.some((pattern) => pattern.test(text));
}

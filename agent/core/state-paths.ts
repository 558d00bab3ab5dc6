/**
 * The agent's own files on a node (paths below the host root), all in one directory that only
 * root can read: the saved config and the journal carry what later runs need.
 */

export const STATE_DIR = '/var/lib/pke-agent';

/** The validated config, kept for reruns, since guestinfo is redacted after the first read. */
export const SAVED_CONFIG_PATH = `${STATE_DIR}/config.json`;
export const JOURNAL_PATH = `${STATE_DIR}/journal.json`;
/** Phase reports the controller has not taken yet. */
export const OUTBOX_PATH = `${STATE_DIR}/outbox.json`;
/** Held by the one agent run that may change the node (a bootstrap or `vip sync`). */
export const LOCK_PATH = `${STATE_DIR}/bootstrap.lock`;

/**
 * Evidence on disk of what this node itself started: kube-init and kube-join reset only what
 * their own marker shows they began, never files someone else left.
 */
export const INIT_STARTED_MARKER = `${STATE_DIR}/init-started`;
export const INIT_DONE_MARKER = `${STATE_DIR}/init-done`;
export const JOIN_STARTED_MARKER = `${STATE_DIR}/join-started`;

/** The journal of the upgrade to one Kubernetes version (`pke-agent upgrade`): a later upgrade starts its own. */
export function upgradeJournalPath(version: string): string {
  return `${STATE_DIR}/upgrade-v${version.replace(/^v/, '')}.json`;
}

import { X509Certificate } from 'node:crypto';
import { summarizeConfig, type ConfigSummary } from '../config/summary.ts';
import { parseConfig } from '../config/load.ts';
import type { AgentConfig } from '../config/schema.ts';
import { errorMessage } from '../core/errors.ts';
import { SAVED_CONFIG_PATH } from '../core/state-paths.ts';
import type { Host } from '../host/host.ts';
import { Journal, phaseOutputs, type PhaseRecord } from '../journal/journal.ts';
import { ADMIN_KUBECONFIG, CLUSTER_CA_CERT, KUBEADM_INIT_CONFIG, KUBEADM_JOIN_CONFIG, KUBELET_KUBECONFIG, PKI_DIR } from '../kube/paths.ts';
import { probeHttps, type ProbeResult } from '../net/https-probe.ts';
import { gatherFacts, type NodeFacts } from '../node/facts.ts';
import type { Phase } from '../phases/phase.ts';
import { PKI_FILES } from '../protocol/api.ts';
import { KEEPALIVED_CONFIG } from '../vip/keepalived.ts';
import { daysLeft, expiryWarnings, readLeafCertificates } from '../certs/expiry.ts';

/** Files whose presence tells how far a node got; certificates also show their expiry. */
const KEY_FILES = [
  SAVED_CONFIG_PATH,
  ...PKI_FILES.map((name) => `${PKI_DIR}/${name}`),
  `${PKI_DIR}/apiserver.crt`,
  ADMIN_KUBECONFIG,
  KUBELET_KUBECONFIG,
  KUBEADM_INIT_CONFIG,
  KUBEADM_JOIN_CONFIG,
  KEEPALIVED_CONFIG,
];

export interface PhaseRow {
  name: string;
  summary: string;
  state: PhaseRecord['state'];
  attempts: number;
  startedAt?: string;
  durationMs?: number;
  note?: string;
  error?: PhaseRecord['lastError'];
}

export interface FileRow {
  path: string;
  exists: boolean;
  mode?: string;
  /** For certificates: the notAfter date. */
  expires?: string;
}

export interface StatusReport {
  bootstrapped: boolean;
  journalUpdatedAt?: string;
  phases: PhaseRow[];
  facts: NodeFacts;
  config?: ConfigSummary;
  configProblem?: string;
  vipHere?: boolean;
  files: FileRow[];
  probes?: Record<string, ProbeResult>;
  /** kubeadm's leaf certificates on a control-plane node (`pke-agent certs check`), and what is expiring. */
  certificates?: { name: string; notAfter: string; daysLeft: number }[];
  warnings?: string[];
}

export async function collectStatus(host: Host, phases: readonly Phase[], options: { probe: boolean }): Promise<StatusReport> {
  const [journal, facts, files, saved] = await Promise.all([
    Journal.read(host),
    gatherFacts(host),
    Promise.all(KEY_FILES.map((path) => fileRow(host, path))),
    host.readText(SAVED_CONFIG_PATH),
  ]);

  let config: AgentConfig | undefined;
  let configProblem: string | undefined;
  if (saved === undefined) configProblem = `no saved config at ${SAVED_CONFIG_PATH}: bootstrap has not read one yet`;
  else {
    try {
      config = parseConfig(`saved config ${SAVED_CONFIG_PATH}`, saved);
    } catch (error) {
      configProblem = errorMessage(error);
    }
  }

  const rows: PhaseRow[] = phases.map((phase) => {
    const record = journal?.phases[phase.name];
    const started = record?.startedAt ? Date.parse(record.startedAt) : undefined;
    const ended = record?.endedAt ? Date.parse(record.endedAt) : undefined;
    return {
      name: phase.name,
      summary: phase.summary,
      state: record?.state ?? 'pending',
      attempts: record?.attempts ?? 0,
      startedAt: record?.startedAt,
      durationMs: started !== undefined && ended !== undefined && ended >= started ? ended - started : undefined,
      note: record?.note,
      error: record?.lastError,
    };
  });

  const vip = config?.controlPlaneEndpoint.vip;
  const report: StatusReport = {
    bootstrapped: journal !== undefined,
    journalUpdatedAt: journal?.updatedAt,
    phases: rows,
    facts,
    config: config ? summarizeConfig(config) : undefined,
    configProblem,
    vipHere: vip ? facts.interfaces.some((i) => i.ipv4.some((cidr) => cidr.split('/')[0] === vip)) : undefined,
    files,
  };
  await addCertificates(host, report);
  if (options.probe && config) {
    const register = journal ? phaseOutputs(journal).register : undefined;
    report.probes = await runProbes(host, config, register?.primaryIp);
  }
  return report;
}

async function addCertificates(host: Host, report: StatusReport): Promise<void> {
  const now = new Date();
  try {
    const expiries = await readLeafCertificates(host);
    if (expiries.length === 0) return;
    report.certificates = expiries.map((e) => ({ name: e.name, notAfter: e.notAfter.toISOString(), daysLeft: daysLeft(e, now) }));
    report.warnings = expiryWarnings(expiries, now);
  } catch (error) {
    report.warnings = [`certificates: ${errorMessage(error)}`];
  }
}

async function runProbes(host: Host, config: AgentConfig, advertiseAddress: string | undefined): Promise<Record<string, ProbeResult>> {
  const ca = await host.readText(CLUSTER_CA_CERT);
  const { vip, port } = config.controlPlaneEndpoint;
  const probes: Record<string, Promise<ProbeResult>> = {
    controller: probeHttps(new URL('/livez', config.controller.url).href, { ca: config.controller.caCert }),
    // The other replicas of an HA controller, each on its own.
    ...Object.fromEntries(
      (config.controller.otherUrls ?? []).map((url, i) => [
        `controller ${i + 2}`,
        probeHttps(new URL('/livez', url).href, { ca: config.controller.caCert }),
      ]),
    ),
    'api via VIP': probeHttps(`https://${vip}:${port}/livez`, { ca }),
  };
  // The API server's certificate names the node's advertise address (not 127.0.0.1), as kubeadm makes it.
  if (config.role === 'master') probes['api on this node'] = probeHttps(`https://${advertiseAddress ?? '127.0.0.1'}:${port}/livez`, { ca });
  const entries = await Promise.all(Object.entries(probes).map(async ([name, p]) => [name, await p] as const));
  return Object.fromEntries(entries);
}

async function fileRow(host: Host, path: string): Promise<FileRow> {
  const mode = await host.fileMode(path);
  if (mode === undefined) return { path, exists: false };
  const row: FileRow = { path, exists: true, mode: mode.toString(8).padStart(4, '0') };
  if (path.endsWith('.crt')) {
    try {
      const pem = await host.readBytes(path);
      if (pem) row.expires = new Date(new X509Certificate(pem).validTo).toISOString();
    } catch {
      row.expires = 'unreadable certificate';
    }
  }
  return row;
}

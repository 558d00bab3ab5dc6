import { formatDuration, renderTable } from '../core/table.ts';
import type { StatusReport } from './collect.ts';

/** The human view of `pke-agent status`. */
export function renderStatus(report: StatusReport): string {
  const { facts, config } = report;
  const lines: string[] = [];
  const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
  lines.push(
    `Node        ${facts.hostname} (BIOS UUID ${facts.biosUuid || 'unknown'}, ${facts.cpus} CPUs, ${gib(facts.memoryBytes)} memory, swap ${facts.swapBytes === 0 ? 'off' : gib(facts.swapBytes)})`,
  );
  for (const entry of facts.interfaces) {
    const isDefault = entry.name === facts.defaultRouteInterface ? ' (default route)' : '';
    lines.push(`Interface   ${entry.name} ${entry.ipv4.join(', ') || 'no IPv4'}${isDefault}`);
  }
  lines.push(`Bootstrap   ${bootstrapLine(report)}`);
  if (config) {
    lines.push(
      `Cluster     ${config.cluster}, Kubernetes ${config.kubernetesVersion}, endpoint ${config.endpoint}${config.vipInterface ? ` on ${config.vipInterface}` : ''}`,
    );
    lines.push(
      `This node   role ${config.role}, pool ${config.pool}${config.nodeName ? `, name ${config.nodeName}` : ''}${report.vipHere === undefined ? '' : `, holds the VIP: ${report.vipHere ? 'yes' : 'no'}`}`,
    );
    lines.push(`Controller  ${config.controllerUrl} (CA sha256 ${config.controllerCaSha256.slice(0, 16)}…), token ${config.token}`);
  } else {
    lines.push(`Config      ${report.configProblem}`);
  }
  if (report.certificates) {
    const first = [...report.certificates].sort((a, b) => a.daysLeft - b.daysLeft)[0];
    if (first)
      lines.push(
        `Certs       ${report.certificates.length} kubeadm leaf certificates, soonest ${first.name} at ${first.notAfter} (${first.daysLeft} days)`,
      );
  }
  for (const warning of report.warnings ?? []) lines.push(`WARNING     ${warning}`);
  if (report.probes) {
    for (const [name, probe] of Object.entries(report.probes)) {
      lines.push(`Probe       ${name}: ${probe.ok ? 'ok' : 'FAILED'} (${probe.status ?? 'no answer'}, ${probe.detail}, ${probe.ms}ms)`);
    }
  }

  lines.push('');
  lines.push(
    renderTable(
      ['PHASE', 'STATE', 'ATTEMPTS', 'DURATION', 'DETAIL'],
      report.phases.map((row) => [
        row.name,
        row.state,
        row.attempts || '',
        formatDuration(row.durationMs),
        row.state === 'failed' || (row.state === 'running' && row.error) ? errorDetail(row.error) : row.note,
      ]),
    ),
  );
  lines.push('');
  lines.push(
    renderTable(
      ['FILE', 'MODE', 'EXPIRES'],
      report.files.map((file) => [file.path, file.exists ? file.mode : 'missing', file.expires]),
    ),
  );
  return `${lines.join('\n')}\n`;
}

function bootstrapLine(report: StatusReport): string {
  if (!report.bootstrapped) return 'never bootstrapped on this node (no journal)';
  const done = report.phases.filter((p) => p.state === 'done' || p.state === 'skipped').length;
  const failed = report.phases.find((p) => p.state === 'failed');
  const running = report.phases.find((p) => p.state === 'running');
  if (failed) return `FAILED in ${failed.name} (attempt ${failed.attempts}); ${done} of ${report.phases.length} phases done`;
  if (done === report.phases.length) return `complete (${done} phases), last change ${report.journalUpdatedAt}`;
  if (running)
    return `in phase ${running.name} (attempt ${running.attempts}), or stopped there; ${done} of ${report.phases.length} phases done`;
  return `${done} of ${report.phases.length} phases done`;
}

function errorDetail(error: { message: string; exitCode?: number } | undefined): string {
  if (!error) return '';
  return error.message.split('\n')[0] ?? '';
}

import { escapeControl } from '../../core/escape.ts';
import type { PhaseSpan, Timeline } from '../../protocol/api.ts';

/**
 * The formation timeline as a standalone SVG: one row per node, one bar per phase run from its
 * start to its end (a running one to the timeline's `now`), colored by outcome, each with its
 * details (a failure's message) in a `<title>` that browsers show on hover. The critical path
 * (the leader's kubeadm init, then each control-plane join in turn) is outlined and joined by
 * a line. Pure: the CLI (`controller timeline`), the web view and the lab all draw with it.
 * Colors are attributes rather than a `<style>`, so that the SVG inlined in a page restyles
 * nothing else there.
 */

const COLORS: Record<PhaseSpan['outcome'], string> = { done: '#3b9a5a', failed: '#d9483b', running: '#e0a21c' };
/** The part of a kube-join spent waiting for the leader's init or the join slot. */
const WAITING = '#c3cad4';
const LABEL_WIDTH = 180;
const RIGHT_PAD = 24;
const TOP = 58;
const ROW = 26;
const BAR = 16;
const LEGEND = 40;
const TICK_STEPS = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];

export interface TimelineSvgOptions {
  /** Total width in pixels (default 1000). */
  width?: number;
}

interface Placed {
  span: PhaseSpan;
  row: number;
  start: number;
  end: number;
  /** A kube-join's grant, when it came after the phase began: the time before it was a wait. */
  granted?: number;
}

export function timelineSvg(timeline: Timeline, options: TimelineSvgOptions = {}): string {
  const width = Math.max(480, options.width ?? 1000);
  const now = Date.parse(timeline.now);
  const placed: Placed[] = timeline.nodes.flatMap((node, row) =>
    node.spans.map((span) => {
      const start = Date.parse(span.startedAt);
      const end = span.endedAt === undefined ? Math.max(start, now) : Date.parse(span.endedAt);
      const granted = node.joinGrantedAt === undefined ? Number.NaN : Date.parse(node.joinGrantedAt);
      const waited = span.phase === 'kube-join' && granted > start && granted < end;
      return { span, row, start, end, ...(waited ? { granted } : {}) };
    }),
  );
  const t0 = placed.length > 0 ? Math.min(...placed.map((p) => p.start)) : now;
  const t1 = placed.length > 0 ? Math.max(...placed.map((p) => p.end)) : now;
  const seconds = Math.max((t1 - t0) / 1000, 0.001);
  const plot = width - LABEL_WIDTH - RIGHT_PAD;
  const x = (at: number) => LABEL_WIDTH + ((at - t0) / 1000 / seconds) * plot;
  const rowY = (row: number) => TOP + row * ROW;
  const height = TOP + Math.max(1, timeline.nodes.length) * ROW + LEGEND;
  const critical = criticalPath(timeline, placed);

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12" role="img" aria-label="${xml(heading(timeline, seconds, critical.length, placed.length))}">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(
    `<text x="12" y="20" font-size="14" font-weight="bold" fill="#1d2433">${xml(heading(timeline, seconds, critical.length, placed.length))}</text>`,
  );

  // The time axis: seconds since the first phase began.
  const step = TICK_STEPS.find((s) => seconds / s <= 10) ?? Math.ceil(seconds / 10);
  out.push('<g class="axis" fill="#5b6474" stroke="#e3e6eb">');
  for (let s = 0; s <= seconds + 1e-9; s += step) {
    const tx = LABEL_WIDTH + (s / seconds) * plot;
    out.push(`<line x1="${n(tx)}" y1="${TOP - 8}" x2="${n(tx)}" y2="${rowY(Math.max(1, timeline.nodes.length))}"/>`);
    out.push(`<text x="${n(tx)}" y="${TOP - 12}" text-anchor="middle" stroke="none">${formatSeconds(s)}</text>`);
  }
  out.push('</g>');

  timeline.nodes.forEach((node, row) => {
    const y = rowY(row);
    const leader = node.name === timeline.leader;
    out.push(`<g class="row" data-node="${xml(node.name)}" data-role="${node.role}" data-state="${node.state}">`);
    if (row % 2 === 1) out.push(`<rect x="0" y="${y}" width="${width}" height="${ROW}" fill="#f5f7fa"/>`);
    const label = `${node.name}${leader ? ' (leader)' : ''}`;
    out.push(`<text x="12" y="${y + ROW / 2 + 4}" fill="#1d2433"${leader ? ' font-weight="bold"' : ''}>${xml(label)}</text>`);
    out.push(
      `<text x="${LABEL_WIDTH - 8}" y="${y + ROW / 2 + 4}" text-anchor="end" fill="#8a93a3" font-size="10">${node.role === 'master' ? 'control plane' : xml(node.pool)}</text>`,
    );
    for (const p of placed.filter((q) => q.row === row)) {
      const by = y + (ROW - BAR) / 2;
      const onPath = critical.includes(p);
      const { span } = p;
      if (p.granted !== undefined) {
        const waited = `${node.name} · kube-join: waited ${formatSeconds((p.granted - p.start) / 1000)} for the leader's init or the join slot`;
        out.push(
          `<rect class="wait" x="${n(x(p.start))}" y="${n(by + 3)}" width="${n(x(p.granted) - x(p.start))}" height="${BAR - 6}" fill="${WAITING}"><title>${xml(waited)}</title></rect>`,
        );
      }
      const bx = x(p.granted ?? p.start);
      const bw = Math.max(2, x(p.end) - bx);
      out.push(
        `<rect class="bar" data-phase="${xml(span.phase)}" data-attempt="${span.attempt}" data-outcome="${span.outcome}"${onPath ? ' data-critical="true"' : ''} x="${n(bx)}" y="${n(by)}" width="${n(bw)}" height="${BAR}" rx="2" fill="${COLORS[span.outcome]}"${onPath ? ' stroke="#1d2433" stroke-width="2"' : ' stroke="#ffffff" stroke-width="0.5"'}><title>${xml(describe(node.name, p))}</title></rect>`,
      );
      if (bw > span.phase.length * 6.5 + 6) {
        out.push(
          `<text x="${n(bx + 4)}" y="${n(by + BAR - 4)}" fill="#ffffff" font-size="10" pointer-events="none">${xml(span.phase)}</text>`,
        );
      }
      if (span.outcome === 'failed') {
        const mx = bx + bw;
        out.push(
          `<g class="failure" data-phase="${xml(span.phase)}"><circle cx="${n(mx)}" cy="${n(by)}" r="6" fill="#d9483b" stroke="#ffffff"/><text x="${n(mx)}" y="${n(by + 4)}" text-anchor="middle" fill="#ffffff" font-size="10" font-weight="bold">!</text><title>${xml(describe(node.name, p))}</title></g>`,
        );
      }
    }
    out.push('</g>');
  });

  // Each step of the critical path hands over to the next: from one's end to the next one's start (its grant, when it waited).
  critical.slice(1).forEach((p, i) => {
    const before = critical[i]!;
    out.push(
      `<line class="critical-path" x1="${n(x(before.end))}" y1="${n(rowY(before.row) + ROW / 2)}" x2="${n(x(p.granted ?? p.start))}" y2="${n(rowY(p.row) + ROW / 2)}" stroke="#1d2433" stroke-width="1.5" stroke-dasharray="4 3" pointer-events="none"/>`,
    );
  });

  const ly = rowY(Math.max(1, timeline.nodes.length)) + 24;
  const legend: [string, string][] = [
    [COLORS.done, 'done'],
    [COLORS.failed, 'failed (hover for the message)'],
    [COLORS.running, 'running'],
    [WAITING, 'waiting to join'],
  ];
  let lx = 12;
  out.push('<g class="legend" fill="#1d2433">');
  for (const [color, text] of legend) {
    out.push(
      `<rect x="${lx}" y="${ly - 10}" width="14" height="12" rx="2" fill="${color}"/><text x="${lx + 20}" y="${ly}">${xml(text)}</text>`,
    );
    lx += 28 + text.length * 7;
  }
  out.push(`<rect x="${lx}" y="${ly - 10}" width="14" height="12" rx="2" fill="#ffffff" stroke="#1d2433" stroke-width="2"/>`);
  out.push(`<text x="${lx + 20}" y="${ly}">critical path: kubeadm init, then each control-plane join</text>`);
  out.push('</g></svg>');
  return `${out.join('\n')}\n`;
}

/** The leader's init, then each control-plane node's join in the order they ran (the last run of each). */
function criticalPath(timeline: Timeline, placed: Placed[]): Placed[] {
  const lastRun = (node: string, phase: string) => {
    const row = timeline.nodes.findIndex((n) => n.name === node);
    const runs = placed.filter((p) => p.row === row && p.span.phase === phase);
    return runs.findLast((p) => p.span.outcome === 'done') ?? runs.at(-1);
  };
  const init = timeline.leader === undefined ? undefined : lastRun(timeline.leader, 'kube-init');
  const joins = timeline.nodes
    .filter((node) => node.role === 'master' && node.name !== timeline.leader)
    .map((node) => lastRun(node.name, 'kube-join'))
    .filter((p): p is Placed => p !== undefined)
    .sort((a, b) => a.start - b.start);
  return [...(init ? [init] : []), ...joins];
}

function heading(timeline: Timeline, seconds: number, critical: number, runs: number): string {
  const name = `cluster ${timeline.cluster.name} (${timeline.cluster.id})`;
  if (runs === 0) return `Formation of ${name}: no phase reported yet`;
  const joins = Math.max(0, critical - 1);
  return `Formation of ${name}: ${formatSeconds(seconds)}, ${timeline.nodes.length} nodes; critical path: init + ${joins} control-plane join${joins === 1 ? '' : 's'}`;
}

function describe(node: string, p: Placed): string {
  const { span } = p;
  const took = formatSeconds((p.end - p.start) / 1000);
  const what = span.outcome === 'running' ? `running for ${took}` : `${span.outcome} in ${took}`;
  return `${node} · ${span.phase} (attempt ${span.attempt}): ${what}${span.message ? ` — ${span.message}` : ''}`;
}

function formatSeconds(s: number): string {
  if (s >= 120) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${s >= 10 ? s.toFixed(0) : s.toFixed(1).replace(/\.0$/, '')} s`;
}

function n(value: number): string {
  return (Math.round(value * 10) / 10).toString();
}

/**
 * Text and attribute values from nodes (names, messages) are escaped, control characters shown
 * rather than kept (XML does not allow most of them): the SVG is also inlined in the view.
 */
function xml(text: string): string {
  return escapeControl(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

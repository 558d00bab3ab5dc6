import type { ClusterStatus, NodeStatus } from '../../protocol/api.ts';
import { timelineSvg } from '../timeline/svg.ts';
import type { Timeline } from '../../protocol/api.ts';
import { CONTENT_SECURITY_POLICY, PAGE_SCRIPT, PAGE_STYLE } from './assets.ts';
import { type Html, html, trusted } from './html.ts';

/**
 * The web view's pages, rendered on the controller: the same markup serves the first load and
 * every live update (the event stream carries the parts of a cluster page that change), so the
 * page's script only swaps them in.
 */

export const PAGE_CONTENT_TYPE = 'text/html; charset=utf-8';
export const PAGE_HEADERS = { 'content-security-policy': CONTENT_SECURITY_POLICY };

/** The parts of a cluster page the event stream replaces, by element id. */
export interface ClusterParts {
  summary: string;
  nodes: string;
  timeline: string;
}

export interface ClusterRow {
  id: string;
  name: string;
  kubernetesVersion: string;
  initialized: boolean;
  leader?: string;
  nodes: number;
  ready: number;
  failed: number;
}

function layout(title: string, body: Html, options: { events?: string; loggedIn?: boolean } = {}): string {
  return `<!doctype html>\n${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · pke-agent controller</title>
<style>${trusted(PAGE_STYLE)}</style>
</head>
<body${options.events ? html` data-events="${options.events}"` : ''}>
<header><a href="/ui">pke-agent controller</a><span class="spacer"></span>${
    options.events ? html`<span id="live" data-state="connecting">connecting…</span>` : ''
  }${options.loggedIn ? html`<button id="logout" type="button">Log out</button>` : ''}</header>
<main>
${body}
</main>
<script>${trusted(PAGE_SCRIPT)}</script>
</body>
</html>`}\n`;
}

export function loginPage(message: string): string {
  return layout(
    'Log in',
    html`<form id="login" class="login" method="post" action="/ui/login">
<h1>Log in</h1>
<p class="muted">${message}</p>
<label for="token">The admin token, or a viewer token from <code>pke-agent controller token create --role viewer</code></label>
<input id="token" name="token" type="password" autocomplete="off" required>
<button type="submit">Log in</button>
<p id="login-message" role="alert"></p>
</form>`,
  );
}

export function problemPage(title: string, message: string): string {
  return layout(title, html`<h1>${title}</h1><p>${message}</p><p><a href="/ui">All clusters</a></p>`, { loggedIn: true });
}

export function indexPage(clusters: ClusterRow[]): string {
  const rows = clusters.map(
    (c) => html`<tr data-cluster="${c.id}">
<td data-label="Cluster"><a href="/ui/clusters/${encodeURIComponent(c.id)}">${c.name}</a> <span class="muted">${c.id}</span></td>
<td data-label="Kubernetes">${c.kubernetesVersion}</td>
<td data-label="Nodes">${c.ready}/${c.nodes} ready${c.failed > 0 ? html`, <span class="state state-failed">${c.failed} failed</span>` : ''}</td>
<td data-label="Initialized">${c.initialized ? 'yes' : 'not yet'}</td>
<td data-label="Leader">${c.leader ?? '–'}</td>
</tr>`,
  );
  const body = html`<h1>Clusters</h1>
${
  clusters.length === 0
    ? html`<p class="muted">No clusters yet: <code>pke-agent controller cluster create</code> makes one.</p>`
    : html`<table><thead><tr><th>Cluster</th><th>Kubernetes</th><th>Nodes</th><th>Initialized</th><th>Leader</th></tr></thead><tbody>${rows}</tbody></table>`
}`;
  return layout('Clusters', body, { loggedIn: true });
}

export function clusterPage(status: ClusterStatus, parts: ClusterParts): string {
  const body = html`<h1>Cluster ${status.cluster.name} <span class="muted">${status.cluster.id}</span></h1>
<section id="summary">${trusted(parts.summary)}</section>
<h2>Nodes</h2>
<section id="nodes">${trusted(parts.nodes)}</section>
<h2>Formation timeline</h2>
<section id="timeline" class="timeline">${trusted(parts.timeline)}</section>`;
  return layout(`Cluster ${status.cluster.name}`, body, {
    events: `/ui/clusters/${encodeURIComponent(status.cluster.id)}/events`,
    loggedIn: true,
  });
}

export function clusterParts(status: ClusterStatus, timeline: Timeline, vip: string): ClusterParts {
  return { summary: summary(status, vip).markup, nodes: nodesTable(status.nodes).markup, timeline: timelineSvg(timeline) };
}

function summary(status: ClusterStatus, vip: string): Html {
  const { cluster, leader, joinSlot, nodes } = status;
  const masters = nodes.filter((n) => n.role === 'master');
  const workers = nodes.filter((n) => n.role === 'worker');
  const ready = (list: NodeStatus[]) => list.filter((n) => n.state === 'ready').length;
  const lease = leader.initialized
    ? `initialized ${time(leader.initializedAt)}`
    : leader.holder
      ? `initializing; lease until ${time(leader.leaseExpiresAt)}`
      : 'no leader yet';
  const fact = (label: string, value: string, id: string) => html`<div data-fact="${id}"><dt>${label}</dt><dd>${value}</dd></div>`;
  return html`<dl class="facts">
${fact('Kubernetes', cluster.kubernetesVersion, 'version')}
${fact('API endpoint (VIP)', `${cluster.endpoint}`, 'endpoint')}
${fact('VIP holder', vip, 'vip-holder')}
${fact('Leader', `${leader.holder ?? '–'} (epoch ${leader.epoch}): ${lease}`, 'leader')}
${fact('Join slot', joinSlot ? `${joinSlot.holder} until ${time(joinSlot.expiresAt)}` : 'free', 'join-slot')}
${fact('Control plane', `${ready(masters)}/${cluster.controlPlaneNodes} ready`, 'control-plane')}
${fact('Workers', `${ready(workers)}/${workers.length} ready`, 'workers')}
</dl>`;
}

function nodesTable(nodes: NodeStatus[]): Html {
  if (nodes.length === 0) return html`<p class="muted">No node configs rendered yet.</p>`;
  const rows = nodes.map(
    (n) => html`<tr data-node="${n.name}" data-state="${n.state}">
<td data-label="Node"><strong>${n.name}</strong>${n.hostname && n.hostname !== n.name ? html` <span class="muted">${n.hostname}</span>` : ''}</td>
<td data-label="Role">${n.role === 'master' ? 'control plane' : 'worker'}</td>
<td data-label="Pool">${n.pool}</td>
<td data-label="State"><span class="state state-${n.state}">${n.state}</span></td>
<td data-label="Phase">${n.phase ? `${n.phase} ${n.phaseState ?? ''}` : '–'}</td>
<td data-label="IPs">${n.primaryIp ?? '–'}${n.ips.filter((ip) => ip !== n.primaryIp).length > 0 ? html` <span class="muted">${n.ips.filter((ip) => ip !== n.primaryIp).join(', ')}</span>` : ''}</td>
<td data-label="Joined">${time(n.joinedAt)}</td>
<td data-label="Ready">${time(n.readyAt)}</td>
<td data-label="Last error" class="error">${n.lastError ?? ''}</td>
</tr>`,
  );
  return html`<table><thead><tr><th>Node</th><th>Role</th><th>Pool</th><th>State</th><th>Phase</th><th>IPs</th><th>Joined</th><th>Ready</th><th>Last error</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/** UTC time of day: formations take minutes, and every node reports in UTC. */
function time(iso: string | undefined): string {
  return iso === undefined ? '–' : `${iso.slice(11, 19)}Z`;
}

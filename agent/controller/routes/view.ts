import { setTimeout as delay } from 'node:timers/promises';
import { API } from '../../protocol/routes.ts';
import { forbidden, type ApiProblem } from '../http/problem.ts';
import { RawAnswer, bind } from '../http/route.ts';
import { verifyToken } from '../http/server.ts';
import { clearedViewCookie, viewCookie } from '../http/view-cookie.ts';
import type { SnapshotFiles } from '../backups/backups.ts';
import type { ControllerRuntime } from '../runtime.ts';
import type { ClusterState } from '../store/state.ts';
import { clusterTimeline } from '../timeline/cluster-timeline.ts';
import {
  PAGE_CONTENT_TYPE,
  PAGE_HEADERS,
  clusterPage,
  clusterParts,
  indexPage,
  loginPage,
  problemPage,
  type ClusterParts,
} from '../web/pages.ts';
import { clusterStatus } from '../status/cluster-status.ts';

/** The web view: read-only pages for the admin and viewer tokens, a cluster's page updated live. */

/** A session lasts at most this long (less when the token expires sooner), then the viewer logs in again. */
const SESSION_SECONDS = 12 * 3600;
/** Changes that come in a burst (a formation's reports) are shown together, at most this often. */
const COALESCE_MS = 250;
/** Without a change the stream still sends the page's parts this often (lease times move), or a comment to keep the connection. */
const REFRESH_MS = 5000;

const page = (body: string) => new RawAnswer(PAGE_CONTENT_TYPE, body, PAGE_HEADERS);

/** 401 shows the login form; other refusals a page that says why. */
function problemAnswer(problem: ApiProblem): RawAnswer {
  if (problem.status === 401)
    return page(
      loginPage(
        problem.code === 'unauthorized' && /no bearer token/.test(problem.message) ? 'Log in to see the clusters.' : problem.message,
      ),
    );
  if (problem.status === 403) return page(problemPage('Not for this token', problem.message));
  if (problem.status === 404) return page(problemPage('Not found', problem.message));
  return page(problemPage('The controller could not answer', problem.message));
}

export const viewIndexRoute = bind(
  API.viewIndex,
  ({ runtime }) => {
    const now = Date.now();
    const rows = Object.values(runtime.store.state.clusters)
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((cluster) => {
        const status = clusterStatus(cluster, now, runtime.snapshots);
        return {
          id: cluster.id,
          name: cluster.name,
          kubernetesVersion: cluster.spec.kubernetesVersion,
          initialized: cluster.leader.initialized,
          leader: status.leader.holder,
          nodes: status.nodes.length,
          ready: status.nodes.filter((n) => n.state === 'ready').length,
          failed: status.nodes.filter((n) => n.state === 'failed').length,
        };
      });
    return page(indexPage(rows));
  },
  problemAnswer,
);

export const viewClusterRoute = bind(
  API.viewCluster,
  ({ cluster, runtime }) => {
    const now = Date.now();
    return page(clusterPage(clusterStatus(cluster, now, runtime.snapshots), parts(cluster, now, runtime.snapshots)));
  },
  problemAnswer,
);

export const viewEventsRoute = bind(API.viewEvents, ({ cluster, runtime, signal }) => clusterEvents(cluster, runtime, signal));

async function* clusterEvents(cluster: ClusterState, runtime: ControllerRuntime, signal: AbortSignal): AsyncGenerator<string> {
  // The browser reconnects after this many ms when the connection drops.
  yield 'retry: 2000\n\n';
  let last = '';
  while (!signal.aborted && !runtime.isClosing) {
    const data = JSON.stringify(parts(cluster, Date.now(), runtime.snapshots));
    yield data === last ? ': unchanged\n\n' : `event: view\ndata: ${data}\n\n`;
    last = data;
    await runtime.viewChanges.next(cluster.id, REFRESH_MS, signal);
    await delay(COALESCE_MS, undefined, { signal }).catch(() => undefined);
  }
}

function parts(cluster: ClusterState, now: number, snapshots: SnapshotFiles): ClusterParts {
  const status = clusterStatus(cluster, now, snapshots);
  const holder = status.leader.initialized ? status.leader.holder : undefined;
  // The controller does not probe the VIP: the leader's keepalived has the highest priority and takes it.
  const vip = holder ? `${holder} (the leader, expected)` : 'none before the leader initializes';
  return clusterParts(status, clusterTimeline(cluster, now), vip);
}

export const viewLoginRoute = bind(API.viewLogin, async ({ body, runtime }) => {
  const principal = await verifyToken(body.token, runtime);
  if (principal.kind === 'node') throw forbidden('a node token cannot see the view; log in with the admin token or a viewer token');
  if (principal.kind === 'access' && principal.role !== 'viewer')
    throw forbidden(`a ${principal.role} token cannot see the view; mint a viewer token (controller token create --role viewer)`);
  const seconds = principal.kind === 'access' ? Math.min(SESSION_SECONDS, (principal.expiresAt - Date.now()) / 1000) : SESSION_SECONDS;
  runtime.log.info('view.login', { as: principal.kind === 'access' ? principal.role : principal.kind, jti: principal.jti });
  return new RawAnswer('text/plain', '', { 'set-cookie': viewCookie(body.token, seconds) });
});

export const viewLogoutRoute = bind(API.viewLogout, () => new RawAnswer('text/plain', '', { 'set-cookie': clearedViewCookie() }));

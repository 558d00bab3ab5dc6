import { API } from '../../protocol/routes.ts';
import { RawAnswer, bind } from '../http/route.ts';
import { clusterTimeline } from '../timeline/cluster-timeline.ts';

/** What people and monitoring read: the Prometheus metrics and a cluster's formation timeline. */

export const metricsRoute = bind(
  API.metrics,
  async ({ runtime }) => new RawAnswer(runtime.metrics.contentType, await runtime.metrics.text()),
);

export const timelineRoute = bind(API.timeline, ({ cluster }) => clusterTimeline(cluster, Date.now()));

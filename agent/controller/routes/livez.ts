import { API } from '../../protocol/routes.ts';
import { bind } from '../http/route.ts';

/** Liveness, for `pke-agent status --probe` and load balancers: the one route without a token, and it says nothing else. */
export const livezRoute = bind(API.livez, () => ({ status: 'ok' as const }));

// undici's index loads all of undici at once (fetch, WebSocket, EventSource, mocks, caches):
// about 50 ms of CPU at every start of the agent, which needs only an Agent and request().
// These two are undici's own modules (the version is pinned by package-lock), and request()
// here does what undici's top-level request() does with an explicit dispatcher.
import type { Dispatcher } from 'undici';
import dispatchRequest from 'undici/lib/api/api-request.js';

export { default as Agent } from 'undici/lib/dispatcher/agent.js';

export type RequestOptions = Omit<Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & {
  dispatcher: Dispatcher;
  method?: Dispatcher.HttpMethod;
};

export function request(url: string, { dispatcher, ...options }: RequestOptions): Promise<Dispatcher.ResponseData> {
  const { origin, pathname, search } = new URL(url);
  return dispatchRequest.call(dispatcher, { ...options, origin, path: `${pathname}${search}`, method: options.method ?? 'GET' });
}

/** What went wrong with a request that got no answer: the system's code (ECONNREFUSED, ...) when there is one. */
export function requestErrorDetail(error: unknown): string {
  const cause = (error as { cause?: { code?: string } }).cause;
  return cause?.code ?? (error as { code?: string }).code ?? (error as Error).message;
}

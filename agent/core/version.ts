/** Set at bundle time by esbuild (`define`); the fallback shows an unbundled development run. */
declare const __PKE_VERSION__: string | undefined;
declare const __PKE_COMMIT__: string | undefined;

export const AGENT_VERSION: string = typeof __PKE_VERSION__ === 'string' ? __PKE_VERSION__ : '0.0.0-dev';
export const AGENT_COMMIT: string = typeof __PKE_COMMIT__ === 'string' ? __PKE_COMMIT__ : 'unknown';

import type { Host } from '../host/host.ts';

export interface NodeReadyAnswer {
  ready: boolean;
  /** The Ready condition's status (`True`, `False`, `Unknown`), or what kubectl said instead. */
  detail: string;
}

const READY_STATUS = '{.status.conditions[?(@.type=="Ready")].status}';

/**
 * Asks the API, through kubectl with the given kubeconfig (a node path), for the Node's Ready
 * condition. A node that is not registered yet is an answer (`NotFound`), not a failure.
 */
export async function nodeReady(host: Host, kubeconfig: string, nodeName: string): Promise<NodeReadyAnswer> {
  const result = await host.run(
    'kubectl',
    ['--kubeconfig', host.file(kubeconfig), '--request-timeout=5s', 'get', 'node', nodeName, '-o', `jsonpath=${READY_STATUS}`],
    { okExitCodes: [1], timeoutMs: 15_000, displayArgs: ['--kubeconfig', kubeconfig, 'get', 'node', nodeName] },
  );
  if (result.exitCode !== 0) return { ready: false, detail: lastLine(result.stderr) || `kubectl exited ${result.exitCode}` };
  const status = result.stdout.trim();
  return { ready: status === 'True', detail: `Ready=${status || '(no condition yet)'}` };
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop() ?? '';
}

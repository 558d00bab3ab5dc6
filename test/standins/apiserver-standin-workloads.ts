// STAND-IN, part of the kube-apiserver stand-in: the pods, PodDisruptionBudgets and evictions a
// drain sees. Pods and budgets are created through the API (POST), kept in one JSON file shared
// by every API server stand-in of the cluster, and listed by node (`fieldSelector=spec.nodeName=`).
// There is no kubelet and no controller: a pod runs from its creation (status.phase Running
// unless given), an evicted or deleted pod is gone at once, and nothing replaces it; a test acts
// out a ReplicaSet by creating the replacement itself. An eviction is refused (429) as the real
// Eviction API refuses it: when the pod runs and a budget selecting it would fall below its
// `minAvailable` (or above its `maxUnavailable`), counting the budget's running pods.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface StandinAnswer {
  code: number;
  body: unknown;
}

type Labels = Record<string, string>;

interface StoredPod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    labels?: Labels;
    annotations?: Record<string, string>;
    ownerReferences?: { kind: string; name: string; controller?: boolean }[];
    creationTimestamp: string;
  };
  spec: { nodeName?: string };
  status: { phase: string };
}

interface StoredBudget {
  metadata: { name: string; namespace: string; uid: string };
  spec: { selector?: { matchLabels?: Labels }; minAvailable?: number; maxUnavailable?: number };
}

interface Workloads {
  pods: StoredPod[];
  budgets: StoredBudget[];
}

const PODS = /^\/api\/v1\/(?:namespaces\/([^/]+)\/)?pods(?:\/([^/]+)(?:\/(eviction))?)?$/;
const BUDGETS = /^\/apis\/policy\/v1\/namespaces\/([^/]+)\/poddisruptionbudgets$/;

export function isWorkloadPath(pathname: string): boolean {
  return PODS.test(pathname) || BUDGETS.test(pathname);
}

/** Answers a request on pods, their evictions or budgets; `body` is the parsed request body (POST). */
export function handleWorkloads(method: string, url: URL, body: unknown, dir: string): StandinAnswer {
  const file = path.join(dir, 'workloads.json');
  const load = (): Workloads => (existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Workloads) : { pods: [], budgets: [] });
  const save = (workloads: Workloads) => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${file}.tmp`, JSON.stringify(workloads));
    renameSync(`${file}.tmp`, file);
  };
  const budgets = BUDGETS.exec(url.pathname);
  if (budgets) {
    if (method !== 'POST') return failure(405, 'MethodNotAllowed', `${method} is not supported on ${url.pathname}`);
    const namespace = decodeURIComponent(budgets[1] ?? '');
    const input = (body ?? {}) as { metadata?: { name?: string }; spec?: StoredBudget['spec'] };
    if (!input.metadata?.name) return failure(422, 'Invalid', 'PodDisruptionBudget is invalid: metadata.name: Required value');
    const workloads = load();
    const budget: StoredBudget = { metadata: { name: input.metadata.name, namespace, uid: randomUUID() }, spec: input.spec ?? {} };
    workloads.budgets.push(budget);
    save(workloads);
    return { code: 201, body: { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', ...budget } };
  }

  const match = PODS.exec(url.pathname);
  const namespace = match?.[1] === undefined ? undefined : decodeURIComponent(match[1]);
  const name = match?.[2] === undefined ? undefined : decodeURIComponent(match[2]);
  const workloads = load();
  const found = workloads.pods.find((pod) => pod.metadata.namespace === namespace && pod.metadata.name === name);
  const notFound = () => failure(404, 'NotFound', `pods "${name}" not found`);

  if (method === 'GET' && name === undefined) {
    const selector = url.searchParams.get('fieldSelector');
    const nodeName = selector?.startsWith('spec.nodeName=') ? selector.slice('spec.nodeName='.length) : undefined;
    if (selector && nodeName === undefined)
      return failure(400, 'BadRequest', `field selector ${selector} is not supported by the stand-in`);
    const items = workloads.pods.filter(
      (pod) =>
        (namespace === undefined || pod.metadata.namespace === namespace) && (nodeName === undefined || pod.spec.nodeName === nodeName),
    );
    return { code: 200, body: { apiVersion: 'v1', kind: 'PodList', metadata: {}, items } };
  }
  if (method === 'POST' && namespace !== undefined && name === undefined) {
    const input = (body ?? {}) as Partial<StoredPod>;
    const podName = input.metadata?.name;
    if (!podName) return failure(422, 'Invalid', 'Pod is invalid: metadata.name: Required value');
    if (workloads.pods.some((pod) => pod.metadata.namespace === namespace && pod.metadata.name === podName))
      return failure(409, 'AlreadyExists', `pods "${podName}" already exists`);
    const pod: StoredPod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        ...input.metadata,
        name: podName,
        namespace,
        uid: randomUUID(),
        creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      },
      spec: { nodeName: input.spec?.nodeName },
      status: { phase: input.status?.phase ?? 'Running' },
    };
    workloads.pods.push(pod);
    save(workloads);
    return { code: 201, body: pod };
  }
  if (name === undefined || namespace === undefined)
    return failure(405, 'MethodNotAllowed', `${method} is not supported on ${url.pathname}`);
  if (!found) return notFound();
  const remove = () => {
    workloads.pods = workloads.pods.filter((pod) => pod !== found);
    save(workloads);
  };

  if (method === 'GET' && match?.[3] === undefined) return { code: 200, body: found };
  if (method === 'DELETE' && match?.[3] === undefined) {
    remove();
    return { code: 200, body: found };
  }
  if (method === 'POST' && match?.[3] === 'eviction') {
    const refusal = evictionRefusal(found, workloads);
    if (refusal) return refusal;
    remove();
    return { code: 201, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 } };
  }
  return failure(405, 'MethodNotAllowed', `${method} is not supported on ${url.pathname}`);
}

/** The real Eviction API's refusal for this pod, if it would refuse: budgets only guard running pods. */
function evictionRefusal(pod: StoredPod, workloads: Workloads): StandinAnswer | undefined {
  if (pod.status.phase !== 'Running') return undefined;
  const guarding = workloads.budgets.filter(
    (budget) => budget.metadata.namespace === pod.metadata.namespace && selects(budget, pod.metadata.labels ?? {}),
  );
  if (guarding.length > 1)
    return failure(
      500,
      'InternalError',
      'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.',
    );
  const budget = guarding[0];
  if (!budget) return undefined;
  const selected = workloads.pods.filter(
    (other) => other.metadata.namespace === pod.metadata.namespace && selects(budget, other.metadata.labels ?? {}),
  );
  const healthy = selected.filter((other) => other.status.phase === 'Running').length;
  const allowed =
    budget.spec.minAvailable !== undefined
      ? healthy - budget.spec.minAvailable
      : (budget.spec.maxUnavailable ?? 0) - (selected.length - healthy);
  if (allowed > 0) return undefined;
  const needs = budget.spec.minAvailable ?? selected.length - (budget.spec.maxUnavailable ?? 0);
  return {
    code: 429,
    body: {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: "Cannot evict pod as it would violate the pod's disruption budget.",
      reason: 'TooManyRequests',
      details: {
        causes: [
          {
            reason: 'DisruptionBudget',
            message: `The disruption budget ${budget.metadata.name} needs ${needs} healthy pods and has ${healthy} currently`,
          },
        ],
      },
      code: 429,
    },
  };
}

function selects(budget: StoredBudget, labels: Labels): boolean {
  const wanted = budget.spec.selector?.matchLabels ?? {};
  return Object.entries(wanted).every(([key, value]) => labels[key] === value);
}

function failure(code: number, reason: string, message: string): StandinAnswer {
  return { code, body: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code } };
}

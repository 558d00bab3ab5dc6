import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrapTokenSecret, generateBootstrapToken } from '../../agent/controller/kubernetes/bootstrap-tokens.ts';
import { createCa, issueCertificate, type CertifiedKey } from '../../agent/controller/clusters/pki.ts';
import { apiServerCredentials } from '../standins/apiserver-standin.ts';
import { REPO, scratchDir } from '../helpers/cli.ts';
import { killProcess } from './helpers.ts';

/** The stand-in as another engineer's kubeadm stand-in starts it: the exact command line, detached. */

const dir = scratchDir('standin');
let child: ChildProcess | undefined;
let url: string;
let ca: CertifiedKey;
let admin: CertifiedKey;
let stranger: CertifiedKey;
const pidFile = path.join(dir.dir, 'apiserver.pid');
const stateDir = path.join(dir.dir, 'state');
const nodesDir = path.join(dir.dir, 'nodes');

beforeAll(async () => {
  ca = await createCa('kubernetes');
  const otherCa = await createCa('kubernetes');
  const [{ serving, admin: adminCert }, strangerCert] = await Promise.all([
    apiServerCredentials(ca),
    issueCertificate(otherCa, { commonName: 'kubernetes-admin', organizations: ['system:masters'], usage: 'client', validDays: 1 }),
  ]);
  admin = adminCert;
  stranger = strangerCert;
  for (const [name, pem] of [
    ['apiserver.crt', serving.certPem],
    ['apiserver.key', serving.keyPem],
    ['ca.crt', ca.certPem],
  ] as const)
    writeFileSync(path.join(dir.dir, name), pem);
  child = spawn(
    process.execPath,
    [
      path.join(REPO, 'test/standins/apiserver-standin.ts'),
      '--listen',
      '127.0.0.1:0',
      '--cert',
      path.join(dir.dir, 'apiserver.crt'),
      '--key',
      path.join(dir.dir, 'apiserver.key'),
      '--client-ca',
      path.join(dir.dir, 'ca.crt'),
      '--state-dir',
      stateDir,
      '--nodes-dir',
      nodesDir,
      '--version',
      'v1.31.2',
      '--pid-file',
      pidFile,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'], detached: true },
  );
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child?.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /listening (https:\/\/\S+)/.exec(out);
      if (match?.[1]) resolve(match[1]);
    });
    child?.once('exit', (code) => reject(new Error(`stand-in exited ${code}`)));
  });
});

afterAll(async () => {
  await killProcess(child);
  dir.remove();
});

async function get(pathname: string, client?: CertifiedKey) {
  const dispatcher = new Agent({ connect: { ca: ca.certPem, cert: client?.certPem, key: client?.keyPem } });
  try {
    const answer = await request(`${url}${pathname}`, { dispatcher });
    return { status: answer.statusCode, text: await answer.body.text() };
  } finally {
    await dispatcher.close();
  }
}

async function post(body: unknown, client: CertifiedKey | undefined) {
  const dispatcher = new Agent({ connect: { ca: ca.certPem, cert: client?.certPem, key: client?.keyPem } });
  try {
    const answer = await request(`${url}/api/v1/namespaces/kube-system/secrets`, {
      method: 'POST',
      dispatcher,
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
    return { status: answer.statusCode, body: JSON.parse(await answer.body.text()) as { message?: string; reason?: string } };
  } catch (error) {
    return { status: 0, body: { message: String(error) } };
  } finally {
    await dispatcher.close();
  }
}

describe('kube-apiserver stand-in (command)', () => {
  it('writes its pid file and answers /livez, /readyz and /version', async () => {
    expect(readFileSync(pidFile, 'utf8').trim()).toBe(String(child?.pid));
    expect(await get('/livez')).toEqual({ status: 200, text: 'ok' });
    expect(await get('/readyz')).toEqual({ status: 200, text: 'ok' });
    const version = await get('/version');
    expect(JSON.parse(version.text)).toMatchObject({ gitVersion: 'v1.31.2', major: '1', minor: '31' });
  });

  it('stores a bootstrap-token Secret from a cluster-CA client, refuses a duplicate and a bad shape', async () => {
    const token = generateBootstrapToken(900);
    const secret = bootstrapTokenSecret(token, 'test');
    expect((await post(secret, admin)).status).toBe(201);
    const stored = JSON.parse(readFileSync(path.join(stateDir, 'secrets', 'kube-system', `bootstrap-token-${token.id}.json`), 'utf8'));
    expect(stored).toMatchObject({
      type: 'bootstrap.kubernetes.io/token',
      metadata: { name: `bootstrap-token-${token.id}`, namespace: 'kube-system' },
    });
    expect((await get(`/api/v1/namespaces/kube-system/secrets/bootstrap-token-${token.id}`, admin)).status).toBe(200);
    const duplicate = await post(secret, admin);
    expect(duplicate).toMatchObject({ status: 409, body: { reason: 'AlreadyExists' } });
    const bad = await post({ ...secret, data: { ...secret.data, 'token-secret': Buffer.from('short').toString('base64') } }, admin);
    expect(bad.status).toBe(422);
    expect(bad.body.message).toContain('token-secret');
  });

  it('serves the Nodes registered under its nodes dir as Ready, and NotFound for others', async () => {
    mkdirSync(nodesDir, { recursive: true });
    writeFileSync(path.join(nodesDir, 'w-1.json'), JSON.stringify({ name: 'w-1', registeredAt: '2026-11-22T10:00:00Z' }));
    const node = await get('/api/v1/nodes/w-1', admin);
    expect(node.status).toBe(200);
    expect(JSON.parse(node.text)).toMatchObject({
      kind: 'Node',
      metadata: { name: 'w-1' },
      status: { conditions: [{ type: 'Ready', status: 'True' }] },
    });
    const missing = await get('/api/v1/nodes/w-2', admin);
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.text)).toMatchObject({ reason: 'NotFound', message: 'nodes "w-2" not found' });
  });

  it('wants a client certificate signed by the cluster CA', async () => {
    const secret = bootstrapTokenSecret(generateBootstrapToken(900), 'test');
    expect((await post(secret, undefined)).status).toBe(401);
    expect((await post(secret, stranger)).status).toBe(401);
    expect((await get('/api/v1/nodes/w-1', stranger)).status).toBe(401);
  });

  it('exits 0 on SIGTERM and removes its pid file', async () => {
    expect(await killProcess(child, 'SIGTERM')).toBe(0);
    expect(existsSync(pidFile)).toBe(false);
  });
});

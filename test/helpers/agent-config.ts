import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import YAML from 'yaml';
import type { AgentConfigInput } from '../../agent/config/schema.ts';

const repo = path.resolve(import.meta.dirname, '../..');
export const TEST_CA_PEM = readFileSync(path.join(repo, 'test/fixtures/controller-ca.pem'), 'utf8');

/** A JWT-shaped token (header.claims.signature) whose claims the agent can read; not signed. */
export function fakeNodeToken(claims: Record<string, unknown> = { sub: 'node-a', exp: Math.floor(Date.now() / 1000) + 3600 }): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}.${Buffer.from('signature-for-tests').toString('base64url')}`;
}

/** A valid agent config as `controller node-config` would render it. */
export function validConfig(overrides: Partial<AgentConfigInput> = {}): AgentConfigInput {
  return {
    cluster: { id: 'prod-a1b2', name: 'prod' },
    role: 'master',
    pool: 'control-plane',
    nodeName: 'node-a',
    controller: { url: 'https://127.0.0.1:9443', caCert: TEST_CA_PEM, token: fakeNodeToken() },
    kubernetes: { version: '1.31.2' },
    controlPlaneEndpoint: { vip: '10.10.0.100', port: 6443 },
    ...overrides,
  };
}

export function toYaml(value: unknown): string {
  return YAML.stringify(value);
}

export function gzipBase64(text: string): string {
  return gzipSync(Buffer.from(text)).toString('base64');
}

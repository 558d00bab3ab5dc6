import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../agent/config/schema.ts';
import { CommandError } from '../../agent/core/errors.ts';
import { Host } from '../../agent/host/host.ts';
import { Journal } from '../../agent/journal/journal.ts';
import { fakeNodeToken, TEST_CA_PEM, validConfig } from '../helpers/agent-config.ts';
import { runAgent, scratchDir } from '../helpers/cli.ts';

let scratch: { dir: string; remove: () => void };
beforeEach(() => {
  scratch = scratchDir('status');
});
afterEach(() => scratch.remove());

describe('pke-agent status', () => {
  it('says a fresh node was never bootstrapped', async () => {
    const result = await runAgent(['status', '--root', scratch.dir]);
    expect(result.exitCode).toBe(0);
    expect(result.stdout).toContain('Bootstrap   never bootstrapped on this node (no journal)');
    expect(result.stdout).toMatch(/^preflight\s+pending/m);
    expect(result.stdout).toMatch(/^\/etc\/kubernetes\/admin\.conf\s+missing/m);
  });

  it('shows a half-done node: states, attempts, durations, the failure, masked config, files', async () => {
    const host = new Host({ root: scratch.dir });
    const token = fakeNodeToken({ sub: 'node-a', exp: 4102444800 });
    const config = agentConfigSchema.parse(validConfig({ controller: { url: 'https://10.0.0.2:9443', caCert: TEST_CA_PEM, token } }));
    await host.writeFile('/var/lib/pke-agent/config.json', JSON.stringify(config), { mode: 0o600 });
    await host.writeFile('/etc/kubernetes/pki/ca.crt', TEST_CA_PEM);
    await host.writeFile('/etc/kubernetes/pki/ca.key', 'not shown', { mode: 0o600 });

    let clock = Date.parse('2026-11-22T10:00:00Z');
    const journal = await Journal.open(host, () => new Date(clock));
    await journal.start('preflight');
    clock += 1500;
    await journal.finish('preflight', undefined);
    await journal.start('register');
    clock += 1500;
    const failure = new CommandError(
      'kubeadm join --config /etc/kubernetes/pke/kubeadm-join.yaml',
      1,
      'error execution phase preflight: too many learner members in cluster',
    );
    await journal.fail('register', failure.message, failure.context);

    const text = await runAgent(['status', '--root', scratch.dir]);
    expect(text.exitCode).toBe(0);
    expect(text.stdout).toContain('Bootstrap   FAILED in register (attempt 1); 1 of');
    expect(text.stdout).toMatch(/^preflight\s+done\s+1\s+1\.5s/m);
    expect(text.stdout).toMatch(
      /^register\s+failed\s+1\s+1\.5s\s+kubeadm join .* exited 1: error execution phase preflight: too many learner members in cluster/m,
    );
    expect(text.stdout).toContain('token set, for node-a, expires 2100-01-01T00:00:00.000Z');
    expect(text.stdout).not.toContain(token);
    expect(text.stdout).not.toContain('not shown');
    expect(text.stdout).toMatch(/^\/etc\/kubernetes\/pki\/ca\.key\s+0600/m);
    expect(text.stdout).toMatch(/^\/etc\/kubernetes\/pki\/ca\.crt\s+0644\s+2\d{3}-/m);

    const json = await runAgent(['status', '--json', '--root', scratch.dir]);
    const report = JSON.parse(json.stdout);
    expect(report.bootstrapped).toBe(true);
    const register = report.phases.find((p: { name: string }) => p.name === 'register');
    expect(register).toMatchObject({ state: 'failed', attempts: 1, durationMs: 1500 });
    expect(register.error).toMatchObject({ exitCode: 1, command: 'kubeadm join --config /etc/kubernetes/pke/kubeadm-join.yaml' });
    expect(register.error.stderrTail).toContain('too many learner members');
    expect(report.config.controllerUrl).toBe('https://10.0.0.2:9443');
    expect(json.stdout).not.toContain(token);
  });

  it('probes only when asked, and says what did not answer', async () => {
    const host = new Host({ root: scratch.dir });
    // A controller URL on a loopback port nobody listens on: the probe must fail fast and say so.
    const config = agentConfigSchema.parse(
      validConfig({
        controller: { url: 'https://127.0.0.1:9', caCert: TEST_CA_PEM, token: fakeNodeToken() },
        controlPlaneEndpoint: { vip: '127.0.0.1', port: 9 },
      }),
    );
    mkdirSync(path.join(scratch.dir, 'var/lib/pke-agent'), { recursive: true });
    writeFileSync(path.join(scratch.dir, 'var/lib/pke-agent/config.json'), JSON.stringify(config));
    await host.ensureDir('/etc');

    const quiet = JSON.parse((await runAgent(['status', '--json', '--root', scratch.dir])).stdout);
    expect(quiet.probes).toBeUndefined();

    const probed = JSON.parse((await runAgent(['status', '--json', '--probe', '--root', scratch.dir])).stdout);
    expect(probed.probes.controller).toMatchObject({ ok: false, detail: 'ECONNREFUSED' });
    expect(probed.probes['api via VIP']).toMatchObject({ ok: false, detail: 'ECONNREFUSED' });
  });
});

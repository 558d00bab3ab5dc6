import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OutboxReporter } from '../../agent/bootstrap/outbox.ts';
import { OUTBOX_PATH } from '../../agent/core/state-paths.ts';
import { silentLogger } from '../../agent/core/log.ts';
import type { PhaseEvent } from '../../agent/protocol/api.ts';
import { scratchHost, type ScratchHost } from '../helpers/cli.ts';

let scratch: ScratchHost;
beforeEach(() => {
  scratch = scratchHost('outbox');
});
afterEach(() => scratch.remove());

const outboxFile = () => path.join(scratch.dir, OUTBOX_PATH);
const event = (phase: string, type: 'start' | 'end'): PhaseEvent => ({ phase, type, at: new Date().toISOString(), attempt: 1 });

/** A controller's events endpoint that takes reports (recording them) or refuses them. */
function controller(taking: boolean) {
  const received: PhaseEvent[] = [];
  const requests: number[] = [];
  return {
    received,
    /** How many reports each request carried. */
    requests,
    api: {
      events: async ({ events }: { events: PhaseEvent[] }) => {
        if (!taking) throw new Error('controller unreachable');
        requests.push(events.length);
        received.push(...events);
      },
    },
  };
}

describe('phase reports (the outbox)', () => {
  it('never writes to disk a report the controller takes at once', async () => {
    const { api, received } = controller(true);
    const writes = vi.spyOn(scratch.host, 'writeFile');
    const reporter = await OutboxReporter.open(scratch.host, api, silentLogger);
    reporter.report(event('preflight', 'start'));
    reporter.report(event('preflight', 'end'));
    await new Promise((r) => setTimeout(r, 300));
    expect(await reporter.flush(1000)).toBe(true);
    expect(received.map((e) => `${e.phase}/${e.type}`)).toEqual(['preflight/start', 'preflight/end']);
    expect(writes).not.toHaveBeenCalled();
    expect(existsSync(outboxFile())).toBe(false);
  });

  it('sends reports made close together in one request, and what comes later in another', async () => {
    const { api, received, requests } = controller(true);
    const reporter = await OutboxReporter.open(scratch.host, api, silentLogger);
    reporter.report(event('preflight', 'start'));
    reporter.report(event('preflight', 'end'));
    reporter.report(event('register', 'start'));
    await vi.waitFor(() => expect(received).toHaveLength(3), { timeout: 2000, interval: 20 });
    await new Promise((r) => setTimeout(r, 300));
    reporter.report(event('register', 'end'));
    expect(await reporter.flush(1000)).toBe(true);
    expect(requests).toEqual([3, 1]);
    expect(received.map((e) => `${e.phase}/${e.type}`)).toEqual(['preflight/start', 'preflight/end', 'register/start', 'register/end']);
  });

  it('keeps on disk what the controller did not take, and a later run sends it and empties the outbox', async () => {
    const down = controller(false);
    const first = await OutboxReporter.open(scratch.host, down.api, silentLogger);
    first.report(event('preflight', 'start'));
    first.report(event('preflight', 'end'));
    // On disk soon after, without waiting for the run's end.
    await vi.waitFor(() => expect(existsSync(outboxFile())).toBe(true), { timeout: 2000, interval: 50 });
    expect(await first.flush(300)).toBe(false);
    expect(first.unsent).toBe(2);
    const kept = JSON.parse(readFileSync(outboxFile(), 'utf8')) as PhaseEvent[];
    expect(kept.map((e) => `${e.phase}/${e.type}`)).toEqual(['preflight/start', 'preflight/end']);

    const up = controller(true);
    const second = await OutboxReporter.open(scratch.host, up.api, silentLogger);
    second.report(event('register', 'start'));
    expect(await second.flush(2000)).toBe(true);
    expect(up.received.map((e) => `${e.phase}/${e.type}`)).toEqual(['preflight/start', 'preflight/end', 'register/start']);
    expect(existsSync(outboxFile())).toBe(false);
  });
});

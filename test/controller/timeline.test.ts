import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PhaseRun } from '../../agent/controller/store/state.ts';
import { NO_END_REPORTED, recordPhaseEvent } from '../../agent/controller/timeline/phase-runs.ts';
import { timelineSvg } from '../../agent/controller/timeline/svg.ts';
import { AGENT_ENTRY } from '../helpers/cli.ts';
import { actOutFormation, type Formation } from './formation.ts';
import { startTestController, type TestController } from './helpers.ts';
import { parseTimelineSvg } from './svg-doc.ts';

/** The formation timeline: phase runs kept from the nodes' reports, drawn as an SVG by the controller's CLI. */

const FAILURE = 'kubeadm join exited 1: the kubelet configuration is invalid: cgroupDriver "cgroupfs" does not match the runtime';

let t: TestController;
let formation: Formation;

beforeAll(async () => {
  t = await startTestController();
  formation = await actOutFormation(t, { masters: 3, workers: 2, failing: 'w2', failure: FAILURE });
}, 60_000);

afterAll(async () => {
  await formation?.close();
  await t?.close();
});

describe('phase runs from reports', () => {
  const at = (s: number) => 1_000_000 + s * 1000;
  const event = (phase: string, type: 'start' | 'end' | 'fail', attempt = 1, message?: string) => ({
    phase,
    type,
    attempt,
    at: '',
    ...(message ? { message } : {}),
  });

  it('pairs each start with its end or failure; a report delivered twice changes nothing', () => {
    const runs: PhaseRun[] = [];
    recordPhaseEvent(runs, event('preflight', 'start'), at(0));
    recordPhaseEvent(runs, event('preflight', 'start'), at(0));
    expect(recordPhaseEvent(runs, event('preflight', 'end'), at(2))).toMatchObject({ outcome: 'done', startedAt: at(0), endedAt: at(2) });
    expect(recordPhaseEvent(runs, event('preflight', 'end'), at(2))).toBeUndefined();
    recordPhaseEvent(runs, event('kube-join', 'start'), at(3));
    recordPhaseEvent(runs, event('kube-join', 'fail', 1, 'refused'), at(5));
    recordPhaseEvent(runs, event('kube-join', 'start', 2), at(6));
    expect(runs).toEqual([
      { phase: 'preflight', attempt: 1, startedAt: at(0), endedAt: at(2), outcome: 'done' },
      { phase: 'kube-join', attempt: 1, startedAt: at(3), endedAt: at(5), outcome: 'failed', message: 'refused' },
      { phase: 'kube-join', attempt: 2, startedAt: at(6), outcome: 'running' },
    ]);
  });

  it('closes a run left open when a new one starts (the agent died and ran again)', () => {
    const runs: PhaseRun[] = [];
    recordPhaseEvent(runs, event('kube-init', 'start'), at(0));
    recordPhaseEvent(runs, event('kube-init', 'start'), at(30));
    expect(runs[0]).toMatchObject({ outcome: 'failed', endedAt: at(30), message: NO_END_REPORTED });
    expect(runs[1]).toMatchObject({ outcome: 'running', startedAt: at(30) });
  });
});

describe('the timeline SVG', () => {
  it('has one row per node and one bar per finished phase, colored by outcome, the failure with its message', async () => {
    const timeline = await t.admin.timeline(formation.cluster);
    const parsed = parseTimelineSvg(timelineSvg(timeline));
    expect(parsed.rows.map((r) => r.node)).toEqual(['m1', 'm2', 'm3', 'w1', 'w2']);
    for (const row of parsed.rows) {
      const reported = formation.runs.get(row.node) ?? [];
      expect({ node: row.node, bars: row.bars.map((b) => [b.phase, b.outcome]) }).toEqual({
        node: row.node,
        bars: reported.map((r) => [r.phase, r.outcome]),
      });
    }
    const w2 = parsed.rows.find((r) => r.node === 'w2')!;
    expect(w2.state).toBe('failed');
    expect(w2.bars.find((b) => b.outcome === 'failed')?.title).toContain(FAILURE);
    expect(parsed.failures).toEqual([{ phase: 'kube-join', title: expect.stringContaining(FAILURE) }]);
  });

  it("outlines the critical path: the leader's init, then each control-plane join in turn", async () => {
    const parsed = parseTimelineSvg(timelineSvg(await t.admin.timeline(formation.cluster)));
    const critical = parsed.rows.flatMap((r) => r.bars.filter((b) => b.critical).map((b) => `${r.node}/${b.phase}`));
    expect(critical).toEqual(['m1/kube-init', 'm2/kube-join', 'm3/kube-join']);
    expect(parsed.criticalLinks).toBe(2);
    expect(parsed.label).toMatch(/critical path: init \+ 2 control-plane joins/);
  });

  it('is what `controller timeline` prints, and the same document with --json', async () => {
    const run = (args: string[]) =>
      execa(
        process.execPath,
        [
          AGENT_ENTRY,
          'controller',
          'timeline',
          '--cluster',
          formation.cluster,
          '--url',
          t.controller.url,
          '--data-dir',
          t.dataDir,
          ...args,
        ],
        {
          reject: false,
        },
      );
    const svg = await run([]);
    expect(svg.exitCode).toBe(0);
    const parsed = parseTimelineSvg(svg.stdout);
    expect(parsed.rows).toHaveLength(5);
    expect(parsed.rows.flatMap((r) => r.bars)).toHaveLength([...formation.runs.values()].flat().length);
    const json = await run(['--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ cluster: { id: formation.cluster }, leader: 'm1' });
    const bad = await run(['--width', '5']);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/--width: expected a whole number of pixels from 480 to 20000, got 5/),
    ]);
  }, 60_000);

  it('escapes what nodes report: markup in a message is text', () => {
    const svg = timelineSvg({
      cluster: { id: 'c-1', name: 'c' },
      now: new Date(2000).toISOString(),
      nodes: [
        {
          name: 'w1',
          role: 'worker',
          pool: 'workers',
          state: 'failed',
          spans: [
            {
              phase: 'kube-join',
              attempt: 1,
              startedAt: new Date(0).toISOString(),
              endedAt: new Date(1000).toISOString(),
              outcome: 'failed',
              message: '<script>alert(1)</script> & "quotes"\u0007',
            },
          ],
        },
      ],
    });
    expect(svg).not.toContain('<script>');
    expect(parseTimelineSvg(svg).failures[0]?.title).toContain('<script>alert(1)</script> & "quotes"\\x07');
  });
});

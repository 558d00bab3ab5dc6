/// <reference lib="dom" />
import type { Page } from 'puppeteer-core';
import { describe, expect, it } from 'vitest';
import { browserSkipReason, keepScreenshot, launchBrowser, servingKeyPinIn } from '../helpers/browser.ts';
import { parseTimelineSvg } from '../controller/svg-doc.ts';
import { destroyedAfterEach, namespaceSkipReason, scenarioLab } from './harness.ts';

/**
 * A lab cluster forming while a person watches the controller's web view: Chromium runs in the
 * controller host's namespace (where the admin would sit), logged in with a viewer token from
 * `controller token create`; every VM boots at once and one worker's kubeadm join fails.
 * Then the lab's formation timeline, drawn by `controller timeline`, is checked against what
 * the agents logged and shown in the browser. The screenshots are the README's.
 */

const skip = (await namespaceSkipReason()) ?? browserSkipReason();
const track = destroyedAfterEach();
const FAILURE = 'the kubelet configuration is invalid: cgroupDriver "cgroupfs" does not match the runtime';

type Snapshot = [string, string][];

async function nodeStates(page: Page): Promise<Snapshot> {
  const rows = await page.$$eval('tr[data-node]', (trs) =>
    trs.map((r) => `${r.getAttribute('data-node')}=${r.getAttribute('data-state')}`),
  );
  return rows.map((row) => row.split('=') as [string, string]);
}

describe.skipIf(skip)('the web view of a forming lab cluster', () => {
  it('follows every node live, shows the failure with its message, and draws the formation', async () => {
    const s = track(await scenarioLab('web', { masters: 3, workers: 2 }));
    const ctl = s.lab.network.hosts.find((h) => h.name === 'ctl')!;
    const viewer = (await s.lab.controllerCli(['token', 'create', '--role', 'viewer', '--name', 'e2e-browser'])).trim();
    let stopWatching = async () => {};
    const { browser, close } = await launchBrowser({
      pin: await servingKeyPinIn(ctl.namespace, s.lab.controllerUrl),
      namespace: ctl.namespace,
    });
    try {
      const page = await browser.newPage();
      await page.setViewport({ width: 1280, height: 900 });
      await page.goto(`${s.lab.controllerUrl}/ui`);
      await page.type('#token', viewer);
      await page.click('#login button[type="submit"]');
      await page.waitForSelector(`tr[data-cluster] a`);
      await Promise.all([page.waitForNavigation(), page.click('tr[data-cluster] a')]);
      await page.waitForSelector('#live[data-state="live"]');
      await page.evaluate(() => {
        (window as unknown as { stillTheSamePage: boolean }).stillTheSamePage = true;
      });

      // Every VM powers on at once; the page is read every 100 ms while they boot.
      const snapshots: Snapshot[] = [];
      let booting = true;
      const watching = (async () => {
        while (booting) {
          const states = await nodeStates(page).catch(() => undefined);
          if (states && JSON.stringify(states) !== JSON.stringify(snapshots.at(-1))) snapshots.push(states);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();
      stopWatching = async () => {
        booting = false;
        await watching;
      };
      const codes = await Promise.all(
        s.lab.nodes.map((node) => s.boot(node, node.name === 'w2' ? { PKE_STANDIN_KUBEADM_FAIL: `join:${FAILURE}:99` } : undefined)),
      );
      expect(codes).toEqual([0, 0, 0, 0, 1]);
      await page.waitForSelector('tr[data-node="w2"][data-state="failed"]', { timeout: 15_000 });
      await page.waitForFunction(() => document.querySelectorAll('tr[data-node][data-state="ready"]').length === 4, { timeout: 15_000 });
      await stopWatching();

      expect(await page.evaluate(() => (window as unknown as { stillTheSamePage?: boolean }).stillTheSamePage)).toBe(true);
      // The page went through the formation: nodes bootstrapping, some ready while others were not yet, all done.
      expect(snapshots.some((states) => states.some(([, state]) => state === 'bootstrapping'))).toBe(true);
      expect(snapshots.some((states) => states.some(([, st]) => st === 'ready') && states.some(([, st]) => st === 'bootstrapping'))).toBe(
        true,
      );
      expect(snapshots.length).toBeGreaterThanOrEqual(4);
      // Listed in registration order, which parallel boots make any order.
      expect((await nodeStates(page)).sort()).toEqual([
        ['m1', 'ready'],
        ['m2', 'ready'],
        ['m3', 'ready'],
        ['w1', 'ready'],
        ['w2', 'failed'],
      ]);
      expect(await page.$eval('tr[data-node="w2"] td.error', (td) => td.textContent ?? '')).toContain(FAILURE);
      await keepScreenshot(page, 'lab-web-view', { readme: true });

      // The timeline `npm run lab` writes: a row per node, a bar per phase run each agent logged as finished.
      const svg = await s.lab.controllerCli(['timeline', '--cluster', s.lab.clusterName]);
      const timeline = parseTimelineSvg(svg);
      expect(timeline.rows.map((r) => r.node).sort()).toEqual(['m1', 'm2', 'm3', 'w1', 'w2']);
      for (const row of timeline.rows) {
        const finished = (s.logs.get(row.node) ?? []).filter((line) => line.event === 'phase.done' || line.event === 'phase.failed');
        expect({ node: row.node, bars: row.bars.map((b) => b.phase) }).toEqual({
          node: row.node,
          bars: finished.map((line) => line.phase),
        });
      }
      expect(timeline.failures).toEqual([{ phase: 'kube-join', title: expect.stringContaining(FAILURE) }]);
      expect(timeline.rows[0]?.bars.find((b) => b.critical)?.phase).toBe('kube-init');
      const timelinePage = await browser.newPage();
      await timelinePage.setViewport({ width: 1000, height: 300 });
      await timelinePage.setContent(`<!doctype html><body style="margin:0">${svg}</body>`);
      await keepScreenshot(timelinePage, 'lab-timeline', { readme: true });
    } finally {
      await stopWatching();
      await close();
    }
    // The executable is rebuilt first when its sources changed: minutes on a busy two-core machine.
  }, 600_000);
});

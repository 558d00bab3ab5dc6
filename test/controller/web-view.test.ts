/// <reference lib="dom" />
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { browserSkipReason, keepScreenshot, launchBrowser, servingKeyPin } from '../helpers/browser.ts';
import { actOutFormation, type Formation } from './formation.ts';
import { addNode, createCluster, startTestController, type TestController } from './helpers.ts';

/**
 * The web view in a real browser (Debian's Chromium, headless): the login and who it refuses,
 * a cluster's page updating live while its formation is reported, a failure with its message,
 * a phone's screen.
 */

const skip = browserSkipReason();
const FAILURE = 'kubeadm join exited 1: the kubelet configuration is invalid: cgroupDriver "cgroupfs" does not match the runtime';

let t: TestController;
let browser: Browser;
let closeBrowser: () => Promise<void>;
let viewerToken: string;
let formation: Formation | undefined;

beforeAll(async () => {
  if (skip) return;
  t = await startTestController();
  ({ browser, close: closeBrowser } = await launchBrowser({ pin: await servingKeyPin(t.controller.url) }));
  viewerToken = (await t.admin.createAccessToken({ role: 'viewer', name: 'web-view-test' })).token;
}, 60_000);

afterAll(async () => {
  await formation?.close();
  await closeBrowser?.();
  await t?.close();
});

/** A fresh browser context (no cookies) at `path`. */
async function openPage(path: string): Promise<{ page: Page; status: number | undefined }> {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  const answer = await page.goto(`${t.controller.url}${path}`);
  return { page, status: answer?.status() };
}

async function logIn(page: Page, token: string): Promise<string> {
  await page.type('#token', token);
  await page.click('#login button[type="submit"]');
  await page.waitForFunction(
    () => (document.getElementById('login-message')?.textContent ?? '') !== 'Checking…' || !document.getElementById('login'),
  );
  await page.waitForNetworkIdle({ idleTime: 200 }).catch(() => undefined);
  return (await page.$eval('#login-message', (el) => el.textContent ?? '').catch(() => '')) || '';
}

describe.skipIf(skip)('the web view', () => {
  it('asks for a login, and refuses no token, a wrong one, a node token and a metrics token', async () => {
    const { page, status } = await openPage('/ui');
    expect(status).toBe(401);
    expect(await page.$('#login')).not.toBeNull();
    expect(await page.$('table')).toBeNull();

    expect(await logIn(page, 'not-a-token')).toBe('the token is not a valid controller token');
    const cluster = (await createCluster(t.admin)).id;
    const node = await addNode(t.admin, cluster, 'm1', 'master');
    await page.$eval('#token', (el) => {
      (el as HTMLInputElement).value = '';
    });
    expect(await logIn(page, node.config.controller.token)).toMatch(/a node token cannot see the view/);
    await node.client.close();
    await page.$eval('#token', (el) => {
      (el as HTMLInputElement).value = '';
    });
    const metrics = (await t.admin.createAccessToken({ role: 'metrics' })).token;
    expect(await logIn(page, metrics)).toMatch(/a metrics token cannot see the view/);
    // Still the login form: no cookie was set by any of them.
    await page.reload();
    expect(await page.$('#login')).not.toBeNull();
    expect(await page.cookies()).toEqual([]);
    await page.browserContext().close();
  }, 60_000);

  it("shows a cluster's formation live, without reloading, and a failure with its message", async () => {
    const { page } = await openPage('/ui');
    await logIn(page, viewerToken);
    await page.waitForSelector('#logout');
    // The cookie the view runs on: HttpOnly, Secure, SameSite=Strict, for /ui only.
    expect(await page.cookies()).toEqual([
      expect.objectContaining({ name: 'pke_view', path: '/ui', httpOnly: true, secure: true, sameSite: 'Strict' }),
    ]);

    // A formation reported step by step while the page of its cluster is open.
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let pageOpen: () => void = () => {};
    const opened = new Promise<void>((resolve) => {
      pageOpen = resolve;
    });
    const formed = actOutFormation(t, {
      masters: 3,
      workers: 2,
      failing: 'w2',
      failure: FAILURE,
      stepMs: 150,
      beforeFormation: async (id) => {
        await page.goto(`${t.controller.url}/ui/clusters/${id}`);
        pageOpen();
        await released;
      },
    });
    await opened;
    await page.evaluate(() => {
      (window as unknown as { stillTheSamePage: boolean }).stillTheSamePage = true;
    });
    await page.waitForSelector('#live[data-state="live"]');
    expect(await page.$$('tr[data-node]')).toEqual([]);
    const updatesAtStart = Number(await page.$eval('body', (b) => b.dataset.updates ?? '0'));

    release();
    formation = await formed;
    await page.waitForSelector('tr[data-node="w1"][data-state="ready"]', { timeout: 20_000 });
    await page.waitForSelector('tr[data-node="w2"][data-state="failed"]', { timeout: 20_000 });
    expect(await page.evaluate(() => (window as unknown as { stillTheSamePage?: boolean }).stillTheSamePage)).toBe(true);
    const updates = Number(await page.$eval('body', (b) => b.dataset.updates ?? '0')) - updatesAtStart;
    // Reports came in over some seconds; the page took several updates, not one at the end.
    expect(updates).toBeGreaterThanOrEqual(3);

    const states = await page.$$eval('tr[data-node]', (rows) =>
      rows.map((r) => [r.getAttribute('data-node'), r.getAttribute('data-state')]),
    );
    expect(states).toEqual([
      ['m1', 'ready'],
      ['m2', 'ready'],
      ['m3', 'ready'],
      ['w1', 'ready'],
      ['w2', 'failed'],
    ]);
    const error = await page.$eval('tr[data-node="w2"] td.error', (td) => td.textContent ?? '');
    expect(error).toContain(`kube-join (attempt 1): ${FAILURE}`);
    // The timeline on the page: a row per node, the failed bar's hover text carrying the message.
    expect(await page.$$eval('#timeline g.row', (rows) => rows.map((r) => r.getAttribute('data-node')))).toEqual([
      'm1',
      'm2',
      'm3',
      'w1',
      'w2',
    ]);
    const failedTitle = await page.$eval('#timeline rect.bar[data-outcome="failed"] title', (el) => el.textContent ?? '');
    expect(failedTitle).toContain(FAILURE);
    expect(await page.$eval('[data-fact="leader"] dd', (dd) => dd.textContent)).toMatch(/^m1 \(epoch 1\): initialized/);

    await page.setViewport({ width: 1280, height: 900 });
    await keepScreenshot(page, 'web-view');
    // On a phone the table turns into one block per node; nothing but the timeline scrolls sideways.
    await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    expect(await page.$eval('tr[data-node="w2"] td.error', (td) => getComputedStyle(td).display)).toBe('block');
    await keepScreenshot(page, 'web-view-phone', { fullPage: false, readme: true });

    // Logging out ends the session.
    await page.click('#logout');
    await page.waitForSelector('#login');
    expect(await page.cookies()).toEqual([]);
    await page.browserContext().close();
  }, 120_000);

  it('needs nothing from the network but the controller', async () => {
    const { page } = await openPage('/ui');
    await logIn(page, viewerToken);
    const requested: string[] = [];
    page.on('request', (request) => requested.push(request.url()));
    await page.goto(`${t.controller.url}/ui`);
    await page.waitForNetworkIdle({ idleTime: 300 });
    expect(requested.length).toBeGreaterThan(0);
    expect(requested.filter((url) => !url.startsWith(t.controller.url))).toEqual([]);
    await page.browserContext().close();
  }, 60_000);
});

import { X509Certificate, createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import path from 'node:path';
import { execa } from 'execa';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { REPO, scratchDir } from './cli.ts';

/**
 * Debian's Chromium, headless, driven by puppeteer-core: the web view's tests look at what a
 * person's browser shows. It trusts exactly the controller's serving key (its SPKI pinned), no
 * other certificate, and reaches nothing but the controller.
 */

const CHROMIUM = '/usr/bin/chromium';
/** Screenshots every run takes; PKE_UPDATE_SCREENSHOTS=1 also copies them to docs/screenshots/ for the README. */
const SCREENSHOTS = path.join(REPO, '.cache/screenshots');
const DOCS_SCREENSHOTS = path.join(REPO, 'docs/screenshots');

export function browserSkipReason(): string | undefined {
  return existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing (scripts/setup.sh installs Debian's chromium)`;
}

/** base64 SHA-256 of the serving certificate's SubjectPublicKeyInfo, as --ignore-certificate-errors-spki-list takes it. */
export function servingKeyPin(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      const raw = socket.getPeerCertificate().raw;
      socket.end();
      resolve(pinOf(new X509Certificate(raw)));
    });
    socket.once('error', reject);
  });
}

/** The same pin, read inside a network namespace (a lab's controller is reachable only there). */
export async function servingKeyPinIn(namespace: string, url: string): Promise<string> {
  const { host } = new URL(url);
  const result = await execa('ip', ['netns', 'exec', namespace, 'openssl', 's_client', '-connect', host, '-showcerts'], {
    input: '',
    reject: false,
  });
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(String(result.stdout))?.[0];
  if (!pem) throw new Error(`no certificate from ${url} in ${namespace}: ${String(result.stderr).slice(-300)}`);
  return pinOf(new X509Certificate(pem));
}

function pinOf(cert: X509Certificate): string {
  return createHash('sha256')
    .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
    .digest('base64');
}

/** Headless Chromium trusting `pin`; with `namespace`, Chromium runs inside that network namespace. */
export async function launchBrowser(options: { pin: string; namespace?: string }): Promise<{ browser: Browser; close(): Promise<void> }> {
  const scratch = scratchDir('chromium');
  let executablePath = CHROMIUM;
  if (options.namespace) {
    executablePath = path.join(scratch.dir, 'chromium-in-namespace');
    writeFileSync(executablePath, `#!/bin/sh\nexec ip netns exec ${options.namespace} ${CHROMIUM} "$@"\n`);
    chmodSync(executablePath, 0o755);
  }
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    // DevTools over pipes rather than a port: the browser may live in another network namespace.
    pipe: true,
    userDataDir: path.join(scratch.dir, 'profile'),
    args: [
      // Root in a container has no user namespaces for Chromium's sandbox.
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      `--ignore-certificate-errors-spki-list=${options.pin}`,
    ],
  });
  return {
    browser,
    close: async () => {
      await browser.close();
      scratch.remove();
    },
  };
}

/**
 * A screenshot of the page, kept under .cache/screenshots; the README's (`readme`) also go to
 * docs/screenshots with PKE_UPDATE_SCREENSHOTS=1. Returns its path.
 */
export async function keepScreenshot(page: Page, name: string, options: { fullPage?: boolean; readme?: boolean } = {}): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file as `${string}.png`, fullPage: options.fullPage ?? true });
  if (options.readme && process.env.PKE_UPDATE_SCREENSHOTS === '1') {
    mkdirSync(DOCS_SCREENSHOTS, { recursive: true });
    copyFileSync(file, path.join(DOCS_SCREENSHOTS, `${name}.png`));
  }
  return file;
}

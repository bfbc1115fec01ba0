// What the Chromium tests share: Debian's Chromium through playwright-core,
// failures collected (console errors, page errors, failed requests, axe-core
// WCAG 2.x A/AA violations), and signing in with the keyboard (with a TOTP
// code from otpauth, an independent RFC 6238 implementation, for staff).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import * as OTPAuth from 'otpauth';

const require = createRequire(import.meta.url);
export const base = (process.env.NARA_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
export const accounts = process.env.NARA_ACCOUNTS ? JSON.parse(readFileSync(process.env.NARA_ACCOUNTS, 'utf8')) : [];
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export const failures = [];
export const fail = (msg) => { failures.push(msg); console.error(`FAIL ${msg}`); };

export const launch = () => chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

export async function audit(page, label) {
  // page.evaluate runs through the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () =>
    await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] } }));
  for (const v of result.violations) {
    fail(`${label}: axe ${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`);
  }
  return result;
}

// Audits `path` in en, es and ko and leaves the page on its English version;
// `audited.count` counts the pages audited this run.
export const audited = { count: 0 };
export async function auditAll(page, path, label) {
  const at = (lang) => `${base}${path}${path.includes('?') ? '&' : '?'}lang=${lang}`;
  for (const lang of ['en', 'es', 'ko']) {
    await page.goto(at(lang), { waitUntil: 'networkidle' });
    await audit(page, `${label} [${lang}]`);
    audited.count += 1;
  }
  await page.goto(at('en'), { waitUntil: 'networkidle' });
}

export function watch(page, label) {
  page.on('console', (m) => { if (m.type() === 'error') fail(`${label}: console error: ${m.text()}`); });
  page.on('pageerror', (e) => fail(`${label}: page error: ${e.message}`));
  page.on('requestfailed', (r) => {
    // The browser's own favicon fetch is cancelled when a navigation starts before it ends.
    if (r.url().endsWith('/favicon.svg') && r.failure()?.errorText === 'net::ERR_ABORTED') return;
    fail(`${label}: request failed: ${r.url()} ${r.failure()?.errorText}`);
  });
}

export const totp = (account) =>
  new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(account.totp_secret) }).generate();

// Signs in with the keyboard in a fresh context; returns it and its page.
export async function signIn(browser, account, lang = 'en') {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  watch(page, `sign-in ${account.username}`);
  await page.goto(`${base}/sign-in?lang=${lang}`, { waitUntil: 'networkidle' });
  await page.fill('#username', account.username);
  await page.fill('#password', account.password);
  await page.keyboard.press('Enter');
  if (account.totp_secret) {
    await page.waitForURL(/second-factor/);
    await audit(page, `/sign-in/second-factor [${lang}]`);
    await page.fill('#code', totp(account));
    await page.keyboard.press('Enter');
  }
  await page.waitForURL(/\/account/);
  await page.waitForLoadState('networkidle');
  return { ctx, page };
}

// Ends the run: exits non-zero with every failure listed, or prints `ok`.
export function finish(name, ok) {
  if (failures.length) {
    console.error(`${name}: ${failures.length} failure(s)`);
    process.exit(1);
  }
  console.log(ok);
}

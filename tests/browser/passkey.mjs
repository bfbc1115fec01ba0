// Passkeys in a real browser: Chromium's virtual WebAuthn authenticator (the
// DevTools protocol's WebAuthn domain) plays the official's security key.
// An official signs in with password + TOTP, adds a passkey on the account
// page, signs out, then signs in with password + passkey.
//
// NARA_URL: a `nara demo` whose public URL has a domain name (http://localhost:PORT);
// NARA_ACCOUNTS: its demo-accounts.json.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import * as OTPAuth from 'otpauth';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const base = process.env.NARA_URL || 'http://localhost:8080';
const accounts = JSON.parse(readFileSync(process.env.NARA_ACCOUNTS, 'utf8'));
const official = accounts.find((a) => a.role === 'official');

const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(what);
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext();
const page = await context.newPage();
const errors = [];
page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
page.on('pageerror', (e) => errors.push(e.message));

const cdp = await context.newCDPSession(page);
await cdp.send('WebAuthn.enable');
const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
  options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
});

async function password() {
  await page.goto(`${base}/sign-in`);
  await page.fill('#username', official.username);
  await page.fill('#password', official.password);
  await page.keyboard.press('Enter');
  await page.waitForURL(/second-factor/);
}

// 1. Password + TOTP, then add a passkey.
await password();
await page.fill('#code', new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(official.totp_secret) }).generate());
await page.keyboard.press('Enter');
await page.waitForURL(/\/account/);
await page.fill('#passkey-name', 'virtual key');
await page.click('#passkey-add');
await page.waitForSelector('#passkeys li', { timeout: 10000 }).catch(async () => {
  console.log('status:', await page.textContent('#passkey-status'));
});
check((await page.textContent('#passkeys'))?.includes('virtual key'), 'the passkey is listed on the account page');
const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
check(credentials.length === 1, 'the authenticator holds one credential');
await page.evaluate(axeSource);
const axe = await page.evaluate(async () => await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } }));
check(axe.violations.length === 0, `account page with a passkey: no axe violations ${axe.violations.map((v) => v.id).join(',')}`);

// 2. Sign out, then password + passkey.
await page.click('nav form[action="/sign-out"] button');
await page.waitForURL(`${base}/`);
await password();
check(await page.isVisible('#passkey-sign-in'), 'the second-factor page offers the passkey');
await page.click('#passkey-sign-in');
await page.waitForURL(/\/account/, { timeout: 10000 }).catch(async () => {
  console.log('status:', await page.textContent('#passkey-status'));
});
check(page.url().includes('/account') && (await page.textContent('#account-name'))?.includes('Park Seoyeon'), 'signed in with password + passkey');
const after = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
check(after.credentials[0].signCount >= 1, `the authenticator's counter moved (${after.credentials[0].signCount})`);
check(errors.length === 0, `no console errors (${errors.join('; ')})`);

await browser.close();
if (failures.length) {
  console.log(`${failures.length} passkey checks failed`);
  process.exit(1);
}
console.log('passkeys: registered and used with Chromium\'s virtual authenticator');

// The national login, proven with an independent OpenID Connect client:
// panva's openid-client (certified relying-party library, from npm) runs a
// sample agency app; Debian's Chromium, driven by playwright-core, is the
// citizen. Checks: discovery, the authorization code flow with PKCE S256,
// the EdDSA ID token (signature, iss, aud, nonce, exp — all checked by the
// library), userinfo, single sign-on on the second visit, an official's
// second factor (amr), refresh-token rotation with reuse detection, and
// revocation (RFC 7009).
//
// NARA_URL: a running `nara demo`; NARA_DATA: its data directory.
import http from 'node:http';
import fs from 'node:fs';
import { chromium } from 'playwright-core';
import { createRequire } from 'node:module';
import * as client from 'openid-client';
import * as OTPAuth from 'otpauth';

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const base = process.env.NARA_URL || 'http://127.0.0.1:8080';
const data = process.env.NARA_DATA || './nara-data';
const app = JSON.parse(fs.readFileSync(`${data}/demo-app.json`, 'utf8'));
const accounts = JSON.parse(fs.readFileSync(`${data}/demo-accounts.json`, 'utf8'));
const citizen = accounts.find((a) => a.role === 'citizen');
const official = accounts.find((a) => a.role === 'official');

const failures = [];
const check = (ok, what) => {
  if (ok) console.log(`ok   ${what}`);
  else {
    console.log(`FAIL ${what}`);
    failures.push(what);
  }
};

// ---- the sample agency app (a relying party), on the registered redirect URI's port
const redirect = new URL(app.redirect_uri);
const config = await client.discovery(new URL(base), app.client_id, undefined, client.ClientSecretBasic(app.client_secret), {
  execute: [client.allowInsecureRequests],
});
check(config.serverMetadata().issuer === base, 'discovery: the issuer is the URL the client asked');
const pending = new Map(); // state -> { verifier, nonce }
let lastTokens = null;
let lastClaims = null;
let lastUserinfo = null;

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, app.redirect_uri);
  try {
    if (url.pathname === '/login') {
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      pending.set(state, { verifier, nonce });
      const to = client.buildAuthorizationUrl(config, {
        redirect_uri: app.redirect_uri,
        scope: 'openid profile',
        code_challenge: await client.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
        state,
        nonce,
      });
      res.writeHead(302, { location: to.href }).end();
    } else if (url.pathname === redirect.pathname) {
      const state = url.searchParams.get('state');
      const p = pending.get(state);
      pending.delete(state);
      const tokens = await client.authorizationCodeGrant(config, url, {
        pkceCodeVerifier: p.verifier,
        expectedState: state,
        expectedNonce: p.nonce,
        idTokenExpected: true,
      });
      lastTokens = tokens;
      lastClaims = tokens.claims();
      lastUserinfo = await client.fetchUserInfo(config, tokens.access_token, lastClaims.sub);
      res.writeHead(302, { location: '/' }).end();
    } else {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(
        `<!doctype html><html lang="en"><title>Sample agency app</title><main><h1>Sample agency app</h1>` +
          (lastUserinfo ? `<p id="who">Signed in as ${lastUserinfo.name}</p>` : `<p><a id="login" href="/login">Sign in with nara</a></p>`) +
          `</main></html>`,
      );
    }
  } catch (e) {
    console.log('sample app error:', e);
    res.writeHead(500).end(String(e));
  }
});
await new Promise((ok) => server.listen(Number(redirect.port), redirect.hostname, ok));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function signInThroughApp(account, totp) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  lastUserinfo = null;
  await page.goto(`${redirect.origin}/`);
  await page.click('#login');
  await page.waitForURL(/\/sign-in/);
  await page.fill('#username', account.username);
  await page.fill('#password', account.password);
  await page.keyboard.press('Enter');
  if (totp) {
    await page.waitForURL(/\/sign-in\/second-factor/);
    const code = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(account.totp_secret), digits: 6, period: 30, algorithm: 'SHA1' }).generate();
    await page.fill('#code', code);
    await page.keyboard.press('Enter');
  }
  await page.waitForURL(/\/oidc\/authorize/);
  const consent = await page.textContent('#consent-app');
  check(consent.includes('Sample agency app'), `${account.username}: the consent screen names the app`);
  await page.evaluate(axeSource);
  const axe = await page.evaluate(async () =>
    await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }));
  check(axe.violations.length === 0, `${account.username}: the consent screen has no axe violations ${axe.violations.map((v) => v.id).join(',')}`);
  // Keyboard: tab to "Allow" and press it.
  await page.focus('#consent-allow');
  await page.keyboard.press('Enter');
  await page.waitForURL(`${redirect.origin}/`);
  const who = await page.textContent('#who');
  check(who.includes(account.username === citizen.username ? 'Kim Minji' : ''), `${account.username}: the app shows "${who}"`);
  check(errors.length === 0, `${account.username}: no console errors (${errors.join('; ')})`);
  return { context, page };
}

// 1. A citizen signs in once and is signed in to the agency app.
const { context, page } = await signInThroughApp(citizen, false);
check(lastClaims.iss === base && lastClaims.aud === app.client_id, 'ID token: iss and aud');
check(lastClaims.name === lastUserinfo.name && lastUserinfo.sub === lastClaims.sub, 'userinfo matches the ID token');
check(Array.isArray(lastClaims.amr) && lastClaims.amr.includes('pwd'), `citizen amr ${JSON.stringify(lastClaims.amr)}`);

// 2. Single sign-on: the second visit needs neither password nor consent.
lastUserinfo = null;
await page.goto(`${redirect.origin}/login`);
await page.waitForURL(`${redirect.origin}/`);
check((await page.textContent('#who')).includes('Kim Minji'), 'single sign-on: signed in again without a password');

// 3. Refresh-token rotation; reuse of a rotated token revokes the family.
const first = lastTokens;
const second = await client.refreshTokenGrant(config, first.refresh_token);
check(second.refresh_token && second.refresh_token !== first.refresh_token, 'refresh: a new refresh token');
let reused = null;
try {
  await client.refreshTokenGrant(config, first.refresh_token);
} catch (e) {
  reused = e;
}
check(reused && reused.error === 'invalid_grant', 'refresh: reusing the rotated token is refused');
let family = null;
try {
  await client.refreshTokenGrant(config, second.refresh_token);
} catch (e) {
  family = e;
}
check(family && family.error === 'invalid_grant', 'refresh: after reuse the whole family is revoked');

// 4. Revocation (RFC 7009): a revoked access token no longer opens userinfo.
const fresh = lastTokens.access_token;
lastUserinfo = null;
await page.goto(`${redirect.origin}/login`);
await page.waitForURL(`${redirect.origin}/`);
const live = lastTokens;
await client.fetchUserInfo(config, live.access_token, live.claims().sub);
await client.tokenRevocation(config, live.access_token);
let revoked = null;
try {
  await client.fetchUserInfo(config, live.access_token, live.claims().sub);
} catch (e) {
  revoked = e;
}
check(revoked !== null, 'revocation: the revoked access token is refused by userinfo');
check(fresh !== live.access_token, 'each sign-in gets its own tokens');
await context.close();

// 5. An official signs in with a second factor; the ID token says so.
const officialRun = await signInThroughApp(official, true);
check(lastClaims.amr.includes('otp'), `official amr ${JSON.stringify(lastClaims.amr)} includes otp`);
await officialRun.context.close();

await browser.close();
server.close();
if (failures.length) {
  console.log(`${failures.length} OIDC checks failed`);
  process.exit(1);
}
console.log('OIDC: all checks passed with openid-client');

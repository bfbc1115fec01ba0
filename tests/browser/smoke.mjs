// Browser smoke test: with `nara demo` (or any nara) running at NARA_URL, load
// the public pages in each language in Debian's Chromium, and fail on any
// console error, page error, failed request or axe-core (WCAG 2.x A/AA)
// violation. Also checks keyboard use (skip link), the htmx live search and,
// with NARA_ACCOUNTS (demo-accounts.json), every signed-in page by its role.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';
import * as OTPAuth from 'otpauth';

const require = createRequire(import.meta.url);
const base = (process.env.NARA_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const accounts = process.env.NARA_ACCOUNTS ? JSON.parse(readFileSync(process.env.NARA_ACCOUNTS, 'utf8')) : [];
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const failures = [];
const fail = (msg) => { failures.push(msg); console.error(`FAIL ${msg}`); };

const browser = await chromium.launch({
  executablePath,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

async function audit(page, label) {
  // page.evaluate runs through the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () =>
    await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] } }));
  for (const v of result.violations) {
    fail(`${label}: axe ${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`);
  }
  return result;
}

function watch(page, label) {
  page.on('console', (m) => { if (m.type() === 'error') fail(`${label}: console error: ${m.text()}`); });
  page.on('pageerror', (e) => fail(`${label}: page error: ${e.message}`));
  page.on('requestfailed', (r) => fail(`${label}: request failed: ${r.url()} ${r.failure()?.errorText}`));
}

const context = await browser.newContext();
let checked = 0;
for (const lang of ['en', 'es', 'ko']) {
  for (const path of ['/', '/services', '/services/1', '/agencies', '/agencies/KR/GOV/MOIS', '/ledger', '/registries', '/apply', '/apply/resident-registration-certificate', '/apply/extended-hour-school-enrolment', '/sign-in', '/sign-up']) {
    const page = await context.newPage();
    const label = `${path} [${lang}]`;
    watch(page, label);
    const url = `${base}${path}${path.includes('?') ? '&' : '?'}lang=${lang}`;
    const response = await page.goto(url, { waitUntil: 'networkidle' });
    if (!response || response.status() !== 200) fail(`${label}: HTTP ${response?.status()}`);
    const htmlLang = await page.getAttribute('html', 'lang');
    if (htmlLang !== lang) fail(`${label}: <html lang="${htmlLang}">`);
    await audit(page, label);
    checked += 1;
    await page.close();
  }
}

// Keyboard: the first Tab reaches the skip link, Enter moves focus to <main>.
{
  const page = await context.newPage();
  watch(page, 'keyboard');
  await page.goto(`${base}/services?lang=en`, { waitUntil: 'networkidle' });
  await page.keyboard.press('Tab');
  const first = await page.evaluate(() => document.activeElement?.className);
  if (first !== 'skip-link') fail(`keyboard: first Tab focused "${first}", not the skip link`);
  await page.keyboard.press('Enter');
  const target = await page.evaluate(() => document.activeElement?.id);
  if (target !== 'main') fail(`keyboard: the skip link moved focus to "${target}", not #main`);
  // Live search (htmx): typing narrows the results without a page load.
  const before = await page.textContent('#results .count');
  await page.fill('#q', 'certificate');
  await page.waitForFunction((b) => document.querySelector('#results .count')?.textContent !== b, before, { timeout: 5000 })
    .catch(() => fail('live search: results did not update'));
  const after = await page.textContent('#results .count');
  if (!page.url().includes('q=certificate')) fail(`live search: address not updated (${page.url()})`);
  await audit(page, 'live search');
  console.log(`live search: "${before?.trim()}" → "${after?.trim()}"`);
  await page.close();
}

// Signs in with the keyboard (and a TOTP code from otpauth, an independent
// RFC 6238 implementation, for staff), in a fresh context.
async function signIn(account, lang) {
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
    const code = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(account.totp_secret) }).generate();
    await page.fill('#code', code);
    await page.keyboard.press('Enter');
  }
  await page.waitForURL(/\/account/);
  await page.waitForLoadState('networkidle');
  return { ctx, page };
}

// Every signed-in page, audited in each language, by the role that sees it.
const byRole = (role) => accounts.find((a) => a.role === role);
const signedInPages = [
  ['citizen', ['/account', '/account/second-factor', '/my/consents', '/my/data-access', '/my/applications', '/apply/resident-registration-certificate']],
  ['agency_admin', ['/admin/officials', '/admin/apps', '/admin/machine-clients', '/admin/exchange', '/cases']],
  ['service_designer', ['/designer/services']],
  ['security_analyst', ['/security/events']],
  ['operator', ['/systems', '/operations/exchange']],
];

// The once-only exchange as a citizen sees it: she gives Seoul's welfare
// portal her consent with the keyboard, the portal's system fetches her
// resident record through the gateway (`nara exchange call`), and the access
// appears on her data-access page.
if (process.env.NARA_BIN && process.env.NARA_DATA) {
  const { execFileSync } = await import('node:child_process');
  const { ctx, page } = await signIn(byRole('citizen'), 'ko');
  await page.goto(`${base}/my/consents?lang=ko`, { waitUntil: 'networkidle' });
  await page.selectOption('#service', 'KR/GOV/MOIS/resident-registry/residents');
  await page.selectOption('#agency', 'KR/LOC/SEOUL');
  await page.selectOption('#purpose', 'benefit-eligibility');
  await page.focus('#days');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#new-consent');
  const consent = (await page.textContent('#new-consent')).trim();
  await audit(page, 'consent given [ko]');
  const out = execFileSync(process.env.NARA_BIN, ['exchange', 'call', '--url', base, '--data', process.env.NARA_DATA,
    '--subject', '900101-2345678', '--purpose', 'benefit-eligibility', '--consent', consent,
    '/r1/KR/GOV/MOIS/resident-registry/residents/record'], { encoding: 'utf8' });
  if (!out.startsWith('200')) fail(`exchange with consent ${consent}: ${out}`);
  await page.goto(`${base}/my/data-access?lang=ko`, { waitUntil: 'networkidle' });
  const rows = await page.$$('#data-access tbody tr');
  if (rows.length !== 1) fail(`data-access page: ${rows.length} rows after one exchange`);
  const text = await page.textContent('#data-access');
  if (!text.includes('서울')) fail(`data-access page does not name the agency in Korean: ${text}`);
  await audit(page, 'data access after an exchange [ko]');
  console.log(`exchange: consent ${consent} given in the browser, record fetched, shown on the citizen's page`);
  checked += 2;
  await ctx.close();
}
for (const [role, paths] of signedInPages) {
  const account = byRole(role);
  if (!account) continue;
  // One sign-in per role: a TOTP code works once, so staff sign in once.
  const { ctx, page } = await signIn(account, 'en');
  for (const lang of ['en', 'es', 'ko']) {
    for (const path of paths) {
      const response = await page.goto(`${base}${path}${path.includes('?') ? '&' : '?'}lang=${lang}`, { waitUntil: 'networkidle' });
      if (!response || response.status() !== 200) fail(`${path} [${lang}] as ${role}: HTTP ${response?.status()}`);
      await audit(page, `${path} [${lang}] as ${role}`);
      checked += 1;
      if (path === '/systems' && lang === 'ko') {
        if (!(await page.$('table')) || !(await page.$('figure.chart svg'))) fail('systems: no table or chart after sign-in');
        await page.screenshot({ path: process.env.SCREENSHOT || '/tmp/nara-systems.png', fullPage: false });
      }
      if (path === '/account/second-factor' && !(await page.$('figure.qr svg'))) fail('second factor set-up: no QR code');
    }
  }
  await ctx.close();
}

await browser.close();
if (failures.length) {
  console.error(`browser smoke test: ${failures.length} failure(s) over ${checked} pages`);
  process.exit(1);
}
console.log(`browser smoke test: ${checked} pages in en, es and ko, no console errors, no axe violations`);

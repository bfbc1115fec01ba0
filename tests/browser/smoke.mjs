// Browser smoke test: with `nara demo` (or any nara) running at NARA_URL, load
// the public pages in each language in Debian's Chromium, and fail on any
// console error, page error, failed request or axe-core (WCAG 2.x A/AA)
// violation. Also checks keyboard use (skip link), the htmx live search and,
// with NARA_ACCOUNTS (demo-accounts.json), every signed-in page by its role.
import { accounts, audit, base, fail, finish, launch, signIn as signInWith, watch } from './harness.mjs';

const browser = await launch();
const signIn = (account, lang) => signInWith(browser, account, lang);

const context = await browser.newContext();
let checked = 0;
for (const lang of ['en', 'es', 'ko']) {
  for (const path of ['/', '/services', '/services/1', '/agencies', '/agencies/KR/GOV/MOIS', '/ledger', '/registries', '/algorithms', '/algorithms/traffic-signals', '/apply', '/apply/resident-registration-certificate', '/apply/extended-hour-school-enrolment', '/statistics', '/status', '/sign-in', '/sign-up']) {
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

// Every signed-in page, audited in each language, by the role that sees it.
const byRole = (role) => accounts.find((a) => a.role === role);
const signedInPages = [
  ['citizen', ['/account', '/account/second-factor', '/my/consents', '/my/data-access', '/my/applications', '/my/inbox', '/my/decisions', '/apply/resident-registration-certificate']],
  ['agency_admin', ['/admin/officials', '/admin/apps', '/admin/machine-clients', '/admin/exchange', '/cases', '/oversight']],
  ['service_designer', ['/designer/services']],
  ['security_analyst', ['/security/events', '/security/alerts', '/security/incidents', '/security/level', '/security/blocklist', '/security/rules']],
  ['operator', ['/systems', '/operations/exchange', '/operations/backups', '/operations/health']],
];

// The once-only exchange as a citizen sees it: she gives Seoul's welfare
// portal her consent with the keyboard, the portal's system fetches her
// resident record through the gateway (`nara exchange call`), and the access
// appears on her data-access page.
if (process.env.NARA_BIN && process.env.NARA_DATA) {
  const { execFileSync } = await import('node:child_process');
  const { ctx, page } = await signIn(byRole('citizen'), 'ko');
  await page.goto(`${base}/my/data-access?lang=ko`, { waitUntil: 'networkidle' });
  const before = (await page.$$('#data-access tbody tr')).length;
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
  if (rows.length !== before + 1) fail(`data-access page: ${rows.length} rows after one exchange (${before} before)`);
  const text = await page.textContent('#data-access');
  if (!text.includes('서울')) fail(`data-access page does not name the agency in Korean: ${text}`);
  await audit(page, 'data access after an exchange [ko]');
  console.log(`exchange: consent ${consent} given in the browser, record fetched, shown on the citizen's page`);
  checked += 2;
  await ctx.close();
}
// Six failed sign-ins to different accounts from this address: detection
// (a Sigma correlation rule) raises a credential-stuffing alert, so the
// analysts' alerts page is audited with an alert and its triage form.
for (let n = 0; n < 6; n++) {
  await fetch(`${base}/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `username=stuffed-${n}&password=from-a-leaked-list-1`,
    redirect: 'manual',
  });
}
await new Promise((resolve) => setTimeout(resolve, 3000));
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
      if (path === '/security/alerts' && !(await page.$('form[action^="/security/alerts/"] select[name="to"]'))) {
        fail(`alerts [${lang}]: no credential-stuffing alert with its triage form`);
      }
    }
  }
  await ctx.close();
}

await browser.close();
finish(`browser smoke test over ${checked} pages`, `browser smoke test: ${checked} pages in en, es and ko, no console errors, no axe violations`);

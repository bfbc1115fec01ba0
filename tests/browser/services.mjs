// Citizen services end to end in Chromium, against `nara demo`: a citizen
// applies for a resident registration certificate (her name filled in from
// the register after she consents; issued at once) and for a
// business registration (reviewed); the tax service's official takes the
// case from the queue and approves it; she rates the service; the citizen opens her certificate,
// copies it, and checks it on /verify. Every page on the way is audited
// with axe-core; pages are used with the keyboard where a person would.
//
//   NARA_URL=http://127.0.0.1:8080 NARA_ACCOUNTS=nara-data/demo-accounts.json node services.mjs
import { accounts, audit, base, fail, finish, launch, signIn } from './harness.mjs';

const browser = await launch();
const citizen = accounts.find((a) => a.username === 'minji') ?? fail('no citizen minji');
const official = accounts.find((a) => a.username === 'official.nts') ?? fail('no NTS official');
const step = (m) => console.log(`services: ${m}`);

// The citizen's side: start, fill each page, review, consent, submit.
const { ctx, page } = await signIn(browser, citizen, 'en');
async function apply(code, pages, consents) {
  try {
    return await applyOnce(code, pages, consents);
  } catch (e) {
    throw new Error(`${code}: ${e.message} at ${page.url()}: ${(await page.textContent('main')).slice(0, 600)}`);
  }
}
async function applyOnce(code, pages, consents) {
  await page.goto(`${base}/apply/${code}?lang=en`, { waitUntil: 'networkidle' });
  await audit(page, `/apply/${code}`);
  await page.click('#start');
  for (const [n, fill] of pages.entries()) {
    await page.waitForURL(new RegExp(`/pages/${n + 1}$`));
    await audit(page, `${code} page ${n + 1}`);
    await fill();
    await page.click(`form[action$="/pages/${n + 1}"] button[type=submit]`);
    await page.waitForLoadState('networkidle');
    const errors = await page.$$eval('.field-error', (els) => els.map((e) => e.id + ': ' + e.textContent));
    if (errors.length) throw new Error(`${code} page ${n + 1} refused: ${errors.join('; ')}`);
  }
  await page.waitForURL(/\/review$/);
  await audit(page, `${code} review`);
  for (const id of consents) await page.check(`#consent-${id}`);
  await page.click('main form button[type=submit]');
  await page.waitForURL(/\/applications\/[A-Z]+-\d{4}-\d+$/);
  await page.waitForLoadState('networkidle');
  await audit(page, `${code} receipt`);
  return page.url().split('/').pop();
}

const certificate = await apply('resident-registration-certificate', [
  // She sees what nara would fetch, from whom and why, consents, and the
  // register fills in her name.
  async () => {
    await page.check('#prefill-consent-residence');
    await page.click('#prefill-button');
    await page.waitForLoadState('networkidle');
    const name = await page.inputValue('#full_name');
    if (name !== 'Kim Minji') fail(`prefill: full_name is "${name}"`);
    await audit(page, 'certificate page 1 after prefill');
    await page.selectOption('#use', 'bank');
  },
], ['residence']);
if (!(await page.$('a[href^="/documents/"]'))) fail(`certificate ${certificate}: no document on the receipt`);
step(`certificate ${certificate} issued at once`);

const business = await apply('business-registration', [
  async () => {
    await page.fill('#trade_name', 'Minji\'s Bakery <b>');
    await page.selectOption('#kind', 'sole_proprietorship');
    await page.fill('#opening_date', '2026-12-01');
    await page.fill('#premises', '12 Sejong-daero, Jongno-gu, Seoul');
  },
  // The lease, uploaded (typed by its content, stored by its hash).
  async () => {
    await page.setInputFiles('#lease', { name: 'lease.pdf', mimeType: 'application/pdf', buffer: Buffer.from('%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n') });
    await page.click('form.upload button[type=submit]');
    await page.waitForSelector('#lease-current');
    await audit(page, 'business registration: lease attached');
  },
], []);
const state = (await page.textContent('main')).toLowerCase();
if (!state.includes('submitted')) fail(`business registration ${business}: not submitted`);
step(`business registration ${business} submitted for review`);

// The official: sign in (password and TOTP), the queue, the case, two steps.
const staff = await signIn(browser, official, 'en');
const desk = staff.page;
await desk.goto(`${base}/cases?lang=en`, { waitUntil: 'networkidle' });
await audit(desk, '/cases (NTS)');
await desk.click(`a[href="/cases/${business}"]`);
await desk.waitForURL(new RegExp(`/cases/${business}$`));
await audit(desk, 'case: submitted');
await desk.getByRole('button', { name: 'review', exact: true }).click();
await desk.waitForLoadState('networkidle');
if ((await desk.textContent('#state')).trim() !== 'review') fail('case did not move to review');
// The approval step shows the fields it needs, escaped as text.
const shown = await desk.textContent('#shown');
if (!shown.includes('Minji\'s Bakery <b>')) fail(`case view does not show the trade name as text: ${shown}`);
if (await desk.$('#shown b')) fail('the trade name was rendered as markup');
const lease = await desk.$('#shown a[href$="/files/lease"]');
if (!lease) fail('the official cannot open the lease at the approval step');
else {
  const r = await desk.request.get(base + await lease.getAttribute('href'));
  if (r.status() !== 200 || r.headers()['content-type'] !== 'application/pdf') fail(`lease: ${r.status()} ${r.headers()['content-type']}`);
}
await audit(desk, 'case: review');
await desk.getByRole('button', { name: 'approved', exact: true }).click();
await desk.waitForLoadState('networkidle');
if ((await desk.textContent('#state')).trim() !== 'approved') fail('case was not approved');
step(`official.nts approved ${business}`);
await staff.ctx.close();

// The citizen sees the decision and her new document, then verifies her certificate.
await page.goto(`${base}/applications/${business}?lang=ko`, { waitUntil: 'networkidle' });
await audit(page, 'receipt after approval [ko]');
if (!(await page.$('a[href^="/documents/"]'))) fail(`business registration ${business}: no certificate after approval`);
// Decided: she rates the service with the keyboard, once; the statistics count it.
await page.focus('#score-5');
await page.keyboard.press('Space');
await page.fill('#comment', '빨랐어요 <b>thanks</b>');
await page.click('#rate button[type=submit]');
await page.waitForSelector('#rated');
await audit(page, 'receipt after rating [ko]');
await page.goto(`${base}/statistics?lang=en`, { waitUntil: 'networkidle' });
await audit(page, '/statistics after a rating');
const row = await page.textContent('#statistics');
if (!row.includes('Register a business') || !row.includes('100%')) fail(`statistics do not show the rating: ${row.slice(0, 400)}`);
await page.goto(`${base}/applications/${certificate}?lang=en`, { waitUntil: 'networkidle' });
await page.click('a[href^="/documents/"]');
await page.waitForURL(/\/documents\//);
await page.waitForLoadState('networkidle');
await audit(page, 'document');
if (!(await page.$('svg'))) fail('document: no QR code');
const token = (await page.inputValue('#token')).trim();
await page.goto(`${base}/verify?lang=es`, { waitUntil: 'networkidle' });
await audit(page, '/verify [es]');
await page.fill('textarea[name=credential]', token);
await page.click('main form button[type=submit]');
await page.waitForLoadState('networkidle');
await audit(page, '/verify result [es]');
const verdict = await page.textContent('main');
if (!verdict.includes('Kim Minji')) fail('/verify does not show the certificate\'s subject');
if (!(await page.$('#verdict[data-valid="true"]'))) fail(`/verify did not say valid: ${verdict.slice(0, 400)}`);
step('the citizen verified her certificate on /verify');
await ctx.close();
await browser.close();
finish('services', `services: certificate ${certificate} and business registration ${business} end to end in Chromium (axe-clean)`);

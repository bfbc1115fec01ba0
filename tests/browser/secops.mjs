// Security operations end to end in Chromium, against `nara demo` (issue 15's
// "done when"): a credential-stuffing run raises an alert from a starter
// Sigma rule; an analyst groups it into an incident, takes it, notes it,
// raises the national alert level and sees the per-address limit tighten (and
// the public status page say so); a citizen reports a smishing text through
// the portal, and once the analyst lists its address it is in the blocklist
// feeds. Every page on the way is audited with axe-core, in en, es and ko.
//
//   NARA_URL=http://127.0.0.1:8080 NARA_ACCOUNTS=nara-data/demo-accounts.json node secops.mjs
import { accounts, audit, auditAll, audited, base, fail, finish, launch, signIn } from './harness.mjs';

const browser = await launch();
const analyst = accounts.find((a) => a.role === 'security_analyst') ?? fail('no security analyst');
const citizen = accounts.find((a) => a.username === 'junho') ?? accounts.find((a) => a.role === 'citizen');
const step = (m) => console.log(`secops: ${m}`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// 1. Credential stuffing: one address, six accounts, one wrong password each.
for (let n = 0; n < 6; n++) {
  await fetch(`${base}/sign-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `username=stuffing-${n}&password=from-a-leaked-list-2`,
    redirect: 'manual',
  });
}

// 2. A citizen reports a smishing text through the portal.
{
  const { ctx, page } = await signIn(browser, citizen, 'ko');
  await page.goto(`${base}/apply/phishing-report?lang=ko`, { waitUntil: 'networkidle' });
  await audit(page, '/apply/phishing-report [ko]');
  await page.click('#start');
  await page.waitForURL(/\/pages\/1$/);
  await page.selectOption('#channel', 'sms');
  await page.waitForLoadState('networkidle');
  await page.fill('#sender', '010-5555-0199');
  await page.fill('#content', '[Web발신] 택배 주소지 불일치로 반송 예정. 주소 수정: http://parcel-fix.example/kr 문의 1588-0199');
  await page.check('#lost_money-no');
  await audit(page, 'phishing report filled [ko]');
  await page.click('form[action$="/pages/1"] button[type=submit]');
  await page.waitForURL(/\/review$/);
  await page.click('main form button[type=submit]');
  await page.waitForURL(/\/applications\/[A-Z]+-\d{4}-\d+$/);
  step(`smishing reported as ${page.url().split('/').pop()}`);
  await ctx.close();
}

// Staff sign in with a one-time code that works once: wait for a fresh 30 s window.
await sleep(30_000 - (Date.now() % 30_000) + 500);
const { ctx, page } = await signIn(browser, analyst, 'en');

// 3. The alert, grouped into a new incident with the keyboard's worth of clicks.
let grouped = false;
for (let i = 0; i < 20 && !grouped; i++) {
  await page.goto(`${base}/security/alerts?status=open&lang=en`, { waitUntil: 'networkidle' });
  const row = await page.$('tr:has-text("credential stuffing"):has(form[action="/security/incidents"])');
  if (row) {
    await row.$eval('select[name="incident"]', (s) => { s.value = 'new'; });
    await (await row.$('form[action="/security/incidents"] button[type=submit]')).click();
    await page.waitForURL(/\/security\/incidents\/\d+$/);
    grouped = true;
  } else {
    await sleep(1000);
  }
}
if (!grouped) fail('no open credential-stuffing alert to group');
const incident = page.url().split('/').pop();
step(`alert grouped into incident ${incident}`);
await page.selectOption('#analyst', { index: 0 });
await page.click('form:has(#analyst) button[type=submit]');
await page.waitForLoadState('networkidle');
await page.fill('#note', 'One address, six accounts: blocked at the edge while we look.');
await page.click('form:has(#note) button[type=submit]');
await page.waitForLoadState('networkidle');
const timeline = await page.textContent('#timeline + ol');
if (!timeline.includes('blocked at the edge') || !timeline.includes('Assigned')) fail(`incident timeline: ${timeline}`);
await auditAll(page, `/security/incidents/${incident}`, 'incident');
await auditAll(page, '/security/incidents', 'incidents');

// 3b. The rule that raised it, on the test bench: it would have raised the same alert.
await page.goto(`${base}/security/rules?lang=en`, { waitUntil: 'networkidle' });
await page.click('tr:has-text("nara credential stuffing") a[href*="?test="]');
await page.waitForLoadState('networkidle');
if (!(await page.inputValue('#rule-yaml')).includes('value_count')) fail('the running rule is not on the test bench');
await page.focus('#rule-yaml');
await page.keyboard.press('Tab');
await page.keyboard.press('Enter');
await page.waitForLoadState('networkidle');
const outcome = await page.textContent('#outcome');
if (!/Matches: [1-9]/.test(outcome) || !outcome.includes('source_ip=')) fail(`the rule test raised nothing: ${outcome}`);
step(`rule test: ${outcome.match(/Rules evaluated[^\n]*/)?.[0]}`);
await audit(page, 'rule test outcome [en]');
await auditAll(page, '/security/rules', 'rules');

// 4. The alert level raised: the per-address limit tightens, on every page and /status.
const limit = async () => Number(((await page.textContent('main')).match(/make ([\d,]+) public requests/) ?? [])[1]?.replace(/,/g, ''));
await page.goto(`${base}/security/level?lang=en`, { waitUntil: 'networkidle' });
const before = await limit();
const from = await page.inputValue('input[name="from"]');
await page.check('#level-alert');
await page.fill('#level-reason', `Credential stuffing, incident ${incident}: tightening public limits`);
await page.click('form[action="/security/level"] button[type=submit]');
await page.waitForLoadState('networkidle');
const after = await limit();
if (!(after < before)) fail(`the limit did not tighten: ${before} → ${after}`);
step(`alert level ${from} → alert: ${before} → ${after} public requests a minute per address`);
await auditAll(page, '/security/level', 'alert level');
const bar = await page.textContent('.alert-level-bar');
if (!bar.includes('Alert')) fail(`the staff banner does not show the level: ${bar}`);
const status = await (await fetch(`${base}/status?lang=ko`)).text();
if (!status.includes('경계')) fail('the public status page does not show the level');

// 5. The reported address, reviewed and listed, is in the feeds.
let listed = false;
for (let i = 0; i < 20 && !listed; i++) {
  await page.goto(`${base}/security/blocklist?lang=en`, { waitUntil: 'networkidle' });
  const row = await page.$('table:has(#pending-caption) tr:has-text("http://parcel-fix.example/kr")');
  if (row) {
    await (await row.$('form:has(input[value="listed"]) button')).click();
    await page.waitForLoadState('networkidle');
    listed = true;
  } else {
    await sleep(1000);
  }
}
if (!listed) fail('the reported address never reached the review list');
await auditAll(page, '/security/blocklist', 'blocklist');
const text = await (await fetch(`${base}/blocklist.txt`)).text();
if (!text.includes('http://parcel-fix.example/kr')) fail(`the address is not in /blocklist.txt: ${text}`);
const stix = await (await fetch(`${base}/blocklist.stix.json`)).json();
if (!stix.objects.some((o) => o.pattern === "[url:value = 'http://parcel-fix.example/kr']")) fail('the address is not in the STIX bundle');
step('the reported address is listed: in /blocklist.txt and the STIX 2.1 bundle');

// 6. Probed systems: the demo's failing system takes its service down, on /status and the
// service's page (the demo serves its own healthy, slow and failing targets on loopback).
{
  const down = [];
  for (let i = 0; i < 20 && !down.length; i++) {
    await page.goto(`${base}/status?lang=en`, { waitUntil: 'networkidle' });
    for (const li of await page.$$('#services + ul li')) {
      if ((await li.textContent()).includes('Down')) down.push(await (await li.$('a')).getAttribute('href'));
    }
    if (!down.length) await sleep(1000);
  }
  if (!down.length) fail('no service shows as down on /status');
  else {
    await auditAll(page, '/status', 'status');
    await auditAll(page, down[0], 'a service that is down');
    const health = await page.textContent('#health');
    if (!health.includes('Down')) fail(`the service page does not show its health: ${health}`);
    step(`a failing system takes ${down[0]} down: on /status and its page`);
  }
}

// The level back where it was, with a reason (shown in its history).
await page.goto(`${base}/security/level?lang=en`, { waitUntil: 'networkidle' });
await page.check(`#level-${from}`);
await page.fill('#level-reason', 'Campaign contained; limits back to normal');
await page.click('form[action="/security/level"] button[type=submit]');
await page.waitForLoadState('networkidle');
await ctx.close();
await browser.close();
finish('security operations in the browser', `security operations in the browser: stuffing → alert → incident → alert level → tighter limit; smishing report → listed; ${audited.count} pages audited in en, es and ko`);

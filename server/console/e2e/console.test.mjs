// Browser tests of the tokenvault web console, run by server/console/browser_test.go against a
// real server with real data (it passes everything in TOKENVAULT_CONSOLE_E2E, as JSON).
// Playwright (playwright-core) drives Debian's Chromium. Exit status 0 only if every step passed.

import { chromium } from 'playwright-core';
import fs from 'node:fs/promises';
import path from 'node:path';

const cfg = JSON.parse(process.env.TOKENVAULT_CONSOLE_E2E || 'null');
if (!cfg) {
  console.error('TOKENVAULT_CONSOLE_E2E is not set: run these tests with go test ./server/console -run TestConsoleInBrowser');
  process.exit(2);
}
const BASE = cfg.baseURL;
const TIMEOUT = 30000; // per action; generous: 2 shared cores, Chromium and the server compete

let failures = 0;
const steps = [];
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
  steps.push(name);
}
function assert(cond, msg) { if (!cond) throw new Error(msg); }
function eq(got, want, msg) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(`${msg}: got ${g}, want ${w}`);
}

// api calls the server from Node (not the browser) with a bearer secret.
async function api(method, p, secret = cfg.adminSecret, body, base = BASE) {
  const r = await fetch(base + p, {
    method, headers: { Authorization: 'Bearer ' + secret, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  return { status: r.status, data };
}
async function apiOK(method, p, body) {
  const r = await api(method, p, cfg.adminSecret, body);
  assert(r.status === 200, `${method} ${p}: HTTP ${r.status} ${JSON.stringify(r.data)}`);
  return r.data;
}
async function vendorReveal(secret, token, domain, purpose = 'e2e') {
  const r = await api('POST', '/v1/tokens:detokenize', secret, { items: [{ token, domain }], purpose }, cfg.vendorURL);
  if (r.status !== 200) return { status: r.status, allowed: false };
  const res = r.data.results[0];
  return { status: r.status, allowed: Boolean(res.value) && !res.error, error: res.error };
}
function q(obj) { return new URLSearchParams(Object.entries(obj).filter(([, v]) => v !== '' && v != null)).toString(); }
async function apiEvents(filter, pageSize = 1000, pageToken = '') {
  return apiOK('GET', '/v1/audit/events?' + q({ ...filter, pageSize, pageToken }));
}
async function allEvents(filter) {
  let token = '', out = [];
  do {
    const r = await apiEvents(filter, 1000, token);
    out = out.concat((r.events || []).map((e) => JSON.parse(e.json)));
    token = r.nextPageToken || '';
  } while (token);
  return out;
}

// Every response the browser receives, body included, for the no-value check.
const network = [];
const pending = [];
const pageTexts = [];
function record(context) {
  context.on('response', (resp) => {
    pending.push((async () => {
      let body = null;
      const timeout = new Promise((r) => setTimeout(() => r(null), 15000));
      try { body = await Promise.race([resp.body(), timeout]); } catch { /* a redirect, or its page closed */ }
      network.push({ url: resp.url(), status: resp.status(), body: body ? body.toString('utf8') : '', read: Boolean(body) });
    })());
  });
}

// Never outlive the Go test: it gives us 8 minutes, and if it dies (go test's own timeout) we
// are re-parented; either way close Chromium and stop.
const started = Date.now();
let browser = null;
const watchdog = setInterval(async () => {
  if (process.ppid === 1 || Date.now() - started > 8 * 60000) {
    console.log('FAIL the Go test is gone or the 8-minute budget is spent: stopping');
    clearInterval(watchdog);
    if (browser) await browser.close().catch(() => {});
    process.exit(3);
  }
}, 2000);
watchdog.unref();

browser = await chromium.launch({ executablePath: cfg.chromium, headless: true, args: ['--headless', '--no-sandbox'] });
async function newContext() {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, acceptDownloads: true });
  context.setDefaultTimeout(TIMEOUT);
  record(context);
  // Count CSP violations in every document (Playwright's init scripts are not subject to CSP).
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push({ directive: e.violatedDirective, sample: e.sample }));
  });
  return context;
}

async function settled(page) {
  await page.waitForFunction(() => !document.querySelector('[aria-busy="true"], .loading'), null, { timeout: TIMEOUT });
}
async function signIn(page, secret) {
  await page.goto(BASE + '/ui/');
  await page.locator('#secret').fill(secret);
  await page.locator('#signin').click();
  await page.locator('#signout').waitFor();
  await settled(page);
}
async function open(page, route) {
  await page.locator(`nav a[data-route="${route}"]`).click();
  await page.waitForURL(BASE + '/ui/' + route);
  await settled(page);
}
async function noViolations(page, where) {
  const v = await page.evaluate(() => window.__csp);
  eq(v, [], `CSP violations on ${where}`);
}
async function shot(page, name, fullPage = true) {
  await settled(page);
  const junk = (await page.locator('main').innerText()).match(/\b(null|undefined|NaN)\b|\[object Object\]/);
  assert(!junk, `the ${name} page shows ${junk && junk[0]}`);
  const file = path.join(cfg.artifactsDir, `console-${name}.png`);
  await page.screenshot({ path: file, fullPage });
  if (cfg.docsImgDir) await fs.copyFile(file, path.join(cfg.docsImgDir, `console-${name}.png`));
  pageTexts.push({ name, html: await page.content(), text: await page.evaluate(() => document.body.innerText) });
}
// flashText waits until the page's message matches re (an earlier message may still show).
async function flashText(page, re) {
  await page.waitForFunction((src) => new RegExp(src).test(document.querySelector('#flash')?.innerText || ''), re.source);
  return page.locator('#flash .flash').innerText();
}
async function confirm(page, mustMention) {
  const dlg = page.locator('dialog.confirm');
  await dlg.waitFor();
  const text = await dlg.innerText();
  for (const m of mustMention) assert(text.includes(m), `the confirmation does not name ${JSON.stringify(m)}: ${JSON.stringify(text)}`);
  await dlg.locator('[data-confirm="yes"]').click();
  await dlg.waitFor({ state: 'detached' });
  return text;
}
const numText = async (loc) => Number((await loc.innerText()).replace(/[^0-9]/g, ''));

const admin = await newContext();
const page = await admin.newPage();

await step('sign-in page: a wrong secret and a vendor credential are refused', async () => {
  const resp = await page.goto(BASE + '/ui/');
  const hd = resp.headers();
  assert((hd['content-security-policy'] || '').includes("script-src 'self'"), 'no strict CSP header on /ui/: ' + hd['content-security-policy']);
  assert(!(hd['content-security-policy'] || '').includes('unsafe-inline'), 'the CSP allows unsafe-inline');
  eq(hd['x-frame-options'], 'DENY', 'X-Frame-Options');
  assert(/no-store/.test(hd['cache-control'] || ''), 'pages may be cached: ' + hd['cache-control']);
  await page.locator('#secret').waitFor();
  await shot(page, 'login');
  await page.locator('#secret').fill('not-a-secret');
  await page.locator('#signin').click();
  await page.locator('#login-error .error').waitFor();
  assert(/refused/.test(await page.locator('#login-error').innerText()), 'wrong secret: no refusal shown');
  await page.locator('#secret').fill(cfg.globexSecret);
  await page.locator('#signin').click();
  await page.waitForFunction(() => /admin and auditor/.test(document.querySelector('#login-error').innerText));
  eq((await admin.cookies()).filter((c) => c.name === 'tv_session' && c.value).length, 0, 'session cookies after refused sign-ins');
  await noViolations(page, 'the sign-in page');
});

await step('sign-in and sign-out: HttpOnly SameSite=Strict cookie, gone after, /v1 refused after, server-side end', async () => {
  await signIn(page, cfg.adminSecret);
  assert(/admin/.test(await page.locator('#who').innerText()), 'the header does not say admin');
  const ck = (await admin.cookies()).find((c) => c.name === 'tv_session');
  assert(ck, 'no tv_session cookie after sign-in');
  assert(ck.httpOnly, 'the session cookie is not HttpOnly');
  eq(ck.sameSite, 'Strict', 'the session cookie SameSite');
  eq(await page.evaluate(() => document.cookie.includes('tv_session')), false, 'the page can read the session cookie');
  eq(await page.evaluate(async () => (await fetch('/v1/grants')).status), 200, 'GET /v1/grants signed in');
  await page.locator('#signout').click();
  await page.locator('#secret').waitFor();
  eq((await admin.cookies()).filter((c) => c.name === 'tv_session' && c.value).length, 0, 'session cookies after sign-out');
  eq(await page.evaluate(async () => (await fetch('/v1/grants')).status), 401, 'GET /v1/grants after sign-out');
  // The old cookie, replayed, names no session any more.
  await admin.addCookies([{ ...ck }]);
  eq(await page.evaluate(async () => (await fetch('/v1/grants')).status), 401, 'GET /v1/grants with the signed-out cookie replayed');
  eq(await page.evaluate(async () => (await fetch('/ui/api/session')).status), 401, 'GET /ui/api/session with the signed-out cookie');
  await admin.clearCookies();
});

await step('overview: the chart totals match the audit trail', async () => {
  await signIn(page, cfg.adminSecret);
  await page.locator('#chart-reveals').waitFor();
  const want = cfg.expected;
  eq(await numText(page.locator('#total-reveals')), want.reveals, 'Reveals total (24h) against the sum of allowed vendor items in the audit trail');
  const legend = await page.locator('#chart-reveals .legend li').evaluateAll((els) => els.reduce((a, e) => a + Number(e.dataset.total), 0));
  eq(legend, want.reveals, 'sum of the chart series (24h)');
  eq(Number(await page.locator('#chart-reveals .chart-total').getAttribute('data-total')), want.reveals, 'the chart total');
  eq(await numText(page.locator('#total-alerts')), want.alerts, 'Alerts total against the Alert audit events');
  eq(Number(await page.locator('#chart-alerts .chart-total').getAttribute('data-total')), want.alerts, 'the alerts chart total');
  const stats = await apiOK('GET', '/v1/audit/stats?window=24h');
  // Denials grow as the tests run (the refused sign-ins above): the page against the stats
  // read right after it, and the stats against the seed's denied events.
  const denials = Number(stats.totals.denials || 0);
  eq(await numText(page.locator('#total-denials')), denials, 'Denials total against /v1/audit/stats');
  eq(Number(await page.locator('#chart-denials .chart-total').getAttribute('data-total')), denials, 'the denials chart total');
  const deniedNow = (await allEvents({ outcome: 'denied', startTime: stats.start, endTime: stats.end })).length;
  eq(denials, deniedNow, 'denials in the stats against the denied events in the audit trail');
  assert(denials >= want.denials && want.denials > 0, `denials ${denials}: the seed alone has ${want.denials}`);
  eq(Number(stats.totals.reveals || 0), want.reveals, '/v1/audit/stats reveals');
  const perVendor = await page.locator('#per-vendor tbody tr').evaluateAll((rows) => rows.map((r) => [r.cells[0].innerText, Number(r.cells[1].innerText.replace(/\D/g, ''))]));
  eq(perVendor.reduce((a, [, n]) => a + n, 0), want.reveals, 'reveals per vendor, summed');
  assert(perVendor.some(([v]) => v === 'acme'), 'acme is not in the per-vendor table');
  assert(/kyc/.test(await page.locator('#exhausted').innerText()), 'the exhausted kyc grant is not listed');
  assert(/short-lived/.test(await page.locator('#expiring').innerText()), 'the short-lived grant (72h) is not listed as expiring');
  assert(/verifies/.test(await page.locator('#chain-status').innerText()), 'the chain status does not say it verifies');
  await shot(page, 'overview');
  await page.locator('button[data-window="7d"]').click();
  await page.waitForURL(/window=7d/);
  await settled(page);
  eq(await page.locator('button[data-window="7d"]').getAttribute('aria-pressed'), 'true', '7d pressed');
  eq(await numText(page.locator('#total-reveals')), want.reveals, 'Reveals total (7d)');
  await noViolations(page, 'the overview');
});

await step('markup in data renders as text and runs nowhere', async () => {
  await open(page, 'vendors');
  const text = await page.locator('main').innerText();
  assert(text.includes(cfg.xss[0]), 'the grant purpose with markup is not shown as text');
  await page.goto(BASE + '/ui/audit?' + q({ purpose: cfg.xss[1] }));
  await settled(page);
  assert((await page.locator('#audit-table').innerText()).includes(cfg.xss[1]), 'the reveal purpose with markup is not shown as text');
  await open(page, 'alerts');
  assert((await page.locator('#alert-feed').innerText()).includes(cfg.xss[2]), 'the canary label with markup is not shown as text');
  for (const route of ['vendors', 'alerts']) {
    await open(page, route);
    eq(await page.evaluate(() => window.__xss), undefined, 'injected markup ran on ' + route);
    eq(await page.locator('main img, main script, main svg[onload]').count(), 0, 'markup from data became elements on ' + route);
  }
  await noViolations(page, 'pages showing markup as text');
});

await step('CSP: an injected inline script does not run', async () => {
  const ran = await page.evaluate(async () => {
    const s = document.createElement('script');
    s.textContent = "window.__inline = 'ran'";
    document.body.appendChild(s);
    const d = document.createElement('div');
    d.innerHTML = '<img src="data:," onerror="window.__inline=\'handler ran\'">';
    document.body.appendChild(d);
    await new Promise((r) => setTimeout(r, 500));
    return window.__inline;
  });
  eq(ran, undefined, 'an injected inline script or handler ran');
  const v = await page.evaluate(() => window.__csp);
  assert(v.some((x) => /script-src/.test(x.directive)), 'no script-src violation was reported: ' + JSON.stringify(v));
});

let createdGrant = '';
await step('admin creates a grant (validation errors shown) and revokes it; the vendor is refused at once', async () => {
  const globex = { token: cfg.tokens.globexPAN, domain: 'globex' };
  eq((await vendorReveal(cfg.globexSecret, globex.token, globex.domain)).allowed, false, 'globex reveals before any grant');
  await page.goto(BASE + '/ui/vendors');
  await settled(page);
  const form = page.locator('#create-grant');
  await form.locator('[name=vendor]').fill('globex');
  await form.locator('[name=domains]').fill('globex');
  await form.locator('[name=templates]').fill('pan');
  await form.locator('[name=allowedHours]').fill('25-99');
  await form.locator('[name=purpose]').fill('console-e2e');
  await form.locator('button[type=submit]').click();
  await page.locator('#grant-error .error').waitFor();
  const err = await page.locator('#grant-error').innerText();
  assert(/HTTP 400/.test(err) && /allowed/i.test(err), 'the API validation error is not shown: ' + err);
  await form.locator('[name=allowedHours]').fill('');
  await form.locator('[name=reveal]').selectOption('REVEAL_FULL');
  await form.locator('[name=ttlHours]').fill('1');
  await form.locator('button[type=submit]').click();
  const msg = await flashText(page, /created/);
  createdGrant = msg.match(/grant_[0-9a-f]+/)[0];
  await settled(page);
  const row = page.locator(`tr[data-grant="${createdGrant}"]`);
  await row.waitFor();
  assert(/active/.test(await row.innerText()), 'the new grant is not active');
  const g = (await apiOK('GET', '/v1/grants/' + createdGrant)).grant;
  eq([g.vendor, g.purpose, g.domains, g.templates], ['globex', 'console-e2e', ['globex'], ['pan']], 'the grant the API holds');
  eq((await vendorReveal(cfg.globexSecret, globex.token, globex.domain, 'console-e2e')).allowed, true, 'globex reveals under the new grant');
  await shot(page, 'vendors');
  await row.locator('button[data-action="revoke-grant"]').click();
  await confirm(page, ['globex', 'pan', 'console-e2e']);
  await flashText(page, /revoked/);
  eq((await vendorReveal(cfg.globexSecret, globex.token, globex.domain, 'console-e2e')).allowed, false, 'globex reveals right after the revocation');
  await settled(page);
  assert(/revoked/.test(await page.locator(`tr[data-grant="${createdGrant}"]`).innerText()), 'the grant row does not say revoked');
  await noViolations(page, 'the vendors page');
});

await step('an auditor cannot act: no action buttons, and the server refuses a direct POST', async () => {
  const ctx = await newContext();
  const p = await ctx.newPage();
  await signIn(p, cfg.auditorSecret);
  assert(/auditor/.test(await p.locator('#who').innerText()), 'the header does not say auditor');
  await open(p, 'vendors');
  await p.locator('section.vendor').first().waitFor();
  eq(await p.locator('button[data-action]').count(), 0, 'action buttons an auditor sees on the vendors page');
  eq(await p.locator('#create-grant').count(), 0, 'create-grant forms an auditor sees');
  await shot(p, 'vendors-auditor');
  await open(p, 'keys');
  eq(await p.locator('#rotate-key').count(), 0, 'rotate buttons an auditor sees');
  await open(p, 'erasure');
  eq(await p.locator('#erase-subject, #erase-tokens').count(), 0, 'erasure forms an auditor sees');
  const codes = await p.evaluate(async () => {
    const s = await (await fetch('/ui/api/session')).json();
    const post = (url, body) => fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': s.csrfToken }, body: JSON.stringify(body) }).then((r) => r.status);
    return [
      await post('/v1/grants', { grant: { vendor: 'globex', domains: ['globex'], templates: ['pan'], purpose: 'auditor-attempt' }, ttl: '3600s' }),
      await post('/v1/keys:rotate', {}),
    ];
  });
  eq(codes, [403, 403], 'auditor POST /v1/grants and /v1/keys:rotate');
  const grants = (await apiOK('GET', '/v1/grants')).grants || [];
  eq(grants.filter((g) => g.purpose === 'auditor-attempt').length, 0, 'grants the auditor created');
  await noViolations(p, 'the auditor pages');
  await ctx.close();
});

await step('audit explorer: each filter shows what the API answers for it; paging; one event; export', async () => {
  const some = (await allEvents({ vendor: 'acme', outcome: 'partial' }))[0] || (await allEvents({ vendor: 'acme' }))[0];
  const alert = (await allEvents({ method: 'Alert' }))[0];
  const filters = [
    { vendor: 'acme' },
    { outcome: 'denied' },
    { method: '/tokenvault.v1.VendorService/VendorDetokenize', vendor: 'globex' },
    { credential: cfg.acmeCredential, purpose: 'kyc' },
    { domain: 'globex' },
    { template: 'ssn' },
    { request_id: alert.request_id },
    { grant_id: some.grant_ids ? some.grant_ids[0] : '' },
    { startTime: new Date(Date.parse(alert.time) - 60000).toISOString().slice(0, 16) + ':00.000Z', endTime: new Date(Date.parse(alert.time) + 120000).toISOString().slice(0, 16) + ':00.000Z', method: 'Alert' },
  ];
  for (const f of filters) {
    await page.goto(BASE + '/ui/audit');
    await settled(page);
    for (const [k, v] of Object.entries(f)) {
      if (!v) continue;
      const input = page.locator('#filter-' + k);
      if (k === 'outcome') await input.selectOption(v);
      else if (k === 'startTime' || k === 'endTime') await input.fill(v.slice(0, 16));
      else await input.fill(v);
    }
    await page.locator('#audit-filter button[type=submit]').click();
    await page.waitForURL(/\/ui\/audit\?/);
    await settled(page);
    await page.locator('#audit-table').waitFor();
    const ui = await page.locator('#audit-table tbody tr[data-seq]').evaluateAll((rows) => rows.map((r) => Number(r.dataset.seq)));
    const apiSeqs = ((await apiEvents(f, 50)).events || []).map((e) => Number(e.seq));
    eq(ui, apiSeqs, 'audit explorer rows for ' + JSON.stringify(f));
    assert(apiSeqs.length > 0, 'the seed has no event for ' + JSON.stringify(f) + ': the check would prove nothing');
  }
  // Paging, unfiltered: page 2 is the API's page 2.
  await page.goto(BASE + '/ui/audit');
  await settled(page);
  const p1 = await apiEvents({}, 50);
  assert(p1.nextPageToken, 'fewer than 50 events: paging is not exercised');
  await page.locator('#next-page').click();
  await page.waitForFunction(() => /Page 2/.test(document.querySelector('#audit-page')?.innerText || ''));
  const ui2 = await page.locator('#audit-table tbody tr[data-seq]').evaluateAll((rows) => rows.map((r) => Number(r.dataset.seq)));
  eq(ui2, ((await apiEvents({}, 50, p1.nextPageToken)).events || []).map((e) => Number(e.seq)), 'page 2');
  await page.locator('#prev-page').click();
  await page.waitForFunction(() => /Page 1/.test(document.querySelector('#audit-page')?.innerText || ''));
  // One event, with its place in the chain.
  await page.goto(BASE + '/ui/audit?' + q({ vendor: 'acme' }));
  await settled(page);
  const seq = await page.locator('#audit-table tbody tr[data-seq]').first().getAttribute('data-seq');
  await page.locator(`button[data-open="${seq}"]`).click();
  await page.locator('#event-verified').waitFor();
  const one = await apiOK('GET', '/v1/audit/events/' + seq);
  eq((await page.locator('#event-verified').innerText()).trim(), one.chain.verified ? 'verified' : 'not verified', 'event verification state');
  assert((await page.locator('#event-chain').innerText()).includes(one.chain.hash), 'the event hash is not shown');
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, 'audit', false); // the top: filters and the open event (the list is long)
  // Export the filtered range.
  const [dl] = await Promise.all([page.waitForEvent('download'), page.locator('#export').click()]);
  const lines = (await fs.readFile(await dl.path(), 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l).seq);
  eq(lines, (await allEvents({ vendor: 'acme' })).map((e) => e.seq), 'exported JSONL (vendor=acme)');
  await noViolations(page, 'the audit explorer');
});

await step('alerts: the canary alert is listed and linked to its audit events', async () => {
  await page.goto(BASE + '/ui/alerts');
  await settled(page);
  const rows = page.locator('#alert-feed tbody tr[data-seq]');
  eq(await rows.count(), cfg.expected.alerts, 'alerts listed');
  const canary = rows.filter({ hasText: 'canary' }).first();
  assert(/critical/.test(await canary.innerText()), 'the canary alert is not critical');
  await shot(page, 'alerts');
  const link = canary.locator('a[data-request-id]');
  const rid = await link.getAttribute('data-request-id');
  await link.click();
  await page.waitForURL(/\/ui\/audit\?request_id=/);
  await settled(page);
  const calls = await page.locator('#audit-table tbody tr[data-seq]').evaluateAll((rs) => rs.map((r) => r.cells[2].innerText));
  assert(calls.some((c) => /VendorDetokenize/.test(c)) && calls.includes('Alert'), 'the alert link does not show the reveal and the alert: ' + JSON.stringify(calls));
  eq(calls.length, ((await apiEvents({ request_id: rid })).events || []).length, 'events of the alert request');
});

await step('keys: states and record counts; rotate with confirmation; rewrap progress', async () => {
  await page.goto(BASE + '/ui/keys');
  await settled(page);
  await page.locator('#key-table').waitFor();
  const before = await apiOK('GET', '/v1/keys');
  eq(await page.locator('#key-table tbody tr[data-key]').count(), before.keys.length, 'keys listed');
  await page.locator('#rotate-key').click();
  await confirm(page, ['new data key']);
  const msg = await flashText(page, /New primary data key \d+/);
  const id = msg.match(/key (\d+)/)[1];
  await page.waitForFunction((k) => /primary/.test(document.querySelector(`#key-table tr[data-key="${k}"]`)?.innerText || ''), id, { timeout: TIMEOUT });
  await page.waitForFunction(() => /^Idle/.test(document.querySelector('#rewrap-state')?.innerText || ''), null, { timeout: 90000 });
  const after = await apiOK('GET', '/v1/keys');
  eq(Number(after.remaining || 0), 0, 'records not under the primary key once the page says the rewrap is idle');
  eq(after.keys.find((k) => k.state === 'primary').keyId, Number(id), 'the primary key after rotating');
  assert(await page.locator('#rewrap-progress').count() === 1, 'no rewrap progress bar');
  await shot(page, 'keys');
  await noViolations(page, 'the keys page');
});

await step('erasure: erase a subject and a token, with signed receipts', async () => {
  await page.goto(BASE + '/ui/erasure');
  await settled(page);
  await page.locator('#erase-subject [name=subject]').fill('customer-42');
  await page.locator('#erase-subject button[type=submit]').click();
  await confirm(page, ['subject']);
  await page.locator('#receipt-json').waitFor();
  let rc = JSON.parse(await page.locator('#receipt-json').innerText());
  eq(rc.kind, 'subject', 'receipt kind');
  assert(rc.signature, 'the receipt has no signature');
  await page.locator('#erase-tokens [name=domain]').fill('acme');
  await page.locator('#erase-tokens [name=tokens]').fill(cfg.tokens.erasable);
  await page.locator('#erase-tokens button[type=submit]').click();
  await confirm(page, ['acme']);
  await page.waitForFunction(() => /"tokens"/.test(document.querySelector('#receipt-json')?.innerText || ''));
  rc = JSON.parse(await page.locator('#receipt-json').innerText());
  eq([rc.kind, rc.erased.length], ['tokens', 1], 'token receipt');
  assert(rc.signature, 'the token receipt has no signature');
  await settled(page);
  const pastUI = await page.locator('#past-erasures tbody tr[data-seq]').evaluateAll((rs) => rs.map((r) => Number(r.dataset.seq)).sort((a, b) => a - b));
  const pastAPI = (await allEvents({ method: '/tokenvault.v1.TokenService/EraseSubject' })).concat(await allEvents({ method: '/tokenvault.v1.TokenService/DeleteTokens' })).map((e) => e.seq).sort((a, b) => a - b);
  eq(pastUI, pastAPI, 'past erasures listed');
  assert(pastAPI.length >= 2, 'the two erasures are not in the audit trail under the methods the page lists');
  await shot(page, 'erasure');
  const del = await apiOK('POST', '/v1/tokens:detokenize', { items: [{ token: cfg.tokens.erasable, domain: 'acme' }] });
  assert(del.results[0].error, 'the erased token still detokenizes');
});

await step('CSRF: forged form posts from another origin and posts without the token are refused and change nothing', async () => {
  await page.goto(BASE + '/ui/overview');
  await page.locator('#signout').waitFor();
  const grantsBefore = ((await apiOK('GET', '/v1/grants')).grants || []).length;
  const statuses = {};
  for (const [pathName, target] of [['/grant', '/v1/grants'], ['/logout', '/ui/api/logout'], ['/revoke', '/v1/credentials/']]) {
    const respP = page.waitForResponse((r) => r.url().startsWith(BASE + target) && r.request().method() === 'POST');
    await page.goto(cfg.attackerURL + pathName);
    const resp = await respP;
    statuses[target] = resp.status();
    assert(resp.status() >= 400 && resp.status() < 500, `forged POST ${target}: HTTP ${resp.status()}, want a refusal`);
  }
  console.log('     forged form posts answered ' + JSON.stringify(statuses));
  // A script of the other origin posting JSON with the cookie: the browser's preflight gets no
  // CORS permission, so the post is never sent (or, if it were, refused).
  await page.goto(cfg.attackerURL + '/fetch');
  await page.waitForFunction(() => document.title !== 'pending');
  const title = await page.title();
  assert(title === 'blocked' || /^answered 4/.test(title), 'a cross-origin credentialed fetch: ' + title);
  // The same calls from the console's own origin, well formed, but without the session's CSRF
  // token or with a wrong one: refused too (a form cannot set the header; a script of another
  // origin cannot read the token).
  await page.goto(BASE + '/ui/overview');
  await page.locator('#signout').waitFor();
  const codes = await page.evaluate(async (acmeID) => {
    const body = JSON.stringify({ grant: { vendor: 'globex', domains: ['globex'], templates: ['pan'], purpose: 'forged' }, ttl: '3600s' });
    const post = (url, hdrs, b = '{}') => fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', ...hdrs }, body: b }).then((r) => r.status);
    return [
      await post('/v1/grants', {}, body),
      await post('/v1/grants', { 'X-CSRF-Token': 'forged-token' }, body),
      await post('/v1/credentials/' + acmeID + ':revoke', {}),
      await post('/ui/api/logout', { 'X-CSRF-Token': 'forged-token' }),
    ];
  }, cfg.acmeCredential);
  eq(codes, [403, 403, 403, 403], 'POSTs without or with a wrong CSRF token (grant, grant, revoke credential, logout)');
  eq(((await apiOK('GET', '/v1/grants')).grants || []).length, grantsBefore, 'grants after the forged posts');
  eq(((await apiOK('GET', '/v1/grants')).grants || []).filter((g) => g.purpose === 'forged').length, 0, 'forged grants');
  const acme = ((await apiOK('GET', '/v1/credentials')).credentials || []).find((c) => c.id === cfg.acmeCredential);
  eq(acme.revoked || false, false, 'acme credential revoked by a forged post');
  await page.goto(BASE + '/ui/overview');
  await page.locator('#signout').waitFor(); // the forged logouts did not end the session
  eq(await page.evaluate(async () => (await fetch('/ui/api/session')).status), 200, 'session after the forged logouts');
});

await step('admin revokes a vendor credential (the confirmation names it); the vendor is refused at once', async () => {
  await page.goto(BASE + '/ui/vendors');
  await settled(page);
  const globexID = ((await apiOK('GET', '/v1/credentials')).credentials || []).find((c) => c.name === 'globex-api').id;
  const globex = page.locator('section.vendor[data-vendor="globex"]');
  await globex.locator(`button[data-action="revoke-credential"][data-id="${globexID}"]`).click();
  await confirm(page, ['globex-api', globexID, 'globex']);
  await flashText(page, /revoked/);
  const r = await vendorReveal(cfg.globexSecret, cfg.tokens.globexPAN, 'globex');
  eq([r.status, r.allowed], [401, false], 'globex calling with its revoked credential');
  await settled(page);
  eq(await page.locator('section.vendor[data-vendor="globex"] button[data-action="revoke-credential"]').count(), 0, 'revoke buttons left on the revoked credential');
});

await step('revoking a signed-in credential ends its session at once; the page says so', async () => {
  const ctx = await newContext();
  const p = await ctx.newPage();
  await signIn(p, cfg.admin2Secret);
  await apiOK('POST', '/v1/credentials/' + cfg.admin2ID + ':revoke', {});
  await p.locator('nav a[data-route="vendors"]').click();
  await p.locator('#secret').waitFor();
  assert(/session has ended/.test(await p.locator('#flash').innerText()), 'no message that the session ended');
  eq(await p.evaluate(async () => (await fetch('/v1/grants')).status), 401, 'GET /v1/grants after the revocation');
  await p.locator('#secret').fill(cfg.admin2Secret);
  await p.locator('#signin').click();
  await p.locator('#login-error .error').waitFor();
  await ctx.close();
});

await step('no value appears in any page or response the browser received', async () => {
  await Promise.all(pending);
  const urls = network.map((n) => new URL(n.url).pathname);
  for (const must of ['/ui/api/login', '/v1/grants', '/v1/audit/events', '/v1/audit/stats', '/v1/keys']) {
    assert(urls.some((u) => u.startsWith(must)), `the network log has no ${must}: the check would prove nothing`);
  }
  const unread = network.filter((n) => !n.read && n.status !== 204 && !(n.status >= 300 && n.status < 400));
  assert(unread.length <= network.length / 10, `${unread.length} of ${network.length} response bodies could not be read: ${unread.slice(0, 5).map((n) => n.url).join(', ')}`);
  // A control: the bodies were captured (the grant purpose the seed wrote is in them).
  assert(network.some((n) => n.body.includes('short-lived')), 'no captured body holds the seeded grant purpose "short-lived": the check would prove nothing');
  const bad = [];
  for (const n of network) {
    for (const v of cfg.values) if (n.body.includes(v)) bad.push(`${n.url}: a value (${v.length} chars)`);
    for (const v of cfg.secrets) if (n.body.includes(v)) bad.push(`${n.url}: a secret`);
  }
  for (const p of pageTexts) {
    for (const v of cfg.values) if (p.html.includes(v) || p.text.includes(v)) bad.push(`page ${p.name}: a value`);
  }
  eq(bad, [], 'values or secrets the browser received');
  await fs.writeFile(path.join(cfg.artifactsDir, 'network.jsonl'),
    network.map((n) => JSON.stringify({ url: n.url, status: n.status, bytes: n.body.length })).join('\n') + '\n');
  console.log(`     ${network.length - unread.length} response bodies checked (${unread.length} unreadable), ${pageTexts.length} pages`);
});

await browser.close();
console.log(`${steps.length - failures} of ${steps.length} steps passed`);
process.exit(failures ? 1 : 0);

// Vendors & grants: each vendor's credentials and grants, recent reveals and denials, and
// (admins) creating and revoking grants and revoking credentials.

import { h, replace, fmtTime, fmtInt, table, field, badge } from '../dom.js';
import { get, post, query, parseEvent } from '../api.js';
import { section, loading, errorBox, confirmDialog, isAdmin, flash } from '../ui.js';

export function render(main, { go }) {
  const body = h('div', {});
  main.append(body);
  const reload = () => replace(body, loading(() => vendors(reload)));
  reload();
}

const revealName = (r) => (r === 'REVEAL_MASKED' || r === 'masked' ? 'masked' : 'full');

async function vendors(reload) {
  const [creds, grants] = await Promise.all([get('/v1/credentials'), get('/v1/grants')]);
  const byVendor = new Map();
  const entry = (v) => {
    if (!byVendor.has(v)) byVendor.set(v, { creds: [], grants: [] });
    return byVendor.get(v);
  };
  for (const c of creds.credentials || []) if (c.role === 'vendor') entry(c.vendor).creds.push(c);
  for (const g of grants.grants || []) entry(g.vendor).grants.push(g);
  const names = [...byVendor.keys()].sort();
  return h('div', {},
    isAdmin() ? createGrantForm(names, reload) : h('p', { class: 'muted', id: 'readonly-note' }, 'You are signed in as an auditor: read only.'),
    names.length ? names.map((v) => vendorSection(v, byVendor.get(v), reload)) : h('p', { class: 'empty' }, 'No vendor credentials or grants yet.'));
}

function vendorSection(vendor, { creds, grants }, reload) {
  const admin = isAdmin();
  const active = grants.filter((g) => g.state === 'active');
  const credRows = creds.map((c) => h('tr', {},
    h('td', {}, c.name), h('td', {}, h('code', {}, c.id)), h('td', {}, fmtTime(c.createTime)),
    h('td', {}, c.expireTime ? fmtTime(c.expireTime) : 'never'),
    h('td', {}, badge(c.revoked ? 'revoked' : c.expired ? 'expired' : 'active')),
    admin ? h('td', {}, c.revoked ? null : h('button', {
      type: 'button', class: 'danger', dataset: { action: 'revoke-credential', id: c.id },
      onclick: () => revokeCredential(c, active, reload),
    }, 'Revoke credential')) : null));
  const grantRows = grants.map((g) => h('tr', { dataset: { grant: g.id } },
    h('td', {}, h('code', {}, g.id)),
    h('td', {}, (g.domains || []).join(', ')), h('td', {}, (g.templates || []).join(', ')),
    h('td', {}, g.purpose), h('td', {}, revealName(g.reveal)),
    h('td', { class: 'num' }, g.ratePerMinute ? `${fmtInt(g.ratePerMinute)}/min` : 'no limit'),
    h('td', { class: 'num' }, Number(g.quota || 0) ? `${fmtInt(g.used)} / ${fmtInt(g.quota)}` : `${fmtInt(g.used)} (no quota)`),
    h('td', {}, fmtTime(g.expireTime)),
    h('td', {}, badge(g.state)),
    admin ? h('td', {}, g.state === 'revoked' ? null : h('button', {
      type: 'button', class: 'danger', dataset: { action: 'revoke-grant', id: g.id },
      onclick: () => revokeGrant(g, reload),
    }, 'Revoke grant')) : null));
  const act = admin ? ['Action'] : [];
  return h('section', { class: 'card vendor', 'aria-labelledby': 'v-' + slug(vendor), dataset: { vendor } },
    h('h2', { id: 'v-' + slug(vendor) }, 'Vendor ', h('span', { class: 'name' }, vendor)),
    table('Credentials', ['Name', 'ID', 'Created', 'Expires', 'State', ...act], credRows),
    table('Grants', ['Grant', 'Domains', 'Templates', 'Purpose', 'Reveal', 'Rate', 'Quota used', 'Expires', 'State', ...act], grantRows),
    h('h3', {}, 'Recent reveals and denials'),
    loading(() => recent(vendor)));
}

const slug = (s) => String(s).toLowerCase().replace(/[^a-z0-9]+/g, '-') + '-' + hash(s);
function hash(s) { let x = 0; for (const c of String(s)) x = (x * 31 + c.codePointAt(0)) >>> 0; return x.toString(36); }

async function recent(vendor) {
  const start = new Date(Date.now() - 30 * 86400e3).toISOString();
  let evs = [];
  let token = '';
  for (let i = 0; i < 5; i++) {
    const r = await get('/v1/audit/events' + query({ vendor, startTime: start, pageSize: 1000, pageToken: token }));
    evs = evs.concat((r.events || []).map(parseEvent)).slice(-10);
    token = r.nextPageToken || '';
    if (!token) break;
  }
  evs.reverse();
  return table(null, ['Time', 'Call', 'Outcome', 'Items', 'Revealed', 'Denied', 'Purpose', 'Event'], evs.map((e) => h('tr', {},
    h('td', {}, fmtTime(e.time)), h('td', {}, shortMethod(e.method)), h('td', {}, badge(e.outcome)),
    h('td', { class: 'num' }, fmtInt(e.items)), h('td', { class: 'num' }, fmtInt(e.allowed)), h('td', { class: 'num' }, fmtInt(e.denied)),
    h('td', {}, e.purpose || ''), h('td', {}, h('a', { href: '/ui/audit' + query({ seq: e.seq }) }, '#' + e.seq)))));
}

export const shortMethod = (m) => String(m || '').replace(/^\/tokenvault\.v1\./, '');

async function revokeGrant(g, reload) {
  const ok = await confirmDialog({
    title: `Revoke grant ${g.id}?`,
    consequences: [
      `Vendor ${g.vendor} can no longer reveal tokens of domains ${(g.domains || []).join(', ') || '(any)'} and templates ${(g.templates || []).join(', ') || '(any)'} for the purpose “${g.purpose}” under this grant, from now on.`,
      'Reveals it needs must be covered by another grant, or they are refused.',
    ],
    action: 'Revoke grant',
  });
  if (!ok) return;
  try {
    await post('/v1/grants/' + encodeURIComponent(g.id) + ':revoke');
    flash(`Grant ${g.id} revoked.`, 'ok');
  } catch (e) {
    flash('Revoking the grant failed: ' + e.message);
  }
  reload();
}

async function revokeCredential(c, activeGrants, reload) {
  const ok = await confirmDialog({
    title: `Revoke credential ${c.name}?`,
    consequences: [
      `Credential ${c.name} (${c.id}) stops authenticating at once: every call vendor ${c.vendor} makes with it is refused.`,
      activeGrants.length
        ? `Its ${activeGrants.length} active grant(s) stay, but this credential can no longer use them: ${activeGrants.map((g) => g.id).join(', ')}.`
        : 'The vendor has no active grant.',
      'Its console sessions, if any, end too.',
    ],
    action: 'Revoke credential',
  });
  if (!ok) return;
  try {
    await post('/v1/credentials/' + encodeURIComponent(c.id) + ':revoke');
    flash(`Credential ${c.name} revoked.`, 'ok');
  } catch (e) {
    flash('Revoking the credential failed: ' + e.message);
  }
  reload();
}

const list = (s) => String(s || '').split(',').map((x) => x.trim()).filter(Boolean);

function createGrantForm(vendorNames, reload) {
  const vendor = h('input', { name: 'vendor', list: 'vendor-names', required: true, autocomplete: 'off' });
  const domains = h('input', { name: 'domains', autocomplete: 'off' });
  const templates = h('input', { name: 'templates', autocomplete: 'off' });
  const purpose = h('input', { name: 'purpose', required: true, autocomplete: 'off' });
  const reveal = h('select', { name: 'reveal' }, h('option', { value: 'REVEAL_MASKED' }, 'masked'), h('option', { value: 'REVEAL_FULL' }, 'full'));
  const rate = h('input', { name: 'ratePerMinute', type: 'number', min: '0', step: '1', value: '0' });
  const quota = h('input', { name: 'quota', type: 'number', min: '0', step: '1', value: '0' });
  const ttl = h('input', { name: 'ttlHours', type: 'number', min: '1', step: '1', value: '720', required: true });
  const hours = h('input', { name: 'allowedHours', placeholder: '08-18', autocomplete: 'off' });
  const cidrs = h('input', { name: 'sourceCidrs', placeholder: '10.0.0.0/8', autocomplete: 'off' });
  const err = h('div', { id: 'grant-error' });
  const form = h('form', { id: 'create-grant', class: 'form-grid', 'aria-labelledby': 'create-grant-title', novalidate: true },
    h('datalist', { id: 'vendor-names' }, vendorNames.map((v) => h('option', { value: v }))),
    field('Vendor', vendor),
    field('Purpose', purpose, 'Why the vendor may see the values; kept in the audit trail.'),
    field('Domains', domains, 'Comma-separated token domains.'),
    field('Templates', templates, 'Comma-separated templates, e.g. pan, ssn.'),
    field('Reveal', reveal),
    field('Rate (items a minute)', rate, '0: no limit.'),
    field('Quota (items in total)', quota, '0: no quota.'),
    field('Expires after (hours)', ttl),
    field('Allowed hours (UTC)', hours, 'HH-HH; reveals outside raise an alert. Empty: any time.'),
    field('Source networks', cidrs, 'Comma-separated CIDRs. Empty: anywhere.'),
    err,
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Create grant')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    replace(err);
    const grant = {
      vendor: vendor.value.trim(), domains: list(domains.value), templates: list(templates.value),
      purpose: purpose.value.trim(), reveal: reveal.value,
    };
    if (Number(rate.value)) grant.ratePerMinute = Number(rate.value);
    if (Number(quota.value)) grant.quota = String(Number(quota.value));
    if (hours.value.trim()) grant.allowedHours = hours.value.trim();
    if (cidrs.value.trim()) grant.sourceCidrs = list(cidrs.value);
    const ttlSeconds = Math.round(Number(ttl.value) * 3600);
    try {
      const r = await post('/v1/grants', { grant, ttl: ttlSeconds + 's' });
      flash(`Grant ${r.grant.id} created for vendor ${r.grant.vendor}.`, 'ok');
      reload();
    } catch (ex) {
      replace(err, errorBox('The grant was not created. ' + ex.message));
    }
  });
  return h('section', { class: 'card', 'aria-labelledby': 'create-grant-title' },
    h('h2', { id: 'create-grant-title' }, 'Create a grant'), form);
}

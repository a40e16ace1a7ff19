// Overview: reveals over time per vendor and grant, denials and alerts, grants that need
// attention, and the state of the audit chain.

import { h, fmtTime, fmtInt, table, badge } from '../dom.js';
import { get, query } from '../api.js';
import { section, loading } from '../ui.js';
import { lineChart, barChart } from '../chart.js';

const WINDOWS = [['24h', 'Last 24 hours'], ['7d', 'Last 7 days'], ['30d', 'Last 30 days']];

export function render(main, { params, go }) {
  const win = WINDOWS.some(([w]) => w === params.get('window')) ? params.get('window') : '24h';
  const switcher = h('div', { class: 'segmented', role: 'group', 'aria-label': 'Time window' },
    WINDOWS.map(([w, label]) => h('button', {
      type: 'button', 'aria-pressed': w === win ? 'true' : 'false', dataset: { window: w },
      onclick: () => go('/ui/overview' + query({ window: w === '24h' ? '' : w })),
    }, label)));
  main.append(
    h('div', { class: 'toolbar' }, switcher),
    loading(() => stats(win)),
    h('div', { class: 'grid2' },
      section('Grants expiring in the next 7 days', loading(expiring)),
      section('Exhausted quotas', loading(exhausted))),
    section('Audit chain', loading(chain)));
}

async function stats(win) {
  const st = await get('/v1/audit/stats' + query({ window: win }));
  const series = (st.series || []).map((sr) => ({
    label: sr.grantId ? `${sr.vendor} · ${sr.grantId}` : sr.vendor || '(no vendor)',
    points: (sr.points || []).map((p) => ({ time: p.time, value: Number(p.reveals || 0) })),
  }));
  const perVendor = new Map();
  for (const sr of st.series || []) {
    const v = sr.vendor || '(no vendor)';
    perVendor.set(v, (perVendor.get(v) || 0) + (sr.points || []).reduce((a, p) => a + Number(p.reveals || 0), 0));
  }
  const t = st.totals || {};
  const num = (x) => (x || []).map((p) => ({ time: p.time, count: Number(p.count || 0) }));
  return h('div', {},
    h('ul', { class: 'totals', 'aria-label': 'Totals for the window' },
      h('li', {}, h('span', {}, 'Reveals'), h('strong', { id: 'total-reveals' }, fmtInt(t.reveals))),
      h('li', {}, h('span', {}, 'Denials'), h('strong', { id: 'total-denials' }, fmtInt(t.denials))),
      h('li', {}, h('span', {}, 'Alerts'), h('strong', { id: 'total-alerts' }, fmtInt(t.alerts)))),
    h('p', { class: 'muted' }, `${fmtTime(st.start)} to ${fmtTime(st.end)}, in buckets of ${fmtBucket(st.bucketSeconds)}.`),
    section('Reveals per vendor and grant',
      lineChart({ id: 'chart-reveals', title: 'Items revealed', start: st.start, end: st.end, series }),
      table('Reveals per vendor', ['Vendor', 'Items revealed'],
        [...perVendor].map(([v, n]) => h('tr', {}, h('td', {}, v), h('td', { class: 'num' }, fmtInt(n)))), { id: 'per-vendor' })),
    h('div', { class: 'grid2' },
      section('Denials', barChart({ id: 'chart-denials', title: 'Denied requests', start: st.start, end: st.end, points: num(st.denials), bucketSeconds: st.bucketSeconds, cls: 'series-3' })),
      section('Alerts', barChart({ id: 'chart-alerts', title: 'Alerts fired', start: st.start, end: st.end, points: num(st.alerts), bucketSeconds: st.bucketSeconds, cls: 'series-1' }),
        h('p', {}, h('a', { href: '/ui/alerts' }, 'See the alert feed')))));
}

function fmtBucket(sec) {
  sec = Number(sec || 0);
  if (sec % 86400 === 0) return sec / 86400 + ' day' + (sec === 86400 ? '' : 's');
  if (sec % 3600 === 0) return sec / 3600 + ' hour' + (sec === 3600 ? '' : 's');
  return sec / 60 + ' minutes';
}

let grantsCache = null;
async function grants() {
  if (!grantsCache) grantsCache = get('/v1/grants').then((r) => r.grants || []).finally(() => setTimeout(() => { grantsCache = null; }, 0));
  return grantsCache;
}

function grantRow(g, extra) {
  return h('tr', {},
    h('td', {}, g.vendor), h('td', {}, h('code', {}, g.id)), h('td', {}, g.purpose),
    h('td', {}, (g.domains || []).join(', ')), h('td', {}, (g.templates || []).join(', ')), extra, h('td', {}, badge(g.state)));
}

async function expiring() {
  const now = Date.now(), week = now + 7 * 86400e3;
  const rows = (await grants())
    .filter((g) => g.state === 'active' && g.expireTime && Date.parse(g.expireTime) <= week)
    .sort((a, b) => Date.parse(a.expireTime) - Date.parse(b.expireTime))
    .map((g) => grantRow(g, h('td', {}, fmtTime(g.expireTime))));
  return table(null, ['Vendor', 'Grant', 'Purpose', 'Domains', 'Templates', 'Expires', 'State'], rows, { id: 'expiring' });
}

async function exhausted() {
  const rows = (await grants())
    .filter((g) => g.state === 'exhausted' || (!g.revoked && Number(g.quota || 0) > 0 && Number(g.used || 0) >= Number(g.quota)))
    .map((g) => grantRow(g, h('td', { class: 'num' }, `${fmtInt(g.used)} / ${fmtInt(g.quota)}`)));
  return table(null, ['Vendor', 'Grant', 'Purpose', 'Domains', 'Templates', 'Quota used', 'State'], rows, { id: 'exhausted' });
}

async function chain() {
  const st = await get('/v1/audit/status');
  const cp = st.checkpoint || null;
  const ok = st.verified === true;
  return h('div', { id: 'chain-status' },
    h('p', { class: ok ? 'ok' : 'error' }, ok ? 'The audit chain verifies.' : 'The audit chain does NOT verify' + (st.problem ? ': ' + st.problem : '.')),
    h('dl', { class: 'kv' },
      h('dt', {}, 'Last signed checkpoint'), h('dd', {}, cp ? `event ${cp.seq} at ${fmtTime(cp.time)}` : 'none yet'),
      cp ? [h('dt', {}, 'Checkpoint hash'), h('dd', {}, h('code', {}, cp.hash || ''))] : null,
      h('dt', {}, 'Latest event'), h('dd', {}, String(st.headSeq ?? '')),
      h('dt', {}, 'Events not yet under a checkpoint'), h('dd', {}, cp ? String(Math.max(0, Number(st.headSeq || 0) - Number(cp.seq || 0))) : String(st.headSeq ?? ''))));
}


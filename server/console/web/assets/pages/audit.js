// Audit explorer: filter the trail, page through it, open one event with its place in the
// hash chain, export the filtered range as JSON lines.

import { h, replace, fmtTime, fmtInt, table, field, badge } from '../dom.js';
import { get, query, parseEvent, auditPages } from '../api.js';
import { section, errorBox, loading } from '../ui.js';
import { shortMethod } from './vendors.js';

// The filters: [query parameter of /v1/audit/events, label, input type]. The console's own URL
// uses the same names, so a filtered view can be linked (the alert feed does).
export const FILTERS = [
  ['startTime', 'From (UTC)', 'datetime-local'],
  ['endTime', 'To (UTC)', 'datetime-local'],
  ['vendor', 'Vendor', 'text'],
  ['credential', 'Credential ID', 'text'],
  ['domain', 'Domain', 'text'],
  ['template', 'Template', 'text'],
  ['method', 'Method', 'text'],
  ['outcome', 'Outcome', 'select'],
  ['purpose', 'Purpose', 'text'],
  ['request_id', 'Request ID', 'text'],
  ['grant_id', 'Grant ID', 'text'],
];

const OUTCOMES = ['', 'allowed', 'partial', 'denied', 'failed'];
const METHODS = [
  '/tokenvault.v1.VendorService/VendorDetokenize', '/tokenvault.v1.TokenService/Detokenize',
  '/tokenvault.v1.TokenService/Tokenize', '/tokenvault.v1.GrantService/CreateGrant',
  '/tokenvault.v1.GrantService/RevokeGrant', '/tokenvault.v1.CredentialService/RevokeCredential',
  '/tokenvault.v1.KeyService/RotateKey', '/tokenvault.v1.TokenService/EraseSubject',
  '/tokenvault.v1.TokenService/DeleteTokens', 'Alert',
];

// datetime-local values are read and written as UTC.
const toLocalInput = (iso) => (iso ? new Date(iso).toISOString().slice(0, 16) : '');
const fromLocalInput = (v) => (v ? new Date(v + ':00Z').toISOString() : '');

export function render(main, { params, go }) {
  const filter = {};
  for (const [k] of FILTERS) if (params.get(k)) filter[k] = params.get(k);
  const inputs = {};
  const controls = FILTERS.map(([k, label, type]) => {
    let c;
    if (type === 'select') {
      c = h('select', { name: k }, OUTCOMES.map((o) => h('option', { value: o, selected: filter[k] === o }, o || 'any')));
    } else {
      c = h('input', { name: k, type, autocomplete: 'off', list: k === 'method' ? 'method-names' : null,
        value: type === 'datetime-local' ? toLocalInput(filter[k]) : filter[k] || '' });
    }
    inputs[k] = c;
    c.id = 'filter-' + k;
    return field(label, c);
  });
  const form = h('form', { id: 'audit-filter', class: 'form-grid', 'aria-label': 'Filter the audit trail' },
    h('datalist', { id: 'method-names' }, METHODS.map((m) => h('option', { value: m }))),
    controls,
    h('div', { class: 'actions' },
      h('button', { type: 'submit' }, 'Apply filters'),
      h('button', { type: 'button', class: 'secondary', onclick: () => go('/ui/audit') }, 'Clear'),
      h('button', { type: 'button', class: 'secondary', id: 'export', onclick: () => exportJSONL(filter, exportStatus) }, 'Export JSONL')));
  const exportStatus = h('p', { id: 'export-status', class: 'muted', 'aria-live': 'polite' });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const f = {};
    for (const [k, , type] of FILTERS) {
      const v = inputs[k].value.trim();
      if (v) f[k] = type === 'datetime-local' ? fromLocalInput(v) : v;
    }
    go('/ui/audit' + query(f));
  });
  const results = h('div', { id: 'audit-results' });
  const detail = h('div', { id: 'audit-detail' });
  main.append(section('Filters', form, exportStatus), detail, results);
  const pages = ['']; // page tokens; pages[i] starts page i
  let pageNo = 0;
  const show = async () => {
    replace(results, h('p', { class: 'loading' }, 'Loading…'));
    try {
      const r = await get('/v1/audit/events' + query({ ...filter, pageSize: 50, pageToken: pages[pageNo] }));
      const evs = (r.events || []).map(parseEvent);
      if (r.nextPageToken) pages[pageNo + 1] = r.nextPageToken;
      else pages.length = pageNo + 1;
      replace(results, section('Events',
        h('p', { class: 'muted', id: 'audit-page' }, `Page ${pageNo + 1}: ${evs.length} event(s)` + (r.nextPageToken ? ', more follow.' : '.')),
        table(null, ['Seq', 'Time', 'Call', 'Credential', 'Vendor', 'Outcome', 'Items', 'Purpose', 'Request ID', ''],
          evs.map((e) => h('tr', { dataset: { seq: String(e.seq) } },
            h('td', { class: 'num' }, String(e.seq)), h('td', {}, fmtTime(e.time)), h('td', {}, shortMethod(e.method)),
            h('td', {}, h('code', {}, (e.actor && e.actor.credential_id) || '')), h('td', {}, (e.actor && e.actor.vendor) || ''),
            h('td', {}, badge(e.outcome)), h('td', { class: 'num' }, fmtInt(e.items)), h('td', {}, e.purpose || ''),
            h('td', {}, h('code', {}, e.request_id || '')),
            h('td', {}, h('button', { type: 'button', class: 'link', dataset: { open: String(e.seq) }, onclick: () => openEvent(e.seq, detail) }, 'Open')))),
          { id: 'audit-table' }),
        h('nav', { class: 'pager', 'aria-label': 'Pages' },
          h('button', { type: 'button', class: 'secondary', id: 'prev-page', disabled: pageNo === 0, onclick: () => { pageNo--; show(); } }, 'Previous page'),
          h('button', { type: 'button', class: 'secondary', id: 'next-page', disabled: !r.nextPageToken, onclick: () => { pageNo++; show(); } }, 'Next page'))));
    } catch (e) {
      replace(results, errorBox(e));
    }
  };
  show();
  if (params.get('seq')) openEvent(params.get('seq'), detail);
}

async function openEvent(seq, box) {
  replace(box, loading(async () => {
    const r = await get('/v1/audit/events/' + encodeURIComponent(seq));
    const ev = typeof r.event === 'string' ? JSON.parse(r.event) : r.event && r.event.json ? parseEvent(r.event) : r.event || {};
    const c = r.chain || {};
    const rows = [];
    for (const [k, v] of Object.entries(ev)) {
      rows.push(h('dt', {}, k), h('dd', {}, typeof v === 'object' ? h('code', {}, JSON.stringify(v)) : String(v)));
    }
    const verified = c.verified === true;
    return section(`Event ${seq}`,
      h('div', { class: 'grid2' },
        h('div', {}, h('h3', {}, 'Fields'), h('dl', { class: 'kv', id: 'event-fields' }, rows)),
        h('div', {}, h('h3', {}, 'Chain position'),
          h('dl', { class: 'kv', id: 'event-chain' },
            h('dt', {}, 'Sequence'), h('dd', {}, String(c.seq ?? seq)),
            h('dt', {}, 'Hash'), h('dd', {}, h('code', {}, c.hash || '')),
            h('dt', {}, 'Previous hash'), h('dd', {}, h('code', {}, c.prevHash || '')),
            h('dt', {}, 'Linked to the previous event'), h('dd', {}, c.linked ? 'yes' : 'NO'),
            h('dt', {}, 'Covered by checkpoint'), h('dd', {}, c.checkpointSeq ? `event ${c.checkpointSeq}` + (c.signed ? ', signed' : ', unsigned') : 'not yet (after the last checkpoint)'),
            h('dt', {}, 'Verification'), h('dd', { class: verified ? 'ok' : 'error', id: 'event-verified' }, verified ? 'verified' : 'not verified')))),
      h('button', { type: 'button', class: 'secondary', onclick: () => replace(box) }, 'Close'));
  }));
  box.scrollIntoView({ block: 'start' });
}

// exportJSONL downloads every event matching filter as JSON lines (each the event as stored).
async function exportJSONL(filter, status) {
  replace(status, 'Exporting…');
  try {
    const lines = [];
    await auditPages(filter, (evs) => { for (const e of evs) lines.push(e.json); });
    const blob = new Blob(lines.map((l) => l + '\n'), { type: 'application/x-ndjson' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `tokenvault-audit-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`, hidden: true });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    replace(status, `Exported ${fmtInt(lines.length)} event(s).`);
  } catch (e) {
    replace(status, errorBox(e));
  }
}

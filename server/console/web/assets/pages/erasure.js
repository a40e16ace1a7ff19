// Erasure: erase a data subject (crypto-shredding) or tokens, and show the signed receipt.
// Admins only; auditors see past erasures from the audit trail.

import { h, replace, fmtTime, table, field, badge } from '../dom.js';
import { post, query, parseEvent, auditPages } from '../api.js';
import { section, errorBox, confirmDialog, isAdmin, loading } from '../ui.js';
import { shortMethod } from './vendors.js';

export function render(main) {
  const pastBox = h('div', { id: 'past-erasures' });
  const refresh = () => replace(pastBox, loading(past));
  const receipt = h('div', { id: 'receipt', 'aria-live': 'polite' });
  if (isAdmin()) {
    main.append(h('div', { class: 'grid2' }, subjectForm(receipt, refresh), tokensForm(receipt, refresh)), receipt);
  } else {
    main.append(h('p', { class: 'muted', id: 'readonly-note' }, 'You are signed in as an auditor: read only. Past erasures are listed below.'));
  }
  main.append(section('Past erasures', pastBox));
  refresh();
}

function subjectForm(receipt, refresh) {
  const subject = h('input', { name: 'subject', required: true, autocomplete: 'off' });
  const err = h('div', {});
  const form = h('form', { id: 'erase-subject' },
    field('Subject ID', subject, 'The opaque id the records were tokenized with (never a name or an email).'),
    err, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'danger' }, 'Erase subject')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    replace(err);
    const id = subject.value.trim();
    if (!id) { replace(err, errorBox('Enter a subject id.')); return; }
    const ok = await confirmDialog({
      title: 'Erase this data subject?',
      consequences: ['The subject\'s key and every record tokenized under it, in every domain, are destroyed: its tokens never reveal again, for anyone.', 'Restoring an older backup erases it again (the erasure log).'],
      action: 'Erase subject',
    });
    if (!ok) return;
    try {
      const r = await post('/v1/subjects/' + encodeURIComponent(id) + ':erase');
      subject.value = '';
      showReceipt(receipt, r.receipt);
      refresh();
    } catch (ex) {
      replace(err, errorBox(ex));
    }
  });
  return section('Erase a data subject', form);
}

function tokensForm(receipt, refresh) {
  const domain = h('input', { name: 'domain', value: 'default', required: true, autocomplete: 'off' });
  const tokens = h('textarea', { name: 'tokens', rows: '4', required: true, autocomplete: 'off', spellcheck: 'false' });
  const err = h('div', {});
  const form = h('form', { id: 'erase-tokens' },
    field('Domain', domain), field('Tokens', tokens, 'One a line.'),
    err, h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'danger' }, 'Erase tokens')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    replace(err);
    const list = tokens.value.split(/\s+/).map((t) => t.trim()).filter(Boolean);
    if (!list.length) { replace(err, errorBox('Enter at least one token.')); return; }
    const ok = await confirmDialog({
      title: `Erase ${list.length} token(s) of domain ${domain.value.trim()}?`,
      consequences: ['Each token stops revealing at once, for everyone, and is never issued again.'],
      action: 'Erase tokens',
    });
    if (!ok) return;
    try {
      const r = await post('/v1/tokens:delete', { items: list.map((token) => ({ token, domain: domain.value.trim() })) });
      tokens.value = '';
      const failed = (r.results || []).map((x, i) => (x && x.error ? `item ${i + 1}: ${x.error.message || x.error.code}` : null)).filter(Boolean);
      if (failed.length) replace(err, errorBox('Not erased: ' + failed.join('; ')));
      showReceipt(receipt, r.receipt);
      refresh();
    } catch (ex) {
      replace(err, errorBox(ex));
    }
  });
  return section('Erase tokens', form);
}

function showReceipt(box, rc) {
  if (!rc) { replace(box); return; }
  let pretty = rc.receiptJson || '';
  try { pretty = JSON.stringify(JSON.parse(rc.receiptJson), null, 2); } catch { /* keep as is */ }
  replace(box, section('Signed receipt',
    h('dl', { class: 'kv' },
      h('dt', {}, 'Kind'), h('dd', {}, rc.kind || ''),
      h('dt', {}, 'Erased at'), h('dd', {}, fmtTime(rc.eraseTime)),
      h('dt', {}, 'Audit event'), h('dd', {}, h('a', { href: '/ui/audit' + query({ seq: rc.auditSeq }) }, '#' + rc.auditSeq)),
      h('dt', {}, 'Erased (fingerprints)'), h('dd', {}, (rc.erased || []).length ? (rc.erased || []).join(', ') : 'none')),
    h('p', {}, 'Verify it with the audit public key (GET /v1/audit/public-key); keep it as proof of the erasure.'),
    h('pre', { class: 'receipt', id: 'receipt-json', tabindex: '0' }, pretty)));
}

async function past() {
  const evs = [];
  for (const method of ['/tokenvault.v1.TokenService/EraseSubject', '/tokenvault.v1.TokenService/DeleteTokens']) {
    await auditPages({ method }, (page) => { for (const e of page) evs.push(parseEvent(e)); });
  }
  evs.sort((a, b) => b.seq - a.seq);
  return table(null, ['Time', 'Call', 'Outcome', 'Erased', 'Credential', 'Event'], evs.map((e) => h('tr', { dataset: { seq: String(e.seq) } },
    h('td', {}, fmtTime(e.time)), h('td', {}, shortMethod(e.method)), h('td', {}, badge(e.outcome)),
    h('td', { class: 'num' }, String((e.tokens || []).length)), h('td', {}, h('code', {}, (e.actor && e.actor.credential_id) || '')),
    h('td', {}, h('a', { href: '/ui/audit' + query({ seq: e.seq }) }, '#' + e.seq)))));
}

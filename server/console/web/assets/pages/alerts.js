// Alerts: the feed of alerts the server raised (audit events of method Alert), newest first,
// each linked to the audit events of the request that fired it.

import { h, fmtTime, fmtInt, table, badge } from '../dom.js';
import { query, parseEvent, auditPages } from '../api.js';
import { section, loading } from '../ui.js';

// parseReason splits an Alert event's reason, "<severity> <rule>: <message>".
export function parseReason(reason) {
  const m = String(reason || '').match(/^(\S+) (\S+): ([\s\S]*)$/);
  return m ? { severity: m[1], rule: m[2], message: m[3] } : { severity: '', rule: '', message: String(reason || '') };
}

export function render(main) {
  main.append(section('Alert feed', h('p', { class: 'muted' },
    'Canary reveals, reveal-rate and denial bursts and off-hours reveals in the last 30 days, as recorded in the audit trail (newest first). Older alerts: the audit explorer, method Alert.'),
  loading(feed)));
}

async function feed() {
  const evs = [];
  await auditPages({ method: 'Alert', startTime: new Date(Date.now() - 30 * 86400e3).toISOString() }, (page) => { for (const e of page) evs.push(parseEvent(e)); });
  evs.reverse();
  return table(null, ['Time', 'Severity', 'Rule', 'Message', 'Vendor', 'Credential', 'Grant', 'Count', 'Audit events'],
    evs.map((e) => {
      const r = parseReason(e.reason);
      return h('tr', { dataset: { seq: String(e.seq) } },
        h('td', {}, fmtTime(e.time)), h('td', {}, badge(r.severity)), h('td', {}, r.rule), h('td', {}, r.message),
        h('td', {}, (e.actor && e.actor.vendor) || ''), h('td', {}, h('code', {}, (e.actor && e.actor.credential_id) || '')),
        h('td', {}, h('code', {}, (e.grant_ids || []).join(', '))), h('td', { class: 'num' }, fmtInt(e.items)),
        h('td', {}, e.request_id
          ? h('a', { href: '/ui/audit' + query({ request_id: e.request_id }), dataset: { requestId: e.request_id } }, 'Request ' + e.request_id)
          : h('a', { href: '/ui/audit' + query({ seq: e.seq }) }, 'Event ' + e.seq)));
    }), { id: 'alert-feed' });
}

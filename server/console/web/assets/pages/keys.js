// Keys: data keys with their states and record counts, the rewrap's progress (polled while
// the page is open), and (admins) rotating the primary data key.

import { h, replace, fmtTime, fmtInt, table, badge } from '../dom.js';
import { get, post } from '../api.js';
import { section, errorBox, confirmDialog, isAdmin, flash } from '../ui.js';

// The page polls only while a rewrap runs and the tab is visible: every request restarts the
// session's idle timeout, so polling an idle vault would keep a forgotten session alive.
export function render(main) {
  const box = h('div', { id: 'keys' }, h('p', { class: 'loading' }, 'Loading…'));
  const actions = h('div', { class: 'toolbar' },
    isAdmin() ? h('button', { type: 'button', class: 'danger', id: 'rotate-key', onclick: () => rotate(() => { burst = 5; refresh(); }) }, 'Rotate the data key') : null,
    h('button', { type: 'button', class: 'secondary', id: 'refresh-keys', onclick: () => refresh() }, 'Refresh'));
  main.append(actions);
  if (!isAdmin()) main.append(h('p', { class: 'muted', id: 'readonly-note' }, 'You are signed in as an auditor: read only.'));
  main.append(box);
  let timer = 0, stopped = false, running = false, burst = 0; // burst: polls after a rotation, before the rewrap shows as running
  async function refresh() {
    clearTimeout(timer);
    try {
      const st = await get('/v1/keys');
      running = rewrapRunning(st);
      replace(box, view(st));
    } catch (e) {
      running = false;
      replace(box, errorBox(e));
    }
    if (burst > 0) burst--;
    if (!stopped && (running || burst > 0) && !document.hidden) timer = setTimeout(refresh, 1000);
  }
  const onVisible = () => { if (!document.hidden && running && !stopped) refresh(); };
  document.addEventListener('visibilitychange', onVisible);
  refresh();
  return () => { stopped = true; clearTimeout(timer); document.removeEventListener('visibilitychange', onVisible); };
}

// rewrapRunning: a rotation set a target and the rewrap has not finished. (The API leaves
// false and zero fields out: no rewrapDone means false, no rewrapTarget means never rotated.)
const rewrapRunning = (st) => !st.rewrapDone && Number(st.rewrapTarget || 0) > 0;

function view(st) {
  const total = Number(st.total || 0), remaining = Number(st.remaining || 0);
  const under = Math.max(0, total - remaining);
  const running = rewrapRunning(st);
  return h('div', {},
    section('Rewrap',
      h('p', { id: 'rewrap-state' }, running
        ? `Running: ${fmtInt(st.rewrapped)} rewrapped so far; ${fmtInt(remaining)} of ${fmtInt(total)} records not yet under data key ${st.rewrapTarget}.`
        : `Idle: ${fmtInt(st.rewrapped)} rewrapped; ${fmtInt(remaining)} of ${fmtInt(total)} records not under the primary key.`),
      h('label', { for: 'rewrap-progress' }, 'Records under the primary key'),
      h('progress', { id: 'rewrap-progress', max: String(total || 1), value: String(total ? under : 1) }, `${under} of ${total}`)),
    section('Data keys', table(null, ['Key ID', 'State', 'Records and subject keys', 'Created'],
      (st.keys || []).map((k) => h('tr', { dataset: { key: String(k.keyId) } },
        h('td', {}, h('code', {}, String(k.keyId))), h('td', {}, badge(k.state)),
        h('td', { class: 'num' }, fmtInt(k.records)), h('td', {}, fmtTime(k.createTime)))), { id: 'key-table' })));
}

async function rotate(refresh) {
  const ok = await confirmDialog({
    title: 'Rotate the data key?',
    consequences: [
      'A new data key becomes primary: new records are encrypted under it.',
      'A background rewrap re-encrypts every existing record under the new key (progress shows here).',
      'The old key stays enabled until you disable or destroy it; nothing stops working.',
    ],
    action: 'Rotate',
  });
  if (!ok) return;
  try {
    const r = await post('/v1/keys:rotate');
    flash(`New primary data key ${r.keyId}; rewrap started.`, 'ok');
  } catch (e) {
    flash('Rotation failed: ' + e.message);
  }
  refresh();
}

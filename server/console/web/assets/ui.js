// ui.js: shared pieces of every page: the session, flash messages, confirmation dialogs.

import { h, replace } from './dom.js';

export const session = { credential: null, csrfToken: '', idleTimeoutSeconds: 0, expiresAt: '' };

// isAdmin says whether the signed-in credential may act. Auditors only read; the server
// refuses their state changes anyway, the console just does not offer them.
export const isAdmin = () => session.credential && session.credential.role === 'admin';

// flash shows a message (kind: 'error' or 'ok') in the page's alert region.
export function flash(message, kind = 'error') {
  const el = document.getElementById('flash');
  replace(el, message ? h('p', { class: 'flash flash-' + kind }, message,
    h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss message', onclick: () => replace(el) }, '×')) : null);
}

// errorBox is an inline error message for a form or section.
export function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, err && err.message ? err.message : String(err));
}

// confirmDialog asks before a change that cannot be undone. consequences is a list of
// sentences saying what stops working. Resolves true only when the user confirms.
export function confirmDialog({ title, consequences, action }) {
  return new Promise((resolve) => {
    const dlg = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' });
    const done = (ok) => { dlg.close(); dlg.remove(); resolve(ok); };
    replace(dlg,
      h('h2', { id: 'confirm-title' }, title),
      h('ul', { class: 'consequences' }, consequences.map((c) => h('li', {}, c))),
      h('p', {}, 'This cannot be undone.'),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => done(false) }, 'Cancel'),
        h('button', { type: 'button', class: 'danger', dataset: { confirm: 'yes' }, onclick: () => done(true) }, action)));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.appendChild(dlg);
    dlg.showModal();
  });
}

// section is a titled part of a page.
export function section(title, ...children) {
  const id = 'sec-' + title.toLowerCase().replace(/[^a-z0-9]+/g, '-');
  return h('section', { 'aria-labelledby': id, class: 'card' }, h('h2', { id }, title), ...children);
}

// loading returns a placeholder that load() fills: the result of render(), or the error.
export function loading(render) {
  const box = h('div', { class: 'loading', 'aria-busy': 'true' }, 'Loading…');
  Promise.resolve().then(render).then((node) => {
    box.removeAttribute('aria-busy');
    box.classList.remove('loading');
    replace(box, node);
  }, (err) => {
    box.removeAttribute('aria-busy');
    box.classList.remove('loading');
    replace(box, errorBox(err));
  });
  return box;
}

// app.js: the console's entry point: session, sign-in, navigation between pages.
// Served under /ui/ with a strict Content-Security-Policy: this module and the ones it
// imports are the only scripts; nothing is evaluated, nothing comes from another origin.

import { h, replace } from './dom.js';
import { get, post, setCSRF, setUnauthorizedHandler } from './api.js';
import { session, flash, errorBox } from './ui.js';
import * as overview from './pages/overview.js';
import * as vendors from './pages/vendors.js';
import * as audit from './pages/audit.js';
import * as alerts from './pages/alerts.js';
import * as keys from './pages/keys.js';
import * as erasure from './pages/erasure.js';

const pages = [
  ['overview', 'Overview', overview],
  ['vendors', 'Vendors & grants', vendors],
  ['audit', 'Audit explorer', audit],
  ['alerts', 'Alerts', alerts],
  ['keys', 'Keys', keys],
  ['erasure', 'Erasure', erasure],
];

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
let cleanup = null; // the current page's stop function (pollers)

function setSession(s) {
  session.credential = s ? s.credential : null;
  session.csrfToken = s ? s.csrfToken : '';
  session.idleTimeoutSeconds = s ? s.idleTimeoutSeconds : 0;
  session.expiresAt = s ? s.expiresAt : '';
  setCSRF(session.csrfToken);
}

function pageName() {
  const m = location.pathname.match(/^\/ui\/?([a-z]*)/);
  return (m && m[1]) || 'overview';
}

export function go(path) {
  if (location.pathname + location.search !== path) history.pushState(null, '', path);
  render();
}

function renderChrome() {
  if (!session.credential) {
    nav.hidden = true;
    replace(nav);
    replace(who);
    return;
  }
  const current = pageName();
  nav.hidden = false;
  replace(nav, h('ul', {}, pages.map(([id, label]) => h('li', {},
    h('a', { href: '/ui/' + id, 'aria-current': id === current ? 'page' : null, dataset: { route: id } }, label)))));
  const c = session.credential;
  replace(who,
    h('span', { class: 'whoami' }, c.name + ' ', h('span', { class: 'role role-' + c.role }, c.role)),
    h('button', { type: 'button', id: 'signout', class: 'secondary', onclick: signOut }, 'Sign out'));
}

function render() {
  if (cleanup) { cleanup(); cleanup = null; }
  renderChrome();
  if (!session.credential) { renderLogin(); return; }
  let name = pageName();
  if (name === 'login') { history.replaceState(null, '', '/ui/overview'); name = 'overview'; renderChrome(); }
  const page = pages.find(([id]) => id === name);
  if (!page) {
    replace(main, h('h1', {}, 'Not found'), h('p', {}, 'No console page here. ', h('a', { href: '/ui/overview', dataset: { route: 'overview' } }, 'Overview')));
    return;
  }
  document.title = page[1] + ' · tokenvault console';
  replace(main, h('h1', {}, page[1]));
  const params = new URLSearchParams(location.search);
  cleanup = page[2].render(main, { params, go }) || null;
  main.focus({ preventScroll: true });
}

function renderLogin(message) {
  document.title = 'Sign in · tokenvault console';
  if (location.pathname !== '/ui/login') history.replaceState({ next: location.pathname + location.search }, '', '/ui/login');
  const secret = h('input', { type: 'password', id: 'secret', name: 'secret', autocomplete: 'current-password', required: true });
  const err = h('div', { id: 'login-error' });
  const form = h('form', { class: 'login card', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in'),
    h('p', {}, 'Sign in with an admin or auditor credential secret. Admins may act; auditors only read. Tokenizer, detokenizer and vendor credentials cannot sign in.'),
    message ? h('p', { class: 'error', role: 'alert' }, message) : null,
    h('div', { class: 'field' }, h('label', { for: 'secret' }, 'Credential secret'), secret),
    err,
    h('button', { type: 'submit', id: 'signin' }, 'Sign in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    replace(err);
    const btn = form.querySelector('button[type=submit]');
    btn.disabled = true;
    try {
      const s = await post('/ui/api/login', { secret: secret.value });
      secret.value = '';
      setSession(s);
      const next = (history.state && history.state.next) || '/ui/overview';
      history.replaceState(null, '', next === '/ui/login' || next === '/ui/' ? '/ui/overview' : next);
      flash('');
      render();
    } catch (ex) {
      let msg = ex.message;
      if (ex.status === 401) msg = 'Sign-in refused: the secret is not a valid credential.';
      if (ex.status === 403) msg = 'Sign-in refused: only admin and auditor credentials may use the console.';
      replace(err, errorBox(msg));
      btn.disabled = false;
      secret.focus();
    }
  });
  replace(main, form);
  secret.focus();
}

async function signOut() {
  try {
    await post('/ui/api/logout');
  } catch (ex) {
    if (ex.status !== 401) { flash('Sign-out failed: ' + ex.message); return; }
  }
  setSession(null);
  history.replaceState(null, '', '/ui/login');
  flash('You are signed out.', 'ok');
  render();
}

setUnauthorizedHandler(() => {
  if (!session.credential) return;
  setSession(null);
  render();
  flash('Your session has ended (signed out, timed out or revoked). Sign in again.');
});

document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href^="/ui/"]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.target || a.hasAttribute('download')) return;
  e.preventDefault();
  flash('');
  go(a.getAttribute('href'));
});
window.addEventListener('popstate', render);

(async () => {
  try {
    setSession(await get('/ui/api/session'));
  } catch (ex) {
    setSession(null);
    if (ex.status !== 401) {
      renderChrome();
      renderLogin('The console cannot reach the server: ' + ex.message);
      return;
    }
  }
  render();
})();

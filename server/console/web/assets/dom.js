// dom.js: the only way the console builds markup. Text always goes in as text nodes
// (textContent), never as HTML: data from the vault (names, purposes, reasons) may hold
// markup, and must render as the characters it is.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'value' && 'value' in el) {
      el.value = v;
    } else if (k === 'checked' || k === 'disabled' || k === 'selected' || k === 'hidden' || k === 'required' || k === 'open') {
      el[k] = Boolean(v);
      if (v === true && el.namespaceURI === SVG_NS) el.setAttribute(k, '');
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// h('tag', {attrs}, ...children): an HTML element. Strings become text nodes.
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// s('tag', {attrs}, ...children): an SVG element.
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

// replace empties el and appends children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// fmtTime renders an RFC 3339 time (or Date) as "YYYY-MM-DD HH:MM:SS UTC"; '' for none.
export function fmtTime(t) {
  if (!t) return '';
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace('Z', ' UTC');
}

// fmtInt renders a count (number or the API's decimal string) with thousands separators.
export function fmtInt(n) {
  const v = Number(n || 0);
  return Number.isFinite(v) ? v.toLocaleString('en-US') : String(n);
}

// table builds an accessible table: caption, column headers, rows of cells (nodes or text).
export function table(caption, headers, rows, attrs = {}) {
  return h('table', attrs,
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: headers.length, class: 'empty' }, 'Nothing to show.'))));
}

// field is a labelled form control.
export function field(label, control, hint) {
  const id = control.id || ('f-' + Math.random().toString(36).slice(2, 10));
  control.id = id;
  let hintEl = null;
  if (hint) {
    hintEl = h('small', { id: id + '-hint', class: 'hint' }, hint);
    control.setAttribute('aria-describedby', id + '-hint');
  }
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

// badge shows a state word with a class named after it.
export function badge(state) {
  const v = String(state || 'unknown').toLowerCase();
  return h('span', { class: 'badge badge-' + v.replace(/[^a-z]/g, '') }, v);
}

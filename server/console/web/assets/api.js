// api.js: every call the console makes. Cookie authentication (the session cookie is
// HttpOnly, the page never sees it); every state change carries the session's CSRF token.

let csrfToken = '';
let onUnauthorized = () => {};

export function setCSRF(token) { csrfToken = token || ''; }
export function setUnauthorizedHandler(f) { onUnauthorized = f; }

// APIError carries the server's message and HTTP status.
export class APIError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

// request sends method path (with an optional JSON body) and returns the decoded JSON
// (null for an empty body). A non-2xx answer throws an APIError with the server's message.
export async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrfToken;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new APIError(0, 'The server cannot be reached (' + e.message + ').');
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!resp.ok) {
    let msg = data && (data.message || (typeof data.error === 'string' ? data.error : data.error && data.error.message));
    if (!msg) msg = (data === null && text.trim()) || resp.statusText || 'request failed';
    const err = new APIError(resp.status, 'HTTP ' + resp.status + ': ' + msg, data);
    if (resp.status === 401 && !path.startsWith('/ui/api/login')) onUnauthorized(err);
    throw err;
  }
  return data;
}

export const get = (path) => request('GET', path);
export const post = (path, body) => request('POST', path, body === undefined ? {} : body);

// query encodes the non-empty entries of obj as a query string ('' when none).
export function query(obj) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) {
    if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  }
  const q = p.toString();
  return q ? '?' + q : '';
}

// parseEvent decodes one audit event of /v1/audit/events (its stored JSON).
export function parseEvent(e) {
  try {
    const ev = JSON.parse(e.json);
    ev.seq = ev.seq ?? Number(e.seq);
    return ev;
  } catch {
    return { seq: Number(e.seq), malformed: true };
  }
}

// auditPages walks /v1/audit/events with filter, calling each(page events) until the trail
// ends or limit events were seen. Returns the number of events.
export async function auditPages(filter, each, limit = Infinity) {
  let token = '';
  let n = 0;
  do {
    const r = await get('/v1/audit/events' + query({ ...filter, pageSize: 1000, pageToken: token }));
    const evs = r.events || [];
    n += evs.length;
    each(evs);
    token = r.nextPageToken || '';
  } while (token && n < limit);
  return n;
}

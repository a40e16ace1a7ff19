// Package console is tokenvault's web console: the pages and scripts embedded from web/
// (served under /ui/), its sign-in API (/ui/api/login, /ui/api/logout, /ui/api/session) and
// its sessions. The server mounts it on the internal HTTP listener only.
//
// # Basics
//
// [New] takes a [Backend] (the server: authentication through its one authentication path,
// and the audit trail). A browser signs in with a credential secret, a client certificate or a
// bearer JWT; admin and auditor credentials only. It gets the cookie [CookieName] (a random
// 32-byte id; the table keeps its SHA-256) and a CSRF token. The server authenticates its
// REST calls from the cookie with [Console.Check], which restarts the idle timeout and, for
// state-changing requests, requires the CSRF token in [CSRFHeader] and a same-origin
// Sec-Fetch-Site. The server then re-reads the session's credential on every call and allows
// only the methods a session may call (server.ConsoleMethods).
//
// Every /ui/ response carries [ContentSecurityPolicy] and X-Frame-Options: DENY,
// Cache-Control: no-store, X-Content-Type-Options: nosniff, Referrer-Policy: no-referrer.
//
// # Caveats
//
// Sessions live in this process's memory: a restart ends them, and replicas behind a load
// balancer need sticky sessions. The console never displays a value, and nothing here reads
// one: it has no call that returns values.
package console

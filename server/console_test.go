package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/server/console"
	"github.com/tokenvault/tokenvault/vault"
)

// The web console's server side, through a real server: pages and their headers, sign-in,
// cookie sessions on the REST API, CSRF, what a session may call, and session ends.

// consoleUser is a browser signed in to the console.
type consoleUser struct {
	h      *testenv.Env
	cookie *http.Cookie
	csrf   string
	login  consoleLogin
}

type consoleLogin struct {
	Credential struct {
		ID, Name, Role string
	} `json:"credential"`
	CSRFToken          string `json:"csrfToken"`
	IdleTimeoutSeconds int64  `json:"idleTimeoutSeconds"`
	ExpiresAt          string `json:"expiresAt"`
}

// postLogin posts a sign-in with secret and returns the response (body read into data).
func postLogin(t *testing.T, h *testenv.Env, secret string) (*http.Response, []byte) {
	t.Helper()
	req := h.Request("POST", "/ui/api/login", "", map[string]string{"secret": secret})
	resp, err := h.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, data
}

// signIn signs in with secret and fails the test unless it succeeds.
func signIn(t *testing.T, h *testenv.Env, secret string) *consoleUser {
	t.Helper()
	resp, data := postLogin(t, h, secret)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in: HTTP %d %s", resp.StatusCode, data)
	}
	u := &consoleUser{h: h}
	decodeInto(t, data, &u.login)
	u.csrf = u.login.CSRFToken
	for _, c := range resp.Cookies() {
		if c.Name == console.CookieName {
			u.cookie = c
		}
	}
	if u.cookie == nil || u.csrf == "" {
		t.Fatalf("sign-in set no session cookie or CSRF token: %v %s", resp.Header.Values("Set-Cookie"), data)
	}
	return u
}

// do sends a request with the session cookie and, when csrf is set, the CSRF token.
func (u *consoleUser) do(method, path string, body any, csrf bool, hdr ...string) (int, []byte) {
	req := u.h.Request(method, path, "", body)
	req.AddCookie(&http.Cookie{Name: u.cookie.Name, Value: u.cookie.Value})
	if csrf {
		req.Header.Set(console.CSRFHeader, u.csrf)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return u.h.Send(req)
}

// newCredential creates a credential as root and returns its id and secret.
func newCredential(t *testing.T, h *testenv.Env, name, role, vendor string) (string, string) {
	t.Helper()
	code, body := h.Post("/v1/credentials", rootSecret, map[string]string{"name": name, "role": role, "vendor": vendor})
	if code != http.StatusOK {
		t.Fatalf("create credential %s: HTTP %d %s", name, code, body)
	}
	var out struct {
		Credential struct{ ID string } `json:"credential"`
		Secret     string              `json:"secret"`
	}
	decodeInto(t, body, &out)
	return out.Credential.ID, out.Secret
}

// listAudit lists the audit events of the filter query q (as root).
func listAudit(t *testing.T, h *testenv.Env, q string) []vault.AuditEvent {
	t.Helper()
	code, body := h.Do("GET", "/v1/audit/events?page_size=1000&"+q, rootSecret, nil)
	if code != http.StatusOK {
		t.Fatalf("list audit %s: HTTP %d %s", q, code, body)
	}
	var out struct {
		Events []struct{ JSON string } `json:"events"`
	}
	decodeInto(t, body, &out)
	var evs []vault.AuditEvent
	for _, e := range out.Events {
		var ev vault.AuditEvent
		if err := json.Unmarshal([]byte(e.JSON), &ev); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	return evs
}

var consoleHeaders = map[string]string{
	"Content-Security-Policy": console.ContentSecurityPolicy,
	"X-Frame-Options":         "DENY",
	"Cache-Control":           "no-store",
	"X-Content-Type-Options":  "nosniff",
	"Referrer-Policy":         "no-referrer",
}

// TestConsolePagesAndHeaders: every /ui/ response carries the security headers; the pages
// are index.html; the console is absent from the vendor listener.
func TestConsolePagesAndHeaders(t *testing.T) {
	h := testenv.Start(t)
	if !strings.Contains(console.ContentSecurityPolicy, "script-src 'self';") || strings.Contains(console.ContentSecurityPolicy, "unsafe") {
		t.Fatalf("CSP %q", console.ContentSecurityPolicy)
	}
	cases := []struct {
		method, path string
		body         any
		want         int
		html         bool
	}{
		{"GET", "/ui/", nil, 200, true},
		{"GET", "/ui/overview", nil, 200, true},
		{"GET", "/ui/audit", nil, 200, true},
		{"GET", "/ui/login", nil, 200, true},
		{"GET", "/ui/no-such.js", nil, 404, false},
		{"GET", "/ui/assets/", nil, 404, false},
		{"GET", "/ui/api/session", nil, 401, false},
		{"GET", "/ui/api/nothing", nil, 404, false},
		{"GET", "/ui/api/login", nil, 405, false},
		{"POST", "/ui/overview", "{}", 405, false},
		{"POST", "/ui/api/login", map[string]string{"secret": "tvs_wrong"}, 401, false},
		{"POST", "/ui/api/logout", "{}", 401, false},
	}
	for _, c := range cases {
		req := h.Request(c.method, c.path, "", c.body)
		resp, err := h.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: HTTP %d, want %d: %s", c.method, c.path, resp.StatusCode, c.want, data)
		}
		for k, v := range consoleHeaders {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("%s %s: %s = %q, want %q", c.method, c.path, k, got, v)
			}
		}
		if isHTML := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html"); isHTML != c.html {
			t.Errorf("%s %s: Content-Type %q", c.method, c.path, resp.Header.Get("Content-Type"))
		}
		if c.html && !strings.Contains(strings.ToLower(string(data)), "<html") {
			t.Errorf("%s %s: not the index page: %.200s", c.method, c.path, data)
		}
	}
	// The vendor listener has no console, nor its API.
	for _, p := range []string{"/ui/", "/ui/overview", "/ui/api/session"} {
		req := h.Request("GET", h.VendorURL(p), "", nil)
		if code, _ := h.Send(req); code != http.StatusNotFound {
			t.Errorf("vendor listener GET %s: HTTP %d, want 404", p, code)
		}
	}
	if code, _ := h.Do("POST", h.VendorURL("/ui/api/login"), "", map[string]string{"secret": rootSecret}); code != http.StatusNotFound {
		t.Errorf("vendor listener login: HTTP %d, want 404", code)
	}
}

// TestConsoleDisabled: with the console off (--ui=false) /ui/ is 404 and a session cookie
// authenticates nothing.
func TestConsoleDisabled(t *testing.T) {
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) { c.UI.Disabled = true }))
	for _, p := range []string{"/ui/", "/ui/overview", "/ui/api/session"} {
		if code, _ := h.Do("GET", p, "", nil); code != http.StatusNotFound {
			t.Errorf("GET %s: HTTP %d, want 404", p, code)
		}
	}
	if code, _ := h.Post("/ui/api/login", "", map[string]string{"secret": rootSecret}); code != http.StatusNotFound {
		t.Errorf("login: HTTP %d, want 404", code)
	}
	req := h.Request("GET", "/v1/grants", "", nil)
	req.AddCookie(&http.Cookie{Name: console.CookieName, Value: "anything"})
	if code, _ := h.Send(req); code != http.StatusUnauthorized {
		t.Errorf("cookie with the console off: HTTP %d, want 401", code)
	}
}

// TestConsoleSignIn: the cookie's attributes and the session's JSON; wrong secrets are 401
// and audited, never with the secret; tokenizer, detokenizer and vendor credentials are 403.
func TestConsoleSignIn(t *testing.T) {
	h := testenv.Start(t)
	u := signIn(t, h, rootSecret)
	c := u.cookie
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || len(c.Value) < 43 {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/, not Secure on plain HTTP, a 32-byte id", c)
	}
	if u.login.Credential.ID != vault.RootCredentialID || u.login.Credential.Role != "admin" || u.login.IdleTimeoutSeconds != 900 {
		t.Errorf("login %+v", u.login)
	}
	if exp, err := time.Parse(time.RFC3339, u.login.ExpiresAt); err != nil || exp.Sub(time.Now()) < 7*time.Hour || exp.Sub(time.Now()) > 9*time.Hour {
		t.Errorf("expiresAt %q (%v): want about 8h from now", u.login.ExpiresAt, err)
	}
	code, body := u.do("GET", "/ui/api/session", nil, false)
	var again consoleLogin
	decodeInto(t, body, &again)
	if code != http.StatusOK || again.Credential.ID != vault.RootCredentialID || again.CSRFToken != u.csrf {
		t.Errorf("session: HTTP %d %s", code, body)
	}

	// Wrong, unknown and empty secrets: the same 401.
	const wrong = "tvs_this-is-not-a-secret-0123456789"
	var first []byte
	for _, s := range []string{wrong, "", rootSecret + "x"} {
		resp, data := postLogin(t, h, s)
		if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
			t.Errorf("sign-in with %q: HTTP %d %s %v", s, resp.StatusCode, data, resp.Cookies())
		}
		if first == nil {
			first = data
		} else if string(data) != string(first) {
			t.Errorf("sign-in refusals differ: %s vs %s", data, first)
		}
	}
	for _, role := range []string{"tokenizer", "detokenizer", "vendor"} {
		vendor := ""
		if role == "vendor" {
			vendor = "acme"
		}
		_, secret := newCredential(t, h, "c-"+role, role, vendor)
		resp, data := postLogin(t, h, secret)
		if resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
			t.Errorf("%s sign-in: HTTP %d %s, want 403 and no cookie", role, resp.StatusCode, data)
		}
	}
	_, auditorSecret := newCredential(t, h, "auditor", "auditor", "")
	if a := signIn(t, h, auditorSecret); a.login.Credential.Role != "auditor" {
		t.Errorf("auditor login %+v", a.login)
	}

	evs := listAudit(t, h, "method="+console.MethodLogin)
	var allowed, denied int
	for _, ev := range evs {
		switch ev.Outcome {
		case vault.OutcomeAllowed:
			allowed++
		case vault.OutcomeDenied:
			denied++
		}
		if ev.RequestID == "" || ev.Source == "" {
			t.Errorf("login event without request id or source: %+v", ev)
		}
	}
	if allowed != 2 || denied != 6 {
		t.Errorf("login events: %d allowed, %d denied; want 2 and 6: %+v", allowed, denied, evs)
	}
	code, body = h.Do("GET", "/v1/audit:export", rootSecret, nil)
	if code != http.StatusOK || strings.Contains(string(body), wrong) || strings.Contains(string(body), rootSecret) {
		t.Errorf("the audit trail holds a secret (HTTP %d)", code)
	}
	h.AssertNotLogged(wrong, rootSecret, u.cookie.Value, u.csrf)
}

// TestConsoleSignInTLS: under TLS the cookie is Secure, and a credential bound to a client
// certificate signs in with the certificate alone.
func TestConsoleSignInTLS(t *testing.T) {
	ca := newCA(t)
	srvCert := ca.issue(t, "tokenvault.test", true, time.Now().Add(time.Hour))
	clientCert := ca.issue(t, "ops.example", false, time.Now().Add(time.Hour))
	clientTLS := &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{clientCert}}
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, MinVersion: tls.VersionTLS13}
		c.ClientCAs = ca.pool
	}), testenv.ClientTLS(clientTLS))
	code, body := h.Post("/v1/credentials", rootSecret, map[string]string{"name": "ops", "role": "auditor", "cert_san": "ops.example"})
	if code != http.StatusOK {
		t.Fatalf("create: HTTP %d %s", code, body)
	}
	req := h.Request("POST", "/ui/api/login", "", "{}")
	resp, err := h.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(data), `"role":"auditor"`) {
		t.Fatalf("certificate sign-in: HTTP %d %s", resp.StatusCode, data)
	}
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == console.CookieName {
			ck = c
		}
	}
	if ck == nil || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie under TLS: %+v, want Secure, HttpOnly, SameSite=Strict", ck)
	}
	u := &consoleUser{h: h, cookie: ck}
	if code, body := u.do("GET", "/v1/grants", nil, false); code != http.StatusOK {
		t.Errorf("grants through the certificate session: HTTP %d %s", code, body)
	}
}

// TestConsoleSignInJWT: an admin or auditor credential bound to a JWT subject signs in with
// the JWT as its bearer and an empty body; a tokenizer's JWT is refused; the session's calls
// are audited as console+jwt.
func TestConsoleSignInJWT(t *testing.T) {
	is := newIssuer(t)
	h, _ := startJWT(t, server.JWTConfig{JWKSURL: is.serve().URL}) // a tokenizer bound to billingSub
	const opsSub = "system:serviceaccount:security:ops"
	if code, body := h.Post("/v1/credentials", rootSecret, map[string]string{"name": "ops", "role": "auditor", "jwt_subject": opsSub}); code != http.StatusOK {
		t.Fatalf("create: HTTP %d %s", code, body)
	}
	login := func(tok string) (*http.Response, []byte) {
		resp, err := h.HTTP.Do(h.Request("POST", "/ui/api/login", tok, "{}"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp, data
	}
	if resp, data := login(is.token("rsa-1")); resp.StatusCode != http.StatusForbidden {
		t.Errorf("tokenizer JWT sign-in: HTTP %d %s, want 403", resp.StatusCode, data)
	}
	tok := is.token("ec-1", func(c *jwt.Claims) { c.Subject = opsSub })
	resp, data := login(tok)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(data), `"role":"auditor"`) {
		t.Fatalf("auditor JWT sign-in: HTTP %d %s", resp.StatusCode, data)
	}
	u := &consoleUser{h: h}
	var sess consoleLogin
	decodeInto(t, data, &sess)
	u.csrf = sess.CSRFToken
	for _, c := range resp.Cookies() {
		if c.Name == console.CookieName {
			u.cookie = c
		}
	}
	if u.cookie == nil {
		t.Fatal("no session cookie")
	}
	// A later request carries only the cookie: the JWT may have expired since.
	if code, body := u.do("POST", "/v1/tokens:detokenize", `{"items":[{"token":"4111110000001111"}]}`, true); code != http.StatusForbidden {
		t.Errorf("session detokenize: HTTP %d %s", code, body)
	}
	evs := listAudit(t, h, "method=/tokenvault.v1.TokenService/Detokenize")
	if len(evs) != 1 || evs[0].Actor.AuthMethod != "console+jwt" || evs[0].Actor.AuthSubject != opsSub {
		t.Errorf("session events: %+v", evs)
	}
	h.AssertNotLogged(tok, u.cookie.Value)
}

// TestConsoleCSRF: a state change through a session needs the session's CSRF token and a
// same-origin request; forged ones are refused, audited, and change nothing.
func TestConsoleCSRF(t *testing.T) {
	h := testenv.Start(t)
	u := signIn(t, h, rootSecret)
	grant := map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"default"}, "templates": []string{"pan"}, "purpose": "refunds"}, "ttl": "3600s"}
	newCredential(t, h, "acme", "vendor", "acme")
	forged := []struct {
		name string
		csrf bool
		hdr  []string
	}{
		{"no token", false, nil},
		{"wrong token", false, []string{console.CSRFHeader, strings.Repeat("A", 43)}},
		{"empty token", false, []string{console.CSRFHeader, ""}},
		{"cross-site", true, []string{"Sec-Fetch-Site", "cross-site"}},
		{"same-site", true, []string{"Sec-Fetch-Site", "same-site"}},
	}
	for _, f := range forged {
		code, body := u.do("POST", "/v1/grants", grant, f.csrf, f.hdr...)
		if code != http.StatusForbidden {
			t.Errorf("%s: HTTP %d %s, want 403", f.name, code, body)
		}
		if !f.csrf && string(body) != `{"error":"missing or invalid CSRF token"}` {
			t.Errorf("%s: body %s", f.name, body)
		}
	}
	// A form post (the classic CSRF) is not even JSON.
	req := h.Request("POST", "/v1/grants", "", "grant.vendor=acme")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: u.cookie.Name, Value: u.cookie.Value})
	if code, _ := h.Send(req); code < 400 {
		t.Errorf("form post: HTTP %d", code)
	}
	if code, body := u.do("POST", "/ui/api/logout", "{}", false); code != http.StatusForbidden {
		t.Errorf("logout without token: HTTP %d %s", code, body)
	}
	if code, body := h.Do("GET", "/v1/grants", rootSecret, nil); code != http.StatusOK || strings.Contains(string(body), "grant_") {
		t.Fatalf("a forged request created a grant: %d %s", code, body)
	}
	if evs := listAudit(t, h, "method="+console.MethodCSRF); len(evs) != len(forged)+1 {
		t.Errorf("%d CSRF refusals audited, want %d", len(evs), len(forged)+1)
	} else if evs[0].Actor.CredentialID != vault.RootCredentialID || evs[0].Actor.AuthMethod != "console+secret" {
		t.Errorf("CSRF refusal actor %+v", evs[0].Actor)
	}
	// The real thing works, same-origin or without the header (not a browser).
	for _, hdr := range [][]string{nil, {"Sec-Fetch-Site", "same-origin"}} {
		if code, body := u.do("POST", "/v1/grants", grant, true, hdr...); code != http.StatusOK {
			t.Errorf("grant with the token (%v): HTTP %d %s", hdr, code, body)
		}
	}
	evs := listAudit(t, h, "method=/tokenvault.v1.GrantService/CreateGrant")
	if len(evs) != 2 || evs[0].Actor.AuthMethod != "console+secret" || evs[0].Actor.CredentialID != vault.RootCredentialID {
		t.Errorf("grant creation events: %+v", evs)
	}
}

// TestConsoleSessionMethods: a session may never call a method that returns values, even as
// admin; an auditor's session only reads; an Authorization header wins over the cookie.
func TestConsoleSessionMethods(t *testing.T) {
	h := testenv.Start(t)
	code, body := h.Post("/v1/tokens:tokenize", rootSecret, `{"items":[{"value":"4111111111111111","template":"pan"}]}`)
	token := decode(t, body).Results[0].Token
	if code != http.StatusOK || token == "" {
		t.Fatalf("tokenize: %d %s", code, body)
	}
	admin := signIn(t, h, rootSecret)
	detok := `{"items":[{"token":"` + token + `"}],"purpose":"console"}`
	refused := []struct{ method, path, body string }{
		{"POST", "/v1/tokens:detokenize", detok},
		{"POST", "/v1/records:detokenize", `{"documents":[{"card":"` + token + `"}],"policy":{"fields":[{"path":"$.card","template":"pan"}]}}`},
		{"POST", "/v1/text:detokenize", `{"items":[{"text":"card ` + token + `"}]}`},
		{"POST", "/v1/tokens:tokenize", `{"items":[{"value":"4111111111111111","template":"pan"}]}`},
		{"GET", "/v1/backup", ""},
		{"POST", "/v1/credentials", `{"name":"x","role":"admin"}`},
		{"GET", "/metrics", ""},
	}
	for _, r := range refused {
		var b any
		if r.body != "" {
			b = r.body
		}
		code, body := admin.do(r.method, r.path, b, true)
		if code != http.StatusForbidden || strings.Contains(string(body), "4111111111111111") {
			t.Errorf("admin session %s %s: HTTP %d %.300s, want 403", r.method, r.path, code, body)
		}
	}
	// Vendor detokenize: the vendor listener knows no sessions.
	req := h.Request("POST", h.VendorURL("/v1/tokens:detokenize"), "", detok)
	req.AddCookie(&http.Cookie{Name: admin.cookie.Name, Value: admin.cookie.Value})
	req.Header.Set(console.CSRFHeader, admin.csrf)
	if code, body := h.Send(req); code != http.StatusUnauthorized || strings.Contains(string(body), "4111") {
		t.Errorf("session on the vendor listener: HTTP %d %s, want 401", code, body)
	}
	// The same calls with a bearer secret beside the cookie run as that credential.
	if code, body := h.Post("/v1/tokens:detokenize", rootSecret, detok); code != http.StatusOK || !strings.Contains(string(body), "4111111111111111") {
		t.Errorf("bearer detokenize: HTTP %d", code)
	}
	_, tokSecret := newCredential(t, h, "tok", "tokenizer", "")
	req = h.Request("GET", "/v1/grants", tokSecret, nil)
	req.AddCookie(&http.Cookie{Name: admin.cookie.Name, Value: admin.cookie.Value})
	if code, body := h.Send(req); code != http.StatusForbidden {
		t.Errorf("tokenizer bearer with an admin cookie listed grants: HTTP %d %s", code, body)
	}
	denied := listAudit(t, h, "method=/tokenvault.v1.TokenService/Detokenize&outcome=denied")
	if len(denied) != 1 || denied[0].Actor.AuthMethod != "console+secret" {
		t.Errorf("session detokenize refusals audited: %+v", denied)
	}

	// The session id is trusted only from the gateway: a gRPC caller's metadata or an HTTP
	// header naming it authenticates nothing.
	md := metadata.Pairs("x-tokenvault-console-session", admin.cookie.Value)
	if _, err := tvpb.NewGrantServiceClient(h.Conn).ListGrants(metadata.NewOutgoingContext(context.Background(), md), &tvpb.ListGrantsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC with the session id in metadata: %v, want Unauthenticated", err)
	}
	req = h.Request("GET", "/v1/grants", "", nil)
	req.Header.Set("X-Tokenvault-Console-Session", admin.cookie.Value)
	req.Header.Set("Grpc-Metadata-X-Tokenvault-Console-Session", admin.cookie.Value)
	if code, body := h.Send(req); code != http.StatusUnauthorized {
		t.Errorf("HTTP with the session id in a header: HTTP %d %s, want 401", code, body)
	}

	// Admin acts; auditor reads only.
	newCredential(t, h, "acme", "vendor", "acme")
	grant := `{"grant":{"vendor":"acme","domains":["default"],"templates":["pan"],"purpose":"refunds"},"ttl":"3600s"}`
	if code, body := admin.do("POST", "/v1/grants", grant, true); code != http.StatusOK {
		t.Fatalf("admin session creates a grant: HTTP %d %s", code, body)
	}
	_, auditorSecret := newCredential(t, h, "aud", "auditor", "")
	aud := signIn(t, h, auditorSecret)
	if code, body := aud.do("POST", "/v1/grants", grant, true); code != http.StatusForbidden {
		t.Errorf("auditor session creates a grant: HTTP %d %s, want 403", code, body)
	}
	if code, body := aud.do("POST", "/v1/keys:rotate", "{}", true); code != http.StatusForbidden {
		t.Errorf("auditor session rotates: HTTP %d %s, want 403", code, body)
	}
	for _, p := range []string{"/v1/grants", "/v1/credentials", "/v1/keys", "/v1/audit/events", "/v1/audit/status", "/v1/audit/stats?window=7d"} {
		if code, body := aud.do("GET", p, nil, false); code != http.StatusOK {
			t.Errorf("auditor session GET %s: HTTP %d %s", p, code, body)
		}
	}
	if code, _ := aud.do("GET", "/v1/audit:export", nil, false); code != http.StatusOK {
		t.Errorf("auditor session export: HTTP %d", code)
	}
}

// TestConsoleMethodsClassified: every method of the authorization table is classified for
// console sessions, and none that returns values, secrets or the vault's contents is allowed.
func TestConsoleMethodsClassified(t *testing.T) {
	cm := server.ConsoleMethods()
	for m := range server.Policy(true) {
		if _, ok := cm[m]; !ok {
			t.Errorf("%s is not classified in ConsoleMethods", m)
		}
	}
	for _, m := range []string{
		tvpb.TokenService_Detokenize_FullMethodName, tvpb.RecordService_DetokenizeRecords_FullMethodName,
		tvpb.TextService_DetokenizeText_FullMethodName, tvpb.VendorService_VendorDetokenize_FullMethodName,
		tvpb.KeyService_Backup_FullMethodName, tvpb.CredentialService_CreateCredential_FullMethodName,
		tvpb.CredentialService_RotateCredential_FullMethodName,
	} {
		if cm[m] {
			t.Errorf("a console session may call %s", m)
		}
	}
}

// TestConsoleSessionEnds: sign-out ends the session everywhere at once; so does revoking its
// credential.
func TestConsoleSessionEnds(t *testing.T) {
	h := testenv.Start(t)
	u := signIn(t, h, rootSecret)
	other := signIn(t, h, rootSecret)
	if code, body := u.do("POST", "/ui/api/logout", "{}", true); code != http.StatusNoContent {
		t.Fatalf("logout: HTTP %d %s", code, body)
	}
	if code, _ := u.do("GET", "/v1/grants", nil, false); code != http.StatusUnauthorized {
		t.Errorf("after logout /v1: HTTP %d, want 401", code)
	}
	if code, _ := u.do("GET", "/ui/api/session", nil, false); code != http.StatusUnauthorized {
		t.Errorf("after logout session: HTTP %d, want 401", code)
	}
	if code, _ := other.do("GET", "/v1/grants", nil, false); code != http.StatusOK {
		t.Errorf("another session ended with the first: HTTP %d", code)
	}
	// Outside the API a dead cookie is ignored.
	if code, _ := u.do("GET", "/healthz", nil, false); code != http.StatusOK {
		t.Errorf("healthz with a dead session cookie: HTTP %d", code)
	}
	if evs := listAudit(t, h, "method="+console.MethodLogout); len(evs) != 1 || evs[0].Outcome != vault.OutcomeAllowed {
		t.Errorf("logout events %+v", evs)
	}

	id, secret := newCredential(t, h, "ops", "admin", "")
	ops := signIn(t, h, secret)
	if code, _ := ops.do("GET", "/v1/keys", nil, false); code != http.StatusOK {
		t.Fatalf("ops session: HTTP %d", code)
	}
	if code, body := h.Post("/v1/credentials/"+id+":revoke", rootSecret, "{}"); code != http.StatusOK {
		t.Fatalf("revoke: HTTP %d %s", code, body)
	}
	if code, _ := ops.do("GET", "/v1/keys", nil, false); code != http.StatusUnauthorized {
		t.Errorf("session of a revoked credential: HTTP %d, want 401", code)
	}
	if code, _ := ops.do("GET", "/ui/api/session", nil, false); code != http.StatusUnauthorized {
		t.Errorf("session API of a revoked credential: HTTP %d, want 401", code)
	}
}

// TestConsoleTimeouts: a session ends after its idle timeout without use, and after its
// absolute timeout however used.
func TestConsoleTimeouts(t *testing.T) {
	clk := &testClock{t: time.Now().UTC()}
	h := testenv.Start(t, testenv.Clock(clk.now), testenv.Configure(func(c *server.Config) {
		c.UI.IdleTimeout, c.UI.SessionTimeout = 15*time.Minute, time.Hour
	}))
	idle := signIn(t, h, rootSecret)
	busy := signIn(t, h, rootSecret)
	for range 4 { // 40 minutes of use every 10 minutes
		clk.add(10 * time.Minute)
		if code, _ := busy.do("GET", "/v1/grants", nil, false); code != http.StatusOK {
			t.Fatalf("busy session at %v: HTTP %d", clk.now(), code)
		}
	}
	if code, _ := idle.do("GET", "/v1/grants", nil, false); code != http.StatusUnauthorized {
		t.Errorf("idle 40m (timeout 15m): HTTP %d, want 401", code)
	}
	clk.add(10 * time.Minute)
	if code, _ := busy.do("GET", "/ui/api/session", nil, false); code != http.StatusOK {
		t.Errorf("busy session at 50m: HTTP %d", code)
	}
	clk.add(10*time.Minute + time.Second)
	if code, _ := busy.do("GET", "/v1/grants", nil, false); code != http.StatusUnauthorized {
		t.Errorf("busy session past its 1h: HTTP %d, want 401", code)
	}
	// Just inside the idle timeout still works.
	fresh := signIn(t, h, rootSecret)
	clk.add(14 * time.Minute)
	if code, _ := fresh.do("GET", "/v1/grants", nil, false); code != http.StatusOK {
		t.Errorf("14m idle: HTTP %d, want 200", code)
	}
}

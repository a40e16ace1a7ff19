package server_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testenv"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
)

// sendHeaders sends req and returns the status, the response headers and the body.
func sendHeaders(t *testing.T, h *testenv.Env, req *http.Request) (int, http.Header, string) {
	t.Helper()
	resp, err := h.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// Issue 14: malformed-JSON 400, 404 and 405 answers lacked X-Request-Id. Every answer of every
// HTTP listener now carries exactly one, the caller's when it sent a well-formed one.
func TestEveryResponseHasOneRequestID(t *testing.T) {
	v := setupVendors(t)
	h := v.h
	tok := `{"items":[{"value":"4111111111111111","template":"pan"}]}`
	cases := []struct {
		name         string
		method, url  string
		secret, body string
		want         int
	}{
		{"tokenize", "POST", "/v1/tokens:tokenize", rootSecret, tok, http.StatusOK},
		{"malformed JSON", "POST", "/v1/tokens:tokenize", rootSecret, `{"items":[`, http.StatusBadRequest},
		{"unknown field", "POST", "/v1/tokens:tokenize", rootSecret, `{"itemz":[]}`, http.StatusBadRequest},
		{"unknown path", "GET", "/v1/nothing-here", rootSecret, "", http.StatusNotFound},
		{"wrong method", "GET", "/v1/tokens:tokenize", rootSecret, "", http.StatusMethodNotAllowed},
		{"no credentials", "POST", "/v1/tokens:tokenize", "", tok, http.StatusUnauthorized},
		{"records error", "POST", "/v1/records:tokenize", rootSecret, `{"domain":"acme"}`, http.StatusBadRequest},
		{"health", "GET", "/healthz", "", "", http.StatusOK},
		{"metrics without credentials", "GET", "/metrics", "", "", http.StatusUnauthorized},
		{"vendor unknown path", "GET", h.VendorURL("/v1/grants"), v.acmeSecret, "", http.StatusNotFound},
		{"vendor without credentials", "POST", h.VendorURL("/v1/tokens:detokenize"), "", `{"items":[{"token":"1"}],"purpose":"p"}`, http.StatusUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			code, hdr, _ := sendHeaders(t, h, h.Request(c.method, c.url, c.secret, body))
			if code != c.want {
				t.Fatalf("HTTP %d, want %d", code, c.want)
			}
			if ids := hdr.Values("X-Request-Id"); len(ids) != 1 || ids[0] == "" {
				t.Errorf("X-Request-Id = %q, want one id", ids)
			}
			req := h.Request(c.method, c.url, c.secret, body)
			req.Header.Set("X-Request-Id", "caller-chosen.42")
			if _, hdr, _ := sendHeaders(t, h, req); hdr.Get("X-Request-Id") != "caller-chosen.42" || len(hdr.Values("X-Request-Id")) != 1 {
				t.Errorf("a caller's well-formed id comes back once: got %q", hdr.Values("X-Request-Id"))
			}
			req = h.Request(c.method, c.url, c.secret, body)
			req.Header.Set("X-Request-Id", "not well formed!")
			if _, hdr, _ := sendHeaders(t, h, req); hdr.Get("X-Request-Id") == "not well formed!" {
				t.Error("a malformed caller id was echoed")
			}
		})
	}
}

// Issue 14: "WWW-Authenticate: missing credentials: send …" is not a challenge. A 401 now
// carries an RFC 6750 Bearer challenge; the human message stays in the body.
func TestUnauthorizedSendsBearerChallenge(t *testing.T) {
	h := testenv.Start(t)
	tok := `{"items":[{"value":"4111111111111111","template":"pan"}]}`
	for _, c := range []struct {
		name, secret, want string
	}{
		{"no credentials", "", `Bearer realm="tokenvault"`},
		{"wrong secret", "tvs_wrong", `Bearer realm="tokenvault", error="invalid_token"`},
	} {
		for _, path := range []string{"/v1/tokens:tokenize", "/v1/records:tokenize", "/metrics"} {
			method, body := "POST", any(tok)
			if path == "/metrics" {
				method, body = "GET", nil
			}
			code, hdr, respBody := sendHeaders(t, h, h.Request(method, path, c.secret, body))
			if code != http.StatusUnauthorized {
				t.Fatalf("%s %s: HTTP %d", c.name, path, code)
			}
			if got := hdr.Values("WWW-Authenticate"); len(got) != 1 || got[0] != c.want {
				t.Errorf("%s %s: WWW-Authenticate %q, want %q", c.name, path, got, c.want)
			}
			if !strings.Contains(respBody, "credentials") {
				t.Errorf("%s %s: the body lost its message: %s", c.name, path, respBody)
			}
		}
	}
}

// Issue 14: a wrong method got 501 "Method Not Allowed" without Allow. It is now 405 with the
// methods the path serves.
func TestWrongMethodIs405WithAllow(t *testing.T) {
	h := testenv.Start(t)
	for _, c := range []struct{ method, path, allow string }{
		{"GET", "/v1/tokens:tokenize", "POST"},
		{"DELETE", "/v1/tokens:detokenize", "POST"},
		{"PUT", "/v1/grants", "GET, POST"},
		{"GET", "/v1/credentials/cred_0123456789abcdef:rotate", "POST"},
		{"GET", "/v1/records:tokenize", "POST"},
		{"PUT", "/v1/grants/grant_0123456789abcdef:revoke", "POST"},
		{"PUT", "/v1/grants/grant_0123456789abcdef", "GET"},
		{"POST", "/healthz", "GET"},
		{"DELETE", "/openapi.json", "GET"},
		{"GET", h.VendorURL("/v1/tokens:detokenize"), "POST"},
		{"POST", h.VendorURL("/healthz"), "GET"},
	} {
		code, hdr, body := sendHeaders(t, h, h.Request(c.method, c.path, rootSecret, nil))
		if code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: HTTP %d %s, want 405", c.method, c.path, code, body)
			continue
		}
		if !strings.Contains(body, `"message"`) {
			t.Errorf("%s %s: 405 without the JSON error body: %s", c.method, c.path, body)
		}
		if got := hdr.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
}

// Issue 14: text/plain and form-encoded bodies were parsed as JSON. Anything but JSON is now
// refused with 415 before the body is read; JSON with a charset, and a body without a
// Content-Type (taken as JSON), still work.
func TestNonJSONBodiesRefused(t *testing.T) {
	h := testenv.Start(t)
	tok := `{"items":[{"value":"4111111111111111","template":"pan"}]}`
	for _, c := range []struct {
		ct   string
		want int
	}{
		{"text/plain", http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"multipart/form-data; boundary=x", http.StatusUnsupportedMediaType},
		{"application/xml", http.StatusUnsupportedMediaType},
		{"not a media type;;", http.StatusUnsupportedMediaType},
		{"application/json", http.StatusOK},
		{"application/json; charset=utf-8", http.StatusOK},
		{"", http.StatusOK},
	} {
		for _, path := range []string{"/v1/tokens:tokenize", "/v1/records:tokenize"} {
			body := tok
			if path == "/v1/records:tokenize" {
				body = `{"domain":"acme","policy":{"$.card":"pan"},"documents":[{"card":"4111111111111111"}]}`
			}
			req := h.Request("POST", path, rootSecret, body)
			if c.ct == "" {
				req.Header.Del("Content-Type")
			} else {
				req.Header.Set("Content-Type", c.ct)
			}
			code, _, respBody := sendHeaders(t, h, req)
			if code != c.want {
				t.Errorf("%s with Content-Type %q: HTTP %d %s, want %d", path, c.ct, code, respBody, c.want)
			}
			if code == http.StatusUnsupportedMediaType && !strings.Contains(respBody, "application/json") {
				t.Errorf("415 does not say what to send: %s", respBody)
			}
		}
	}
}

// Issue 14: 429 and 503 came without Retry-After. A rate-limited vendor call now says when the
// grant's rate lets the call through (the vault's delay, as gRPC retry-after metadata that the
// gateway forwards); a spent quota and
// a sealed vault carry the documented defaults.
func TestRetryAfterOn429And503(t *testing.T) {
	v := setupVendors(t)
	item := map[string]string{"token": v.acmePAN, "domain": "acme"}
	v.grant(t, map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": "refunds", "rate_per_minute": 2}, "ttl": "3600s"})
	if code, _ := v.reveal(t, v.acmeSecret, item, item); code != http.StatusOK {
		t.Fatalf("within the rate: HTTP %d", code)
	}
	req := v.h.Request("POST", v.h.VendorURL("/v1/tokens:detokenize"), v.acmeSecret, map[string]any{"items": []any{item}, "purpose": "p"})
	code, hdr, _ := sendHeaders(t, v.h, req)
	if code != http.StatusTooManyRequests {
		t.Fatalf("over the rate: HTTP %d, want 429", code)
	}
	// 2 a minute, both spent just now: one item is back in about 30 s.
	if s, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || s < 1 || s > 30 {
		t.Errorf("Retry-After %q, want the rate's delay in seconds (1–30)", hdr.Get("Retry-After"))
	}

	// A spent quota: the default.
	w := setupVendors(t)
	w.grant(t, map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": "refunds", "quota": 1}, "ttl": "3600s"})
	wItem := map[string]string{"token": w.acmePAN, "domain": "acme"}
	if code, _ := w.reveal(t, w.acmeSecret, wItem); code != http.StatusOK {
		t.Fatalf("within the quota: HTTP %d", code)
	}
	req = w.h.Request("POST", w.h.VendorURL("/v1/tokens:detokenize"), w.acmeSecret, map[string]any{"items": []any{wItem}, "purpose": "p"})
	if code, hdr, _ := sendHeaders(t, w.h, req); code != http.StatusTooManyRequests || hdr.Get("Retry-After") != server.DefaultRetryAfter429 {
		t.Errorf("past the quota: HTTP %d Retry-After %q, want 429 and %s", code, hdr.Get("Retry-After"), server.DefaultRetryAfter429)
	}

	// Sealed: 503 with the default, on the health check and on a call.
	sealed := testenv.Start(t, testenv.Configure(func(c *server.Config) { c.Vault = nil }))
	for _, req := range []*http.Request{
		sealed.Request("GET", "/healthz", "", nil),
		sealed.Request("POST", "/v1/tokens:tokenize", rootSecret, `{"items":[{"value":"4111111111111111","template":"pan"}]}`),
	} {
		if code, hdr, _ := sendHeaders(t, sealed, req); code != http.StatusServiceUnavailable || hdr.Get("Retry-After") != server.DefaultRetryAfter503 {
			t.Errorf("sealed %s: HTTP %d Retry-After %q, want 503 and %s", req.URL.Path, code, hdr.Get("Retry-After"), server.DefaultRetryAfter503)
		}
	}
}

// Issue 14: the unknown-template error counted items from 0 while per-item errors (and the
// CLI) count from 1. One convention: from 1.
func TestItemNumbersCountFromOne(t *testing.T) {
	h := testenv.Start(t)
	code, body := h.Post("/v1/tokens:tokenize", rootSecret, `{"items":[{"value":"4111111111111111","template":"pan"},{"value":"x","template":"nosuch"}]}`)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "(item 2, counting from 1)") {
		t.Errorf("unknown template in the second item: HTTP %d %s", code, body)
	}
}

// Issue 14: the templates API accepted only TEMPLATE_MODE_DETERMINISTIC / LUHN_RULE_INVALID
// while docs/templates.md shows "mode":"deterministic","luhn":"invalid". Both spellings work
// now (and for every enum, e.g. a grant's "reveal":"masked"); a name that is no value of the
// enum is still refused, and a malformed body's error names an unknown field.
func TestShortEnumNamesAndUnknownFields(t *testing.T) {
	h := testenv.Start(t)
	docs := `{"name": "card_bin", "base": "pan", "mode": "deterministic",
	 "keep_prefix": 6, "keep_suffix": 4, "luhn": "invalid", "min_length": 14}`
	if code, body := h.Post("/v1/templates", rootSecret, docs); code != http.StatusOK ||
		!strings.Contains(string(body), "TEMPLATE_MODE_DETERMINISTIC") || !strings.Contains(string(body), "LUHN_RULE_INVALID") {
		t.Errorf("the docs' custom template: HTTP %d %s", code, body)
	}
	long := `{"name": "card_bin2", "base": "pan", "mode": "TEMPLATE_MODE_RANDOM", "luhn": "LUHN_RULE_VALID"}`
	if code, body := h.Post("/v1/templates", rootSecret, long); code != http.StatusOK || !strings.Contains(string(body), "TEMPLATE_MODE_RANDOM") {
		t.Errorf("full enum names: HTTP %d %s", code, body)
	}
	if _, _, err := h.Vault.CreateCredential(context.Background(), vault.CredentialSpec{Name: "acme-api", Role: vault.RoleVendor, Vendor: "acme"}); err != nil {
		t.Fatal(err)
	}
	grant := `{"grant":{"vendor":"acme","domains":["acme"],"templates":["pan"],"reveal":"masked","purpose":"p"},"ttl":"3600s"}`
	if code, body := h.Post("/v1/grants", rootSecret, grant); code != http.StatusOK || !strings.Contains(string(body), "REVEAL_MASKED") {
		t.Errorf("grant with reveal masked: HTTP %d %s", code, body)
	}
	for _, bad := range []string{
		`{"name": "t3", "base": "pan", "mode": "sometimes"}`,
		`{"name": "t4", "base": "pan", "mode": "unspecified"}`,
	} {
		if code, body := h.Post("/v1/templates", rootSecret, bad); code != http.StatusBadRequest || strings.Contains(string(body), "sometimes") {
			t.Errorf("%s: HTTP %d %s, want 400 without the value", bad, code, body)
		}
	}
	code, body := h.Post("/v1/tokens:tokenize", rootSecret, `{"itemz":[{"value":"4111111111111111"}]}`)
	if code != http.StatusBadRequest || !strings.Contains(string(body), `unknown field \"itemz\"`) || strings.Contains(string(body), "4111") {
		t.Errorf("unknown field: HTTP %d %s", code, body)
	}
}

// Issue 14: the HTTP listeners spoke HTTP/1.1 only. They now also serve HTTP/2: over TLS by
// ALPN, and in plain text (loopback, dev) with prior knowledge (h2c). The conventions and the
// vendor listener's client certificates work the same over HTTP/2.
func TestHTTP2(t *testing.T) {
	tok := `{"items":[{"value":"4111111111111111","template":"pan"}]}`
	check := func(t *testing.T, h *testenv.Env, c *http.Client, url string) {
		t.Helper()
		resp, err := c.Do(h.Request("POST", url, rootSecret, tok))
		if err != nil {
			t.Fatalf("POST %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "token") {
			t.Errorf("POST %s: %s %d %s, want HTTP/2 200", url, resp.Proto, resp.StatusCode, body)
		}
		if resp.Header.Get("X-Request-Id") == "" {
			t.Errorf("POST %s over HTTP/2: no X-Request-Id", url)
		}
	}
	t.Run("h2c", func(t *testing.T) {
		h := testenv.Start(t)
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true)
		check(t, h, &http.Client{Transport: &http.Transport{Protocols: p}}, h.URL("/v1/tokens:tokenize"))
	})
	t.Run("TLS", func(t *testing.T) {
		ca := newCA(t)
		srvCert := ca.issue(t, "tokenvault.test", true, time.Now().Add(time.Hour))
		clientTLS := &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS13}
		h := testenv.Start(t, testenv.Configure(func(c *server.Config) {
			c.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, MinVersion: tls.VersionTLS13}
		}), testenv.ClientTLS(clientTLS))
		check(t, h, &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS, ForceAttemptHTTP2: true}}, h.URL("/v1/tokens:tokenize"))
	})
}

// Issue 14: accepted silently: a grant for a vendor nobody acts for, an audit filter on an
// outcome that does not exist, and expired grants listed as "REVOKED false" with no state.
// The first two are refused with a message that says what to do; every grant has a state.
func TestGrantStatesAndSilentInputsRefused(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	h := testenv.Start(t, testenv.Clock(clock))
	ctx := context.Background()

	code, body := h.Post("/v1/grants", rootSecret, `{"grant":{"vendor":"nobody","domains":["acme"],"templates":["pan"],"purpose":"p"},"ttl":"3600s"}`)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "credential create --role vendor --vendor nobody") {
		t.Errorf("grant for a vendor without credentials: HTTP %d %s", code, body)
	}
	if code, body := h.Do("GET", "/v1/audit/events?outcome=nonsense", rootSecret, nil); code != http.StatusBadRequest || !strings.Contains(string(body), "outcome") {
		t.Errorf("audit list with an unknown outcome: HTTP %d %s", code, body)
	}
	if code, _ := h.Do("GET", "/v1/audit/events?outcome=denied", rootSecret, nil); code != http.StatusOK {
		t.Errorf("audit list with outcome denied: HTTP %d", code)
	}

	if _, _, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "acme-api", Role: vault.RoleVendor, Vendor: "acme"}); err != nil {
		t.Fatal(err)
	}
	res, err := h.Vault.Tokenize(ctx, []vault.TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	create := func(extra string) string {
		t.Helper()
		code, body := h.Post("/v1/grants", rootSecret, `{"grant":{"vendor":"acme","domains":["acme"],"templates":["pan"],"purpose":"p"`+extra+`},"ttl":"3600s"}`)
		if code != http.StatusOK {
			t.Fatalf("create grant: HTTP %d %s", code, body)
		}
		var out struct {
			Grant struct{ ID, State string } `json:"grant"`
		}
		if err := json.Unmarshal(body, &out); err != nil || out.Grant.State != "active" {
			t.Fatalf("created grant: %s", body)
		}
		return out.Grant.ID
	}
	spent, live, revoked := create(`,"quota":1`), create(""), create("")
	if _, err := h.Vault.VendorDetokenize(ctx, vault.VendorRequest{Vendor: "acme", Purpose: "p", GrantID: spent, Items: []vault.TokenRef{{Token: res[0].Token, Domain: "acme"}}}); err != nil {
		t.Fatal(err)
	}
	if code, body := h.Post("/v1/grants/"+revoked+":revoke", rootSecret, `{}`); code != http.StatusOK {
		t.Fatalf("revoke: HTTP %d %s", code, body)
	}
	states := func() map[string]string {
		t.Helper()
		code, body := h.Do("GET", "/v1/grants?vendor=acme", rootSecret, nil)
		if code != http.StatusOK {
			t.Fatalf("list grants: HTTP %d %s", code, body)
		}
		var out struct {
			Grants []struct{ ID, State string } `json:"grants"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, g := range out.Grants {
			m[g.ID] = g.State
		}
		return m
	}
	if got := states(); got[spent] != "exhausted" || got[live] != "active" || got[revoked] != "revoked" {
		t.Errorf("states = %v, want %s exhausted, %s active, %s revoked", got, spent, live, revoked)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if got := states(); got[live] != "expired" || got[revoked] != "revoked" {
		t.Errorf("two hours later: states = %v, want %s expired (revoked stays revoked)", got, live)
	}
	code, body = h.Do("GET", "/v1/grants/"+live, rootSecret, nil)
	if code != http.StatusOK || !strings.Contains(string(body), `"state":"expired"`) {
		t.Errorf("get grant: HTTP %d %s", code, body)
	}
}

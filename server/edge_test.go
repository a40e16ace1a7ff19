package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenvault/tokenvault/internal/testenv"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
)

// Finding 5 of issue 11: the internal gateway honoured X-HTTP-Method-Override (and its
// form-post fallback), so one method's route ran another method's RPC.
func TestGatewayIgnoresMethodOverride(t *testing.T) {
	h := testenv.Start(t)

	// GET on the tokenize route, asking to be treated as POST: never a tokenize.
	req := h.Request("GET", "/v1/tokens:tokenize", rootSecret, `{"items":[{"value":"4111111111111111","template":"pan"}]}`)
	req.Header.Set("X-HTTP-Method-Override", "POST")
	code, body := h.Send(req)
	if code == http.StatusOK || strings.Contains(string(body), "results") {
		t.Errorf("GET with X-HTTP-Method-Override: POST tokenized: %d %s", code, body)
	}

	// A form POST to /v1/grants asking to be a GET: never a ListGrants.
	req = h.Request("POST", "/v1/grants", rootSecret, "x=1")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-HTTP-Method-Override", "GET")
	code, body = h.Send(req)
	if code == http.StatusOK {
		t.Errorf("form POST with X-HTTP-Method-Override: GET was served as GET /v1/grants: %d %s", code, body)
	}
	// Nor the form-post fallback without the header.
	req = h.Request("POST", "/v1/grants", rootSecret, "x=1")
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	code, body = h.Send(req)
	if code == http.StatusOK {
		t.Errorf("form POST to /v1/grants was served as GET /v1/grants: %d %s", code, body)
	}
}

// Finding 5 of issue 11: /metrics on the internal listener was open and shows vendor and
// domain names and volumes. It now needs an admin or auditor credential there; the optional
// metrics listener serves Prometheus without one. /healthz and /livez stay open.
func TestMetricsNeedAuditorOrAdminOnInternalListener(t *testing.T) {
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) { c.MetricsAddr = "127.0.0.1:0" }))
	ctx := context.Background()
	secrets := map[vault.Role]string{}
	for _, r := range []vault.Role{vault.RoleAuditor, vault.RoleTokenizer, vault.RoleDetokenizer, vault.RoleVendor} {
		vendor := ""
		if r == vault.RoleVendor {
			vendor = "acme"
		}
		_, s, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "m-" + string(r), Role: r, Vendor: vendor})
		if err != nil {
			t.Fatal(err)
		}
		secrets[r] = s
	}
	metrics := "http://" + h.Addrs.HTTP + "/metrics"
	for _, c := range []struct {
		name, secret string
		want         int
	}{
		{"none", "", http.StatusUnauthorized},
		{"bad", "not-a-secret", http.StatusUnauthorized},
		{"tokenizer", secrets[vault.RoleTokenizer], http.StatusForbidden},
		{"detokenizer", secrets[vault.RoleDetokenizer], http.StatusForbidden},
		{"vendor", secrets[vault.RoleVendor], http.StatusForbidden},
		{"auditor", secrets[vault.RoleAuditor], http.StatusOK},
		{"admin", rootSecret, http.StatusOK},
	} {
		code, body := h.Do("GET", metrics, c.secret, nil)
		if code != c.want {
			t.Errorf("internal /metrics as %s = %d, want %d", c.name, code, c.want)
		}
		if c.want != http.StatusOK && strings.Contains(string(body), "tokenvault_") {
			t.Errorf("internal /metrics as %s leaked metrics", c.name)
		}
		if c.want == http.StatusOK && !strings.Contains(string(body), "tokenvault_sealed 0") {
			t.Errorf("internal /metrics as %s lacks tokenvault_sealed", c.name)
		}
	}
	for _, p := range []string{"/healthz", "/livez"} {
		if code, _ := h.Do("GET", p, "", nil); code != http.StatusOK {
			t.Errorf("GET %s without credentials = %d, want 200", p, code)
		}
	}
	// The metrics listener: /metrics for Prometheus without credentials, nothing else.
	if h.Server.Addrs().Metrics == "" {
		t.Fatal("Addrs().Metrics is empty with MetricsAddr set")
	}
	m := "http://" + h.Server.Addrs().Metrics
	if code, body := h.Do("GET", m+"/metrics", "", nil); code != http.StatusOK || !strings.Contains(string(body), "tokenvault_sealed 0") {
		t.Errorf("metrics listener /metrics = %d", code)
	}
	if code, _ := h.Do("GET", m+"/v1/grants", rootSecret, nil); code != http.StatusNotFound {
		t.Errorf("metrics listener /v1/grants = %d, want 404", code)
	}
}

package server_test

import (
	"context"
	"io"
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
	url := "http://" + h.Addrs.HTTP

	// GET on the tokenize route, asking to be treated as POST: never a tokenize.
	req, _ := http.NewRequest("GET", url+"/v1/tokens:tokenize",
		strings.NewReader(`{"items":[{"value":"4111111111111111","template":"pan"}]}`))
	req.Header.Set("Authorization", "Bearer "+rootSecret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-HTTP-Method-Override", "POST")
	code, body := send(t, req)
	if code == http.StatusOK || strings.Contains(body, "results") {
		t.Errorf("GET with X-HTTP-Method-Override: POST tokenized: %d %s", code, body)
	}

	// A form POST to /v1/grants asking to be a GET: never a ListGrants.
	req, _ = http.NewRequest("POST", url+"/v1/grants", strings.NewReader("x=1"))
	req.Header.Set("Authorization", "Bearer "+rootSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-HTTP-Method-Override", "GET")
	code, body = send(t, req)
	if code == http.StatusOK {
		t.Errorf("form POST with X-HTTP-Method-Override: GET was served as GET /v1/grants: %d %s", code, body)
	}
	// Nor the form-post fallback without the header.
	req, _ = http.NewRequest("POST", url+"/v1/grants", strings.NewReader("x=1"))
	req.Header.Set("Authorization", "Bearer "+rootSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	code, body = send(t, req)
	if code == http.StatusOK {
		t.Errorf("form POST to /v1/grants was served as GET /v1/grants: %d %s", code, body)
	}
}

func send(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func getWith(t *testing.T, url, secret string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	return send(t, req)
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
		_, s, err := h.Vault.CreateCredential(ctx, "m-"+string(r), r, vendor, "")
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
		code, body := getWith(t, metrics, c.secret)
		if code != c.want {
			t.Errorf("internal /metrics as %s = %d, want %d", c.name, code, c.want)
		}
		if c.want != http.StatusOK && strings.Contains(body, "tokenvault_") {
			t.Errorf("internal /metrics as %s leaked metrics", c.name)
		}
		if c.want == http.StatusOK && !strings.Contains(body, "tokenvault_sealed 0") {
			t.Errorf("internal /metrics as %s lacks tokenvault_sealed", c.name)
		}
	}
	for _, p := range []string{"/healthz", "/livez"} {
		if code, _ := getWith(t, "http://"+h.Addrs.HTTP+p, ""); code != http.StatusOK {
			t.Errorf("GET %s without credentials = %d, want 200", p, code)
		}
	}
	// The metrics listener: /metrics for Prometheus without credentials, nothing else.
	if h.Server.Addrs().Metrics == "" {
		t.Fatal("Addrs().Metrics is empty with MetricsAddr set")
	}
	m := "http://" + h.Server.Addrs().Metrics
	if code, body := getWith(t, m+"/metrics", ""); code != http.StatusOK || !strings.Contains(body, "tokenvault_sealed 0") {
		t.Errorf("metrics listener /metrics = %d", code)
	}
	if code, _ := getWith(t, m+"/v1/grants", rootSecret); code != http.StatusNotFound {
		t.Errorf("metrics listener /v1/grants = %d, want 404", code)
	}
}

package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testenv"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
)

// webhookSink records the alerts posted to it and checks their signatures.
type webhookSink struct {
	mu     sync.Mutex
	alerts []server.Alert
	bad    int
	fails  int // answer 500 to this many posts first (to exercise retries)
}

func (w *webhookSink) handler(secret []byte) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.fails > 0 {
			w.fails--
			rw.WriteHeader(http.StatusInternalServerError)
			return
		}
		if r.Header.Get("X-Tokenvault-Signature") != server.Sign(secret, r.Header.Get("X-Tokenvault-Timestamp"), body) {
			w.bad++
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		var a server.Alert
		_ = json.Unmarshal(body, &a)
		w.alerts = append(w.alerts, a)
	}
}

func (w *webhookSink) wait(t *testing.T, rule string) server.Alert {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		for _, a := range w.alerts {
			if a.Rule == rule {
				w.mu.Unlock()
				return a
			}
		}
		w.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s alert reached the webhook", rule)
	return server.Alert{}
}

func TestAlerts(t *testing.T) {
	secret := []byte("webhook-secret")
	sink := &webhookSink{fails: 1}
	hook := httptest.NewServer(sink.handler(secret))
	defer hook.Close()
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) {
		c.Alerts = server.AlertConfig{WebhookURL: hook.URL, WebhookSecret: secret, VendorRevealsPerMinute: 3, DenialsPerMinute: 5}
	}))
	ctx := context.Background()
	_, vendorSecret, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "acme-api", Role: vault.RoleVendor, Vendor: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	code, body := h.Post("/v1/canaries", rootSecret, map[string]any{"domain": "acme", "template": "pan", "value": "4000000000000002", "label": "orders export to acme"})
	if code != http.StatusOK {
		t.Fatalf("create canary: %d %s", code, body)
	}
	var canary struct {
		Token string `json:"token"`
	}
	decodeInto(t, body, &canary)
	res, _ := h.Vault.Tokenize(ctx, []vault.TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: "acme"}})
	if _, err := h.Vault.CreateGrant(ctx, vault.Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"pan"}, Purpose: "refunds", ExpireTime: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	reveal := func(tokens ...string) {
		var items []map[string]string
		for _, tk := range tokens {
			items = append(items, map[string]string{"token": tk, "domain": "acme"})
		}
		h.Do("POST", h.VendorURL("/v1/tokens:detokenize"), vendorSecret, map[string]any{"items": items, "purpose": "p"})
	}
	// The vendor asks for the canary: critical alert, delivered despite a first failed post.
	reveal(canary.Token)
	a := sink.wait(t, "canary")
	if a.Severity != "critical" || a.Vendor != "acme" {
		t.Errorf("canary alert = %+v", a)
	}
	// Reveal rate over 3 a minute.
	reveal(res[0].Token, res[0].Token, res[0].Token, res[0].Token)
	if a := sink.wait(t, "vendor_reveal_rate"); a.Count < 4 {
		t.Errorf("rate alert = %+v", a)
	}
	// A burst of bad secrets.
	for i := 0; i < 7; i++ {
		h.Post("/v1/tokens:tokenize", "wrong-secret", map[string]any{"items": []map[string]string{{"value": "x", "template": "opaque"}}})
	}
	sink.wait(t, "denial_burst")
	sink.mu.Lock()
	bad := sink.bad
	sink.mu.Unlock()
	if bad != 0 {
		t.Errorf("%d webhook posts had a bad signature", bad)
	}
	// Alerts are in the audit trail and in the metrics.
	evs, _, err := h.Vault.ListAudit(ctx, vault.AuditFilter{Method: "Alert", Limit: 100})
	if err != nil || len(evs) < 3 {
		t.Fatalf("alert audit events = %d, %v", len(evs), err)
	}
	_, metrics := h.Do("GET", "/metrics", rootSecret, nil)
	if !strings.Contains(string(metrics), `tokenvault_alerts_total{rule="canary",severity="critical"} 1`) {
		t.Errorf("metrics lack the canary alert")
	}
	h.AssertNotLogged("4000000000000002", canary.Token, "4111111111111111", vendorSecret)
}

package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

// The gateways call unary methods in process (server/inproc.go): every HTTP call must still
// run the interceptor chain exactly once: one "request" log line (observe, at the end of the
// chain head), one request metric, the audit events of one call, with the HTTP caller's
// address as source. Counted per request by its X-Request-Id.
func TestGatewayRunsInterceptorsOncePerHTTPCall(t *testing.T) {
	h := testenv.Start(t)
	ctx := context.Background()
	token, tokenizer, acme := acmeVendorSetup(t, h)

	tok := map[string]any{"items": []map[string]string{{"value": "4111111111111111", "template": "pan"}}}
	for i, c := range []struct {
		name, method, url, secret string
		body                      any
		code                      int
		method2                   string // the RPC's full method, as logged
		audited                   bool   // the call writes one audit event
	}{
		{"tokenize", "POST", "/v1/tokens:tokenize", rootSecret, tok, 200, "/tokenvault.v1.TokenService/Tokenize", true},
		{"tokenize as tokenizer", "POST", "/v1/tokens:tokenize", tokenizer, tok, 200, "/tokenvault.v1.TokenService/Tokenize", true},
		{"detokenize", "POST", "/v1/tokens:detokenize", rootSecret, map[string]any{"purpose": "p", "items": []map[string]string{{"token": token, "domain": "acme"}}}, 200, "/tokenvault.v1.TokenService/Detokenize", true},
		{"no credentials", "POST", "/v1/tokens:tokenize", "", tok, 401, "/tokenvault.v1.TokenService/Tokenize", true},
		{"bad secret", "POST", "/v1/tokens:tokenize", "tv_nope", tok, 401, "/tokenvault.v1.TokenService/Tokenize", true},
		{"wrong role", "POST", "/v1/tokens:detokenize", tokenizer, map[string]any{"purpose": "p", "items": []map[string]string{{"token": token}}}, 403, "/tokenvault.v1.TokenService/Detokenize", true},
		{"invalid (protovalidate)", "POST", "/v1/tokens:tokenize", rootSecret, map[string]any{"items": []any{}}, 400, "/tokenvault.v1.TokenService/Tokenize", false},
		{"no body", "GET", "/v1/templates", rootSecret, nil, 200, "/tokenvault.v1.TemplateService/ListTemplates", false},
		{"records", "POST", "/v1/records:tokenize", rootSecret, map[string]any{"documents": []any{map[string]string{"card": "4111111111111111"}}, "policy": map[string]string{"$.card": "pan"}}, 200, "/tokenvault.v1.RecordService/TokenizeRecords", true},
		{"vendor", "POST", h.VendorURL("/v1/tokens:detokenize"), acme, map[string]any{"purpose": "p", "items": []map[string]string{{"token": token, "domain": "acme"}}}, 200, "/tokenvault.v1.VendorService/VendorDetokenize", true},
	} {
		id := fmt.Sprintf("inproc-%d", i)
		req := h.Request(c.method, c.url, c.secret, c.body)
		req.Header.Set("X-Request-Id", id)
		code, body := h.Send(req)
		if code != c.code {
			t.Errorf("%s: HTTP %d, want %d: %s", c.name, code, c.code, body)
			continue
		}
		var runs []map[string]any
		for _, line := range strings.Split(h.Logs.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "request" && rec["request_id"] == id {
				runs = append(runs, rec)
			}
		}
		if len(runs) != 1 {
			t.Errorf("%s: %d interceptor runs (request log lines), want 1: %v", c.name, len(runs), runs)
		} else if runs[0]["method"] != c.method2 {
			t.Errorf("%s: logged method %v, want %s", c.name, runs[0]["method"], c.method2)
		}
		evs, _, err := h.Vault.ListAudit(ctx, vault.AuditFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, ev := range evs {
			if ev.RequestID != id {
				continue
			}
			n++
			if ev.Source != "127.0.0.1" {
				t.Errorf("%s: audit source %q, want the HTTP caller's 127.0.0.1", c.name, ev.Source)
			}
		}
		if want := map[bool]int{true: 1, false: 0}[c.audited]; n != want {
			t.Errorf("%s: %d audit events, want %d", c.name, n, want)
		}
	}
}

// An HTTP call with a body is authenticated once: by the body guard, whose principal the
// interceptor takes (it authenticated it a second time before issue 15). Counted by the
// vault's clock, which every authentication reads: an HTTP tokenize reads it as often as the
// same tokenize over gRPC (authenticated once, in the tap handle). Background work may read the
// clock too; it only adds, so the fewest reads over several calls are compared.
func TestHTTPCallAuthenticatesOnce(t *testing.T) {
	var reads atomic.Int64
	h := testenv.Start(t, testenv.Clock(func() time.Time { reads.Add(1); return time.Now() }))
	_, secret, err := h.Vault.CreateCredential(context.Background(), vault.CredentialSpec{Name: "tok", Role: vault.RoleTokenizer})
	if err != nil {
		t.Fatal(err)
	}
	client := tvpb.NewTokenServiceClient(h.Conn)
	fewest := func(call func()) int64 {
		least := int64(1 << 62)
		for range 8 {
			before := reads.Load()
			call()
			least = min(least, reads.Load()-before)
		}
		return least
	}
	item := []*tvpb.TokenizeItem{{Value: "4111111111111111", Template: "pan"}}
	grpcReads := fewest(func() {
		if _, err := client.Tokenize(authCtx(secret), &tvpb.TokenizeRequest{Items: item}); err != nil {
			t.Fatal(err)
		}
	})
	httpReads := fewest(func() {
		if code, body := h.Post("/v1/tokens:tokenize", secret, map[string]any{"items": []map[string]string{{"value": "4111111111111111", "template": "pan"}}}); code != http.StatusOK {
			t.Fatalf("HTTP %d %s", code, body)
		}
	})
	authReads := fewest(func() {
		if _, err := h.Vault.Authenticate(context.Background(), secret); err != nil {
			t.Fatal(err)
		}
	})
	if authReads == 0 {
		t.Fatal("an authentication does not read the vault's clock: this test cannot count them")
	}
	if httpReads != grpcReads {
		t.Errorf("an HTTP tokenize reads the vault's clock %d times, the same over gRPC %d (an authentication: %d): HTTP authenticates %+d times more",
			httpReads, grpcReads, authReads, (httpReads-grpcReads)/authReads)
	}
}

// acmeVendorSetup tokenizes 4111111111111111 (pan) in domain acme and makes a tokenizer
// credential and a vendor credential acme granted pan in acme; it returns the token and the
// two secrets.
func acmeVendorSetup(t *testing.T, h *testenv.Env) (token, tokenizer, acme string) {
	t.Helper()
	ctx := context.Background()
	_, tokenizer, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "tok", Role: vault.RoleTokenizer})
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.Vault.Tokenize(ctx, []vault.TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	_, acme, err = h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "acme", Role: vault.RoleVendor, Vendor: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if code, body := h.Post("/v1/grants", rootSecret, map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": "p"}, "ttl": "3600s"}); code != http.StatusOK {
		t.Fatalf("grant: %d %s", code, body)
	}
	return res[0].Token, tokenizer, acme
}

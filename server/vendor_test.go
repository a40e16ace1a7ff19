package server_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/big"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testenv"
	"github.com/tokenvault/tokenvault/vault"
)

// vendorSetup tokenizes values in two domains and onboards vendor "acme" with a credential.
type vendorSetup struct {
	h            *testenv.Env
	acmePAN      string // token of 4111111111111111 in domain acme
	acmeSSN      string // token of 123-45-6789 in domain acme
	globexPAN    string // token of 4111111111111111 in domain globex
	acmeSecret   string
	globexSecret string
}

func setupVendors(t *testing.T, opts ...testenv.Option) *vendorSetup {
	h := testenv.Start(t, opts...)
	ctx := context.Background()
	res, err := h.Vault.Tokenize(ctx, []vault.TokenizeItem{
		{Value: "4111111111111111", Template: "pan", Domain: "acme"},
		{Value: "123-45-6789", Template: "ssn", Domain: "acme"},
		{Value: "4111111111111111", Template: "pan", Domain: "globex"},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, acme, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "acme-api", Role: vault.RoleVendor, Vendor: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	_, globex, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "globex-api", Role: vault.RoleVendor, Vendor: "globex"})
	if err != nil {
		t.Fatal(err)
	}
	return &vendorSetup{h: h, acmePAN: res[0].Token, acmeSSN: res[1].Token, globexPAN: res[2].Token, acmeSecret: acme, globexSecret: globex}
}

func (v *vendorSetup) grant(t *testing.T, g map[string]any) string {
	t.Helper()
	code, body := v.h.Post("/v1/grants", rootSecret, g)
	if code != http.StatusOK {
		t.Fatalf("create grant: HTTP %d %s", code, body)
	}
	var out struct {
		Grant struct {
			ID string `json:"id"`
		} `json:"grant"`
	}
	decodeInto(t, body, &out)
	return out.Grant.ID
}

func (v *vendorSetup) reveal(t *testing.T, secret string, items ...map[string]string) (int, tokenizeResp) {
	t.Helper()
	code, body := v.h.Do("POST", v.h.VendorURL("/v1/tokens:detokenize"), secret, map[string]any{"items": items, "purpose": "order-42"})
	if code != http.StatusOK {
		return code, tokenizeResp{}
	}
	return code, decode(t, body)
}

func TestVendorDetokenizeThroughGrants(t *testing.T) {
	testenv.ForBackends(t, &pg, testVendorDetokenizeThroughGrants)
}

func testVendorDetokenizeThroughGrants(t *testing.T, backend testenv.Option) {
	v := setupVendors(t, backend)
	v.grant(t, map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": "refunds"}, "ttl": "3600s"})
	v.grant(t, map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"ssn"}, "purpose": "kyc", "reveal": "REVEAL_MASKED"}, "ttl": "3600s"})

	code, r := v.reveal(t, v.acmeSecret,
		map[string]string{"token": v.acmePAN, "domain": "acme"},
		map[string]string{"token": v.acmeSSN, "domain": "acme"},
		map[string]string{"token": v.globexPAN, "domain": "globex"},
		map[string]string{"token": v.globexPAN, "domain": "acme"},
		map[string]string{"token": "0000000000000000", "domain": "acme"},
	)
	if code != http.StatusOK {
		t.Fatalf("vendor detokenize: HTTP %d", code)
	}
	if r.Results[0].Value != "4111111111111111" {
		t.Errorf("granted pan = %+v", r.Results[0])
	}
	if r.Results[1].Value == "123-45-6789" || r.Results[1].Value == "" || r.Results[1].Value[len(r.Results[1].Value)-4:] != "6789" {
		t.Errorf("masked ssn = %+v: want the last four only", r.Results[1])
	}
	deniedMsg := ""
	for i := 2; i < 5; i++ {
		e := r.Results[i].Error
		if e == nil || e.Code != "PERMISSION_DENIED" || r.Results[i].Value != "" {
			t.Fatalf("item %d: %+v, want PERMISSION_DENIED and no value", i, r.Results[i])
		}
		if deniedMsg == "" {
			deniedMsg = e.Message
		} else if e.Message != deniedMsg {
			t.Errorf("denials differ: %q vs %q (an existence oracle)", deniedMsg, e.Message)
		}
	}
	// Another vendor sees nothing of acme's, even with acme's tokens.
	_, r = v.reveal(t, v.globexSecret, map[string]string{"token": v.acmePAN, "domain": "acme"}, map[string]string{"token": v.globexPAN, "domain": "globex"})
	for i, res := range r.Results {
		if res.Error == nil || res.Error.Code != "PERMISSION_DENIED" || res.Error.Message != deniedMsg {
			t.Errorf("globex item %d: %+v", i, res)
		}
	}
	// A vendor credential opens nothing on the internal listener; internal ones nothing here.
	if code, _ := v.h.Post("/v1/tokens:detokenize", v.acmeSecret, map[string]any{"items": []map[string]string{{"token": v.acmePAN, "domain": "acme"}}}); code != http.StatusForbidden {
		t.Errorf("vendor on internal detokenize: %d, want 403", code)
	}
	if code, _ := v.reveal(t, rootSecret, map[string]string{"token": v.acmePAN, "domain": "acme"}); code != http.StatusForbidden {
		t.Errorf("admin on vendor listener: %d, want 403", code)
	}
	if code, _ := v.reveal(t, "", map[string]string{"token": v.acmePAN, "domain": "acme"}); code != http.StatusUnauthorized {
		t.Errorf("anonymous on vendor listener: %d, want 401", code)
	}
	v.h.AssertNotLogged("4111111111111111", "123-45-6789", v.acmePAN, v.acmeSSN, v.globexPAN, v.acmeSecret, v.globexSecret)
}

// TestVendorRandomTokensAllDenied: 100,000 random well-formed tokens, 100 % denied with the
// same error as a real token that is not granted.
func TestVendorRandomTokensAllDenied(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 tokens")
	}
	v := setupVendors(t)
	v.grant(t, map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": "refunds"}, "ttl": "3600s"})
	_, ref := v.reveal(t, v.acmeSecret, map[string]string{"token": v.acmeSSN, "domain": "acme"})
	want := *ref.Results[0].Error
	total := 0
	for batch := 0; batch < 10; batch++ {
		items := make([]map[string]string, vault.MaxBatch)
		for i := range items {
			n, _ := rand.Int(rand.Reader, big.NewInt(1e16))
			items[i] = map[string]string{"token": fmt.Sprintf("%016d", n), "domain": "acme"}
		}
		code, r := v.reveal(t, v.acmeSecret, items...)
		if code != http.StatusOK {
			t.Fatalf("batch %d: HTTP %d", batch, code)
		}
		for i, res := range r.Results {
			if res.Value != "" && items[i]["token"] == v.acmePAN {
				continue // the one real token, astronomically unlikely
			}
			if res.Error == nil || *res.Error != want || res.Value != "" {
				t.Fatalf("random token %d: %+v, want %+v", i, res, want)
			}
			total++
		}
	}
	if total < 99999 {
		t.Fatalf("checked %d tokens", total)
	}
}

func TestVendorGrantLimits(t *testing.T) {
	v := setupVendors(t)
	item := map[string]string{"token": v.acmePAN, "domain": "acme"}
	// Rate: 3 items a minute, so the fourth item is refused and nothing revealed past it.
	v.grant(t, map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": "refunds", "rate_per_minute": 3}, "ttl": "3600s"})
	if code, r := v.reveal(t, v.acmeSecret, item, item); code != http.StatusOK || r.Results[1].Value == "" {
		t.Fatalf("within rate: %d %+v", code, r)
	}
	if code, _ := v.reveal(t, v.acmeSecret, item, item); code != http.StatusTooManyRequests {
		t.Fatalf("over rate: HTTP %d, want 429", code)
	}
	if code, r := v.reveal(t, v.acmeSecret, item); code != http.StatusOK || r.Results[0].Value == "" {
		t.Fatalf("last item within rate: %d %+v", code, r)
	}
	if code, _ := v.reveal(t, v.acmeSecret, item); code != http.StatusTooManyRequests {
		t.Fatalf("rate exhausted: HTTP %d, want 429", code)
	}
}

func TestVendorQuotaSourceAndRevocation(t *testing.T) {
	v := setupVendors(t)
	item := map[string]string{"token": v.acmePAN, "domain": "acme"}
	// A grant for another network does not cover loopback callers.
	v.grant(t, map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": "x", "source_cidrs": []string{"203.0.113.0/24"}}, "ttl": "3600s"})
	if _, r := v.reveal(t, v.acmeSecret, item); r.Results[0].Error == nil {
		t.Fatalf("grant for 203.0.113.0/24 revealed to loopback: %+v", r.Results[0])
	}
	// The caller's own X-Forwarded-For does not move it into the granted network.
	req := v.h.Request("POST", v.h.VendorURL("/v1/tokens:detokenize"), v.acmeSecret, map[string]any{"items": []map[string]string{item}, "purpose": "p"})
	req.Header.Set("X-Forwarded-For", "203.0.113.7")
	if _, spoofed := v.h.Send(req); contains(spoofed, "4111111111111111") {
		t.Fatalf("X-Forwarded-For moved the caller into the grant's network: %s", spoofed)
	}
	// Quota of 2 items in total.
	id := v.grant(t, map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": "x", "quota": 2, "source_cidrs": []string{"127.0.0.0/8", "::1/128"}}, "ttl": "3600s"})
	if code, r := v.reveal(t, v.acmeSecret, item, item); code != http.StatusOK || r.Results[1].Value == "" {
		t.Fatalf("within quota: %d %+v", code, r)
	}
	// The quota is spent: 429, whether the token asked for exists or not.
	if code, _ := v.reveal(t, v.acmeSecret, item); code != http.StatusTooManyRequests {
		t.Fatalf("over quota: HTTP %d, want 429", code)
	}
	if code, _ := v.reveal(t, v.acmeSecret, map[string]string{"token": "0000000000000000", "domain": "acme"}); code != http.StatusTooManyRequests {
		t.Fatalf("over quota with a token that does not exist: HTTP %d, want 429 (no existence oracle)", code)
	}
	code, body := v.h.Do("GET", "/v1/grants/"+id, rootSecret, nil)
	if code != http.StatusOK || !contains(body, `"used":"2"`) {
		t.Errorf("grant after quota: %d %s", code, body)
	}

	// Revocation applies at once, even with concurrent traffic.
	id = v.grant(t, map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": "x"}, "ttl": "3600s"})
	var revoked atomic.Bool
	var leaked atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				after := revoked.Load()
				_, r := v.reveal(t, v.acmeSecret, item)
				if after && len(r.Results) == 1 && r.Results[0].Value != "" {
					leaked.Add(1)
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	if code, body := v.h.Post("/v1/grants/"+id+":revoke", rootSecret, map[string]any{}); code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, body)
	}
	revoked.Store(true)
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if leaked.Load() != 0 {
		t.Fatalf("%d reveals started after revocation returned", leaked.Load())
	}
}

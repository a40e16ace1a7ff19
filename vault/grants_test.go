package vault

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestGrantExpiry(t *testing.T) {
	ctx := context.Background()
	v, clk, _ := openClock(t)
	res, err := v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := v.CreateGrant(ctx, Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"pan"}, Purpose: "refunds", ExpireTime: clk.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	req := VendorRequest{Vendor: "acme", Purpose: "order-1", Items: []TokenRef{{Token: res[0].Token, Domain: "acme"}}}
	out, err := v.VendorDetokenize(ctx, req)
	if err != nil || out[0].Value != "4111111111111111" || out[0].GrantID != g.ID {
		t.Fatalf("before expiry: %+v, %v", out, err)
	}
	clk.add(time.Hour)
	out, err = v.VendorDetokenize(ctx, req)
	if err != nil || !errors.Is(out[0].Err, ErrPermissionDenied) || out[0].Value != "" {
		t.Fatalf("at expiry: %+v, %v; want ErrPermissionDenied", out, err)
	}
}

func TestCreateGrantValidation(t *testing.T) {
	ctx := context.Background()
	v, _ := openTest(t)
	ok := Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"pan"}, Purpose: "p", ExpireTime: time.Now().Add(time.Hour)}
	bad := map[string]func(g *Grant){
		"no domain":     func(g *Grant) { g.Domains = nil },
		"bad domain":    func(g *Grant) { g.Domains = []string{"A B"} },
		"no template":   func(g *Grant) { g.Templates = nil },
		"unknown tmpl":  func(g *Grant) { g.Templates = []string{"nope"} },
		"no purpose":    func(g *Grant) { g.Purpose = "" },
		"past expiry":   func(g *Grant) { g.ExpireTime = time.Now().Add(-time.Minute) },
		"too long":      func(g *Grant) { g.ExpireTime = time.Now().Add(MaxGrantTTL + time.Hour) },
		"bad cidr":      func(g *Grant) { g.SourceCIDRs = []string{"10.0.0.0/33"} },
		"bad reveal":    func(g *Grant) { g.Reveal = "partial" },
		"negative rate": func(g *Grant) { g.RatePerMin = -1 },
		"bad vendor":    func(g *Grant) { g.Vendor = "" },
	}
	for name, mutate := range bad {
		g := ok
		mutate(&g)
		if _, err := v.CreateGrant(ctx, g); err == nil {
			t.Errorf("%s: CreateGrant succeeded", name)
		}
	}
	if _, err := v.CreateGrant(ctx, ok); err != nil {
		t.Fatalf("valid grant: %v", err)
	}
	if err := v.RevokeGrant(ctx, "grant_nope"); !errors.Is(err, ErrGrantNotFound) {
		t.Errorf("revoke unknown = %v", err)
	}
}

// A spent grant must not let a vendor tell an existing token from a missing one.
func TestNoExistenceOracleOnSpentGrant(t *testing.T) {
	ctx := context.Background()
	v, clk, _ := openClock(t)
	res, err := v.Tokenize(ctx, []TokenizeItem{{Value: "123-45-6789", Template: "ssn", Domain: "acme"}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	ssnTok := res[0].Token
	// Grant 1: ssn, quota 1; grant 2: pan, no quota.
	var gs, gp Grant
	for {
		gs, _ = v.CreateGrant(ctx, Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"ssn"}, Purpose: "x", ExpireTime: clk.now().Add(time.Hour), Quota: 1})
		gp, _ = v.CreateGrant(ctx, Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"pan"}, Purpose: "x", ExpireTime: clk.now().Add(time.Hour)})
		if gp.ID < gs.ID { // make pan grant first in scan order
			break
		}
		v.RevokeGrant(ctx, gs.ID)
		v.RevokeGrant(ctx, gp.ID)
	}
	// Use the ssn grant's quota legitimately.
	out, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", Items: []TokenRef{{Token: ssnTok, Domain: "acme"}}})
	t.Logf("legit reveal: %+v %v", out, err)
	// Now the grant is spent. Probe an existing ssn token vs a non-existing one.
	fake := "999-99-9999"
	if fake == ssnTok {
		fake = "888-88-8888"
	}
	_, errExist := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", Items: []TokenRef{{Token: ssnTok, Domain: "acme"}}})
	outNo, errNo := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", Items: []TokenRef{{Token: fake, Domain: "acme"}}})
	t.Logf("existing token: err=%v ; non-existing token: err=%v item=%v", errExist, errNo, outNo[0].Err)
	if errors.Is(errExist, ErrQuotaExhausted) && errNo == nil {
		t.Errorf("existence oracle: an existing token and a missing one get different answers once a grant's quota is spent")
	}
}

// A canary requested in a call that fails whole (here on quota) must still be flagged, for the
// alert and in the audit event.
func TestCanarySeenOnRefusedCall(t *testing.T) {
	ctx := context.Background()
	v, clk, _ := openClock(t)
	c, err := v.CreateCanary(ctx, "acme", "pan", "4000000000000002", "sent to acme in file X")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.CreateGrant(ctx, Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"ssn"}, Purpose: "x", ExpireTime: clk.now().Add(time.Hour), Quota: 1}); err != nil {
		t.Fatal(err)
	}
	items := []TokenRef{{Token: "000-00-0000", Domain: "acme"}, {Token: c.Token, Domain: "acme"}}
	res, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", Items: items})
	if !errors.Is(err, ErrQuotaExhausted) || len(res) != 2 || !res[1].Canary {
		t.Fatalf("a call failing on quota must still return the canary flags for the alert: %+v, %v", res, err)
	}
	evs, _, _ := v.ListAudit(ctx, AuditFilter{Method: "VendorDetokenize"})
	if len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Reason, "canary") {
		t.Fatalf("the audit event of the refused call does not mention the canary: %+v", evs)
	}
}

// CheckVendor (grant create's guard against a mistyped vendor): only a live vendor credential
// for the vendor counts; a revoked or expired one does not.
func TestCheckVendor(t *testing.T) {
	ctx := context.Background()
	v, clk, _ := openClock(t)
	if err := v.CheckVendor(ctx, "acme"); !errors.Is(err, ErrNoSuchVendor) {
		t.Fatalf("no credential: %v, want ErrNoSuchVendor", err)
	}
	if _, _, err := v.CreateCredential(ctx, CredentialSpec{Name: "acme-tok", Role: RoleTokenizer}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.CreateCredential(ctx, CredentialSpec{Name: "acme-api", Role: RoleVendor, Vendor: "acme", Expires: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := v.CheckVendor(ctx, "acme"); err != nil {
		t.Fatalf("live vendor credential: %v", err)
	}
	if err := v.CheckVendor(ctx, "globex"); !errors.Is(err, ErrNoSuchVendor) {
		t.Fatalf("another vendor: %v", err)
	}
	clk.add(time.Hour)
	if err := v.CheckVendor(ctx, "acme"); !errors.Is(err, ErrNoSuchVendor) {
		t.Fatalf("expired vendor credential: %v", err)
	}
	d, _, err := v.CreateCredential(ctx, CredentialSpec{Name: "acme-api-2", Role: RoleVendor, Vendor: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.RevokeCredential(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	if err := v.CheckVendor(ctx, "acme"); !errors.Is(err, ErrNoSuchVendor) {
		t.Fatalf("revoked vendor credential: %v", err)
	}
}

package vault

import (
	"context"
	"errors"
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

package vault

import (
	"context"
	"errors"
	"testing"
	"time"
)

// grantPair sets up the finding of issue 11.1: a vendor holds a loose grant A (ssn, no limits)
// and a tight grant B (pan, quota 3, 2 a minute) in the same domain, and three PAN tokens.
func grantPair(t *testing.T) (v *Vault, clk *clock, a, b Grant, pans []TokenRef) {
	t.Helper()
	ctx := context.Background()
	v, clk, _ = openClock(t)
	var err error
	a, err = v.CreateGrant(ctx, Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"ssn"}, Purpose: "kyc", ExpireTime: clk.now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	clk.add(time.Second) // A is the older grant: the one usage used to be charged to
	b, err = v.CreateGrant(ctx, Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"pan"}, Purpose: "refunds", ExpireTime: clk.now().Add(time.Hour), RatePerMin: 2, Quota: 3})
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.Tokenize(ctx, []TokenizeItem{
		{Value: "4111111111111111", Template: "pan", Domain: "acme"},
		{Value: "5500000000000004", Template: "pan", Domain: "acme"},
		{Value: "340000000000009", Template: "pan", Domain: "acme"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		pans = append(pans, TokenRef{Token: r.Token, Domain: "acme"})
	}
	return v, clk, a, b, pans
}

// Issue 11.1: a tight grant's quota and rate could be bypassed through a looser grant of the
// same vendor and domain, because usage was charged to the vendor's oldest grant.
func TestTightGrantBindsItsReveals(t *testing.T) {
	ctx := context.Background()
	v, clk, a, b, pans := grantPair(t)
	revealed := 0
	for call := 0; call < 6; call++ {
		clk.add(time.Minute) // the rate refills; only the quota (3) can stop the calls
		out, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "order-1", Items: pans[:1]})
		if err != nil {
			if !errors.Is(err, ErrQuotaExhausted) {
				t.Fatalf("call %d: %v, want ErrQuotaExhausted once B's quota is spent", call, err)
			}
			continue
		}
		if out[0].Err == nil {
			revealed++
			if out[0].GrantID != b.ID {
				t.Errorf("call %d: revealed under grant %s, want B %s", call, out[0].GrantID, b.ID)
			}
		}
	}
	if revealed != 3 {
		t.Errorf("revealed %d PANs in 6 calls, want B's quota of 3", revealed)
	}
	gb, err := v.GetGrant(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if gb.Used != 3 {
		t.Errorf("grant B used = %d, want 3 (every reveal it authorized)", gb.Used)
	}
	// Rate: B allows 2 a minute; three items in one call exceed it, whichever grant is older.
	v2, _, _, _, pans2 := grantPair(t)
	if _, err := v2.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", Items: pans2}); !errors.Is(err, ErrRateLimited) {
		t.Errorf("3 PANs at once under a 2/min grant: %v, want ErrRateLimited", err)
	}
	_ = a
}

// Naming a grant charges only that grant, and it reveals only what that grant covers; whether a
// call is limited or denied still never depends on whether a token exists.
func TestVendorNamesGrant(t *testing.T) {
	ctx := context.Background()
	v, clk, a, b, pans := grantPair(t)
	ssn, err := v.Tokenize(ctx, []TokenizeItem{{Value: "123-45-6789", Template: "ssn", Domain: "acme"}})
	if err != nil || ssn[0].Err != nil {
		t.Fatal(err, ssn)
	}
	ssnItem := []TokenRef{{Token: ssn[0].Token, Domain: "acme"}}
	// Spend B's quota.
	for i := 0; i < 3; i++ {
		clk.add(time.Minute) // B allows 2 a minute
		out, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", GrantID: b.ID, Items: pans[i : i+1]})
		if err != nil || out[0].Err != nil || out[0].GrantID != b.ID {
			t.Fatalf("reveal %d under B: %+v %v", i, out, err)
		}
	}
	// Naming A: A covers SSNs, so the SSN is revealed and only A is charged ...
	out, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", GrantID: a.ID, Items: ssnItem})
	if err != nil || out[0].Err != nil || out[0].Value != "123-45-6789" || out[0].GrantID != a.ID {
		t.Fatalf("SSN under A: %+v %v", out, err)
	}
	// ... but a PAN named under A is denied: A does not cover PANs, and B is not consulted.
	out, err = v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", GrantID: a.ID, Items: pans[:1]})
	if err != nil || !errors.Is(out[0].Err, ErrPermissionDenied) || out[0].Value != "" {
		t.Fatalf("PAN under A: %+v %v, want per-item permission denied", out, err)
	}
	// Without a grant id every in-scope grant is charged, so spent B binds the whole domain:
	// the answer is the same for a real token and for one that does not exist.
	for _, tok := range []string{pans[0].Token, "4000000000000000", ssn[0].Token} {
		_, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", Items: []TokenRef{{Token: tok, Domain: "acme"}}})
		if !errors.Is(err, ErrQuotaExhausted) {
			t.Errorf("token %q without grant id after B is spent: %v, want ErrQuotaExhausted", tok[:4], err)
		}
	}
	// A grant id of another vendor, or none at all, is a denial of the whole call.
	if _, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "other", Purpose: "p", GrantID: a.ID, Items: ssnItem}); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("another vendor naming A: %v, want ErrPermissionDenied", err)
	}
	if _, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", GrantID: "grant_nope", Items: ssnItem}); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("unknown grant id: %v, want ErrPermissionDenied", err)
	}
	ga, _ := v.GetGrant(ctx, a.ID)
	gb, _ := v.GetGrant(ctx, b.ID)
	if ga.Used != 2 || gb.Used != 3 {
		t.Errorf("used A=%d B=%d, want A=2 (the SSN and the denied PAN asked under it), B=3", ga.Used, gb.Used)
	}
}

// The oracle: with one grant spent, a call is refused the same way for an existing token and for
// a made-up one, and with a rate exceeded likewise.
func TestVendorLimitNoOracle(t *testing.T) {
	ctx := context.Background()
	for _, tok := range []string{"real", "4000000000000000"} {
		v, _, _, _, pans := grantPair(t)
		if tok == "real" {
			tok = pans[0].Token
		}
		items := []TokenRef{{Token: tok, Domain: "acme"}, {Token: tok, Domain: "acme"}, {Token: tok, Domain: "acme"}}
		_, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", Items: items})
		if !errors.Is(err, ErrRateLimited) {
			t.Errorf("three items (%s token) under a 2/min grant: %v, want ErrRateLimited", tok[:4], err)
		}
	}
}

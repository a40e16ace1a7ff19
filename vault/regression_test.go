package vault

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/audit"
)

// The blind index must not hand out a token that has expired (or was erased).
func TestIndexSkipsExpiredToken(t *testing.T) {
	ctx := context.Background()
	v, clk, _ := openClock(t)
	it := TokenizeItem{Value: "ab@example.com", Template: "email", TTL: time.Hour}
	r1, err := v.Tokenize(ctx, []TokenizeItem{it})
	if err != nil || r1[0].Err != nil {
		t.Fatal(err, r1)
	}
	clk.add(2 * time.Hour)
	r2, err := v.Tokenize(ctx, []TokenizeItem{{Value: "ab@example.com", Template: "email"}}) // no TTL now
	if err != nil || r2[0].Err != nil {
		t.Fatal(err, r2)
	}
	got, _ := v.Detokenize(ctx, "p", []TokenRef{{Token: r2[0].Token}})
	if got[0].Err != nil || got[0].Value != "ab@example.com" {
		t.Fatalf("tokenize returned %q after the first token %q expired, but it detokenizes to %q, %v", r2[0].Token, r1[0].Token, got[0].Value, got[0].Err)
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

// Deleting the first events of an export must fail verification.
func TestVerifyDetectsDeletedFirstEvents(t *testing.T) {
	ctx := context.Background()
	v, _, _ := openClock(t)
	for i := 0; i < 5; i++ {
		v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan"}})
	}
	if _, _, err := v.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := v.ExportAudit(ctx, 1, &buf); err != nil {
		t.Fatal(err)
	}
	pub, _ := v.AuditPublicKeyset()
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if rep, err := audit.Verify(strings.NewReader(buf.String()), pub); err != nil {
		t.Fatal(rep, err)
	}
	// Drop events 1..3 (lines 1..3 after header), keep header (claims from_seq 1).
	tampered := lines[0] + "\n" + strings.Join(lines[4:], "\n") + "\n"
	t.Logf("header: %s", lines[0][:60])
	rep, err := audit.Verify(strings.NewReader(tampered), pub)
	if !errors.Is(err, ErrAuditTampered) || rep.BadSeq != 1 {
		t.Fatalf("events 1-3 deleted, verified with the trusted key: %+v, %v", rep, err)
	}
}

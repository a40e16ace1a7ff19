package vault

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// as authenticates secret and returns a context carrying its principal, as the server does.
func as(t *testing.T, v *Vault, secret string) context.Context {
	t.Helper()
	p, err := v.Authenticate(context.Background(), secret)
	if err != nil {
		t.Fatalf("authenticating: %v", err)
	}
	return WithRequest(context.Background(), RequestInfo{Principal: p})
}

// newScoped creates a credential of spec and returns a context authenticated as it.
func newScoped(t *testing.T, v *Vault, spec CredentialSpec) (Credential, context.Context) {
	t.Helper()
	c, secret, err := v.CreateCredential(context.Background(), spec)
	if err != nil {
		t.Fatalf("creating %+v: %v", spec, err)
	}
	return c, as(t, v, secret)
}

// TestCredentialSpecScopeValidation: scopes only for tokenizer and detokenizer, reveal only
// for detokenizer, expiry for every role within bounds; bad input is ErrInvalidArgument (or
// ErrUnknownTemplate) with a message naming the rule.
func TestCredentialSpecScopeValidation(t *testing.T) {
	v, _ := openTest(t)
	ctx := context.Background()
	sc := func(d, tm []string, r Reveal) Scope { return Scope{Domains: d, Templates: tm, Reveal: r} }
	for _, tc := range []struct {
		name string
		spec CredentialSpec
		want error
		msg  string
	}{
		{"unscoped tokenizer", CredentialSpec{Role: RoleTokenizer}, nil, ""},
		{"scoped tokenizer", CredentialSpec{Role: RoleTokenizer, Scope: sc([]string{"a", "b"}, []string{"pan", "email"}, "")}, nil, ""},
		{"masked detokenizer", CredentialSpec{Role: RoleDetokenizer, Scope: sc(nil, []string{"pan"}, RevealMasked)}, nil, ""},
		{"full detokenizer", CredentialSpec{Role: RoleDetokenizer, Scope: sc([]string{"a"}, nil, RevealFull)}, nil, ""},
		{"expiring admin", CredentialSpec{Role: RoleAdmin, Expires: time.Hour}, nil, ""},
		{"expiring vendor", CredentialSpec{Role: RoleVendor, Vendor: "acme", Expires: MaxCredentialLifetime}, nil, ""},
		{"admin with domains", CredentialSpec{Role: RoleAdmin, Scope: sc([]string{"a"}, nil, "")}, ErrInvalidArgument, "only tokenizer and detokenizer"},
		{"auditor with templates", CredentialSpec{Role: RoleAuditor, Scope: sc(nil, []string{"pan"}, "")}, ErrInvalidArgument, "only tokenizer and detokenizer"},
		{"vendor with domains", CredentialSpec{Role: RoleVendor, Vendor: "acme", Scope: sc([]string{"a"}, nil, "")}, ErrInvalidArgument, "only tokenizer and detokenizer"},
		{"tokenizer with reveal", CredentialSpec{Role: RoleTokenizer, Scope: sc(nil, nil, RevealMasked)}, ErrInvalidArgument, "only to detokenizer"},
		{"bad reveal", CredentialSpec{Role: RoleDetokenizer, Scope: sc(nil, nil, "partial")}, ErrInvalidArgument, "full or masked"},
		{"bad domain", CredentialSpec{Role: RoleDetokenizer, Scope: sc([]string{"Acme!"}, nil, "")}, ErrInvalidArgument, "domain names must match"},
		{"unknown template", CredentialSpec{Role: RoleDetokenizer, Scope: sc(nil, []string{"nosuch"}, "")}, ErrUnknownTemplate, "existing templates"},
		{"too many domains", CredentialSpec{Role: RoleTokenizer, Scope: sc(make([]string, MaxScopeEntries+1), nil, "")}, ErrInvalidArgument, "at most"},
		{"negative expiry", CredentialSpec{Role: RoleTokenizer, Expires: -time.Second}, ErrInvalidArgument, "expires must be"},
		{"expiry too long", CredentialSpec{Role: RoleTokenizer, Expires: MaxCredentialLifetime + time.Second}, ErrInvalidArgument, "expires must be"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.Name = "c-" + strings.NewReplacer(" ", "-").Replace(tc.name) // live names are unique
			_, _, err := v.CreateCredential(ctx, tc.spec)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q does not say %q", err, tc.msg)
			}
		})
	}
}

// TestScopeEnforcedInVault: every item path of the vault (Tokenize, Detokenize, the record
// calls, DeleteTokens) denies items outside the caller's scope with ErrOutOfScope, which is a
// permission denial, reads the same for existing and missing tokens, and is audited as a
// count without tokens.
func TestScopeEnforcedInVault(t *testing.T) {
	v, _ := openTest(t)
	ctx := context.Background()
	tok := func(value, tmpl, domain string) string {
		t.Helper()
		res, err := v.Tokenize(ctx, []TokenizeItem{{Value: value, Template: tmpl, Domain: domain}})
		if err != nil || res[0].Err != nil {
			t.Fatalf("tokenize: %v %v", err, res)
		}
		return res[0].Token
	}
	panA := tok("4111111111111111", "pan", "a")
	emailA := tok("jo@example.com", "email", "a")
	panB := tok("5500000000000004", "pan", "b")

	_, tz := newScoped(t, v, CredentialSpec{Name: "tz", Role: RoleTokenizer, Scope: Scope{Domains: []string{"a"}, Templates: []string{"pan"}}})
	_, dz := newScoped(t, v, CredentialSpec{Name: "dz", Role: RoleDetokenizer, Scope: Scope{Domains: []string{"a"}, Templates: []string{"pan"}}})
	_, masked := newScoped(t, v, CredentialSpec{Name: "dm", Role: RoleDetokenizer, Scope: Scope{Domains: []string{"a"}, Reveal: RevealMasked}})
	_, unscoped := newScoped(t, v, CredentialSpec{Name: "du", Role: RoleDetokenizer})

	t.Run("tokenize", func(t *testing.T) {
		res, err := v.Tokenize(tz, []TokenizeItem{
			{Value: "4111111111111111", Template: "pan", Domain: "a"},
			{Value: "4111111111111111", Template: "pan", Domain: "b"},
			{Value: "jo@example.com", Template: "email", Domain: "a"},
			{Value: "not a card", Template: "email", Domain: "b"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err != nil || res[0].Token != panA {
			t.Errorf("in scope: %+v, want %s", res[0], panA)
		}
		for i := 1; i < 4; i++ {
			if !errors.Is(res[i].Err, ErrOutOfScope) || !errors.Is(res[i].Err, ErrPermissionDenied) || res[i].Token != "" {
				t.Errorf("item %d: %+v, want ErrOutOfScope", i, res[i])
			}
		}
	})

	t.Run("detokenize", func(t *testing.T) {
		items := []TokenRef{
			{Token: panA, Domain: "a"},                      // in scope
			{Token: panB, Domain: "b"},                      // other domain, exists
			{Token: "4000000000000002", Domain: "b"},        // other domain, missing
			{Token: emailA, Domain: "a"},                    // other template, exists
			{Token: "nobody@example.com", Domain: "a"},      // missing, no template named
			{Token: emailA, Domain: "a", Template: "email"}, // names another template
			{Token: "4000000000000002", Domain: "a", Template: "pan"},
		}
		res, err := v.Detokenize(dz, "test", items)
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err != nil || res[0].Value != "4111111111111111" {
			t.Errorf("in scope: %+v", res[0])
		}
		for i := 1; i <= 5; i++ {
			if res[i].Err != ErrOutOfScope || res[i].Value != "" {
				t.Errorf("item %d: %+v, want ErrOutOfScope", i, res[i])
			}
		}
		// A missing token of an in-scope template the caller named is plainly not found.
		if !errors.Is(res[6].Err, ErrNotFound) {
			t.Errorf("missing pan in scope: %v, want ErrNotFound", res[6].Err)
		}
		// The unscoped detokenizer sees everything as before.
		res, err = v.Detokenize(unscoped, "test", items[:4])
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err != nil || res[1].Err != nil || !errors.Is(res[2].Err, ErrNotFound) || res[3].Value != "jo@example.com" {
			t.Errorf("unscoped: %+v", res)
		}
	})

	t.Run("masked reveal is the masked grant's", func(t *testing.T) {
		res, err := v.Detokenize(masked, "test", []TokenRef{{Token: panA, Domain: "a"}, {Token: emailA, Domain: "a"}, {Token: panB, Domain: "b"}})
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range []string{"4111111111111111", "jo@example.com"} {
			tm, _ := v.lookupTemplate(context.Background(), res[i].Template)
			if res[i].Err != nil || res[i].Value != tm.Mask(want) || res[i].Value == want {
				t.Errorf("item %d: %+v, want the %s mask %q", i, res[i], res[i].Template, tm.Mask(want))
			}
		}
		if res[0].Value != "************1111" {
			t.Errorf("masked pan %q", res[0].Value)
		}
		if res[2].Err != ErrOutOfScope {
			t.Errorf("other domain: %v", res[2].Err)
		}
	})

	t.Run("records", func(t *testing.T) {
		pol, err := CompilePolicy([]byte(`{"$.card": "pan", "$.mail": "email"}`))
		if err != nil {
			t.Fatal(err)
		}
		docs := []json.RawMessage{json.RawMessage(`{"card":"4111111111111111","mail":"jo@example.com"}`), json.RawMessage(`{"card":"4111111111111111"}`)}
		out, fails, err := v.TokenizeRecords(tz, pol, "a", docs)
		if err != nil {
			t.Fatal(err)
		}
		if len(fails) != 1 || fails[0].Doc != 0 || fails[0].Path != "$.mail" || fails[0].Err != ErrOutOfScope || out[0] != nil {
			t.Errorf("tokenize records: fails %+v, doc 0 %s (withheld wanted)", fails, out[0])
		}
		if !strings.Contains(string(out[1]), panA) {
			t.Errorf("doc 1 %s", out[1])
		}
		in := []json.RawMessage{json.RawMessage(`{"card":"` + panA + `","mail":"` + emailA + `"}`)}
		out, fails, err = v.DetokenizeRecords(dz, pol, "a", "test", in)
		if err != nil {
			t.Fatal(err)
		}
		if len(fails) != 1 || fails[0].Path != "$.mail" || fails[0].Err != ErrOutOfScope {
			t.Errorf("detokenize records: fails %+v", fails)
		}
		if s := string(out[0]); !strings.Contains(s, "4111111111111111") || !strings.Contains(s, emailA) || strings.Contains(s, "jo@example.com") {
			t.Errorf("detokenize records: %s", s)
		}
	})

	t.Run("delete", func(t *testing.T) {
		// DeleteTokens is for admins, whom no scope limits; the vault still checks the
		// caller's scope, so a scoped principal given it by a future policy stays in scope.
		_, errs, err := v.DeleteTokens(dz, []TokenRef{{Token: panB, Domain: "b"}, {Token: emailA, Domain: "a"}, {Token: "missing", Domain: "a"}})
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range errs {
			if e != ErrOutOfScope {
				t.Errorf("item %d: %v, want ErrOutOfScope", i, e)
			}
		}
		res, err := v.Detokenize(unscoped, "test", []TokenRef{{Token: panB, Domain: "b"}, {Token: emailA, Domain: "a"}})
		if err != nil || res[0].Err != nil || res[1].Err != nil {
			t.Errorf("out-of-scope delete erased something: %v %+v", err, res)
		}
	})

	t.Run("audit", func(t *testing.T) {
		evs, _, err := v.ListAudit(ctx, AuditFilter{Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, e := range evs {
			if !strings.Contains(e.Reason, "outside the credential's scope") {
				continue
			}
			seen[e.Method] = true
			if e.Denied == 0 {
				t.Errorf("%s: scope denial without a denied count: %+v", e.Method, e)
			}
			line, _ := json.Marshal(e)
			for _, secret := range []string{"4111111111111111", "5500000000000004", "jo@example.com", panB, emailA} {
				if strings.Contains(string(line), secret) {
					t.Errorf("%s event holds a value or token: %s", e.Method, line)
				}
			}
		}
		for _, m := range []string{"Tokenize", "Detokenize", "DeleteTokens"} {
			if !seen[m] {
				t.Errorf("no audited scope denial for %s", m)
			}
		}
	})
}

// TestCredentialExpiry: an expired credential fails every authentication path exactly like an
// unknown one, shows as expired in the list, cannot be rotated, and rotation keeps expiry and
// scope.
func TestCredentialExpiry(t *testing.T) {
	v, clk, _ := openClock(t)
	ctx := context.Background()
	scope := Scope{Domains: []string{"a"}, Templates: []string{"pan"}, Reveal: RevealMasked}
	c, secret, err := v.CreateCredential(ctx, CredentialSpec{Name: "d", Role: RoleDetokenizer, Scope: scope, Expires: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !c.ExpireTime.Equal(clk.now().Add(2 * time.Hour)) {
		t.Fatalf("expire time %v", c.ExpireTime)
	}
	vc, _, err := v.CreateCredential(ctx, CredentialSpec{Name: "v", Role: RoleVendor, Vendor: "acme", CertSAN: "acme.test", Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.AuthenticateCert(ctx, []string{"acme.test"}); err != nil {
		t.Fatalf("cert before expiry: %v", err)
	}

	// Rotation with an overlap keeps the scope and the expiry.
	clk.add(time.Hour)
	rc, second, err := v.RotateCredential(ctx, c.ID, 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !rc.ExpireTime.Equal(c.ExpireTime) || strings.Join(rc.Domains, ",") != "a" || strings.Join(rc.Templates, ",") != "pan" || rc.Reveal != RevealMasked {
		t.Errorf("rotation changed scope or expiry: %+v", rc)
	}
	p, err := v.Authenticate(ctx, second)
	if err != nil || p.Scope.Reveal != RevealMasked || len(p.Scope.Domains) != 1 {
		t.Fatalf("rotated secret: %+v %v", p, err)
	}
	if _, err := v.Authenticate(ctx, secret); err != nil {
		t.Fatalf("previous secret within its overlap: %v", err)
	}

	_, unknownErr := v.Authenticate(ctx, "tvs_unknown")
	_, unknownCertErr := v.AuthenticateCert(ctx, []string{"nobody.test"})
	clk.add(time.Hour) // now exactly at c's expiry, past the vendor's
	for name, err := range map[string]error{
		"current secret": func() error { _, err := v.Authenticate(ctx, second); return err }(),
		"certificate":    func() error { _, err := v.AuthenticateCert(ctx, []string{"acme.test"}); return err }(),
	} {
		if !errors.Is(err, ErrUnauthenticated) || err.Error() != unknownErr.Error() || err.Error() != unknownCertErr.Error() {
			t.Errorf("%s after expiry: %v, want exactly the unknown credential's %v", name, err, unknownErr)
		}
	}
	list, err := v.ListCredentials(ctx)
	if err != nil {
		t.Fatal(err)
	}
	expired := map[string]bool{}
	for _, l := range list {
		expired[l.ID] = l.Expired
	}
	if !expired[c.ID] || !expired[vc.ID] || expired[RootCredentialID] {
		t.Errorf("expired in list: %v", expired)
	}
	if _, _, err := v.RotateCredential(ctx, c.ID, 0); !errors.Is(err, ErrCredentialState) {
		t.Errorf("rotating an expired credential: %v, want ErrCredentialState", err)
	}
}

// Workload identities (issue 13, parts A and B together): a credential bound to a JWT subject
// or to an internal certificate SAN carries its scope into every call, and stops
// authenticating at its expiry exactly like an unknown identity.
func TestWorkloadIdentityScopeAndExpiry(t *testing.T) {
	v, clk, _ := openClock(t)
	ctx := context.Background()
	scope := Scope{Domains: []string{"a"}, Templates: []string{"pan"}, Reveal: RevealMasked}
	if _, _, err := v.CreateCredential(ctx, CredentialSpec{Name: "jwt", Role: RoleDetokenizer, JWTSubject: "system:serviceaccount:payments:billing", Scope: scope, Expires: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.CreateCredential(ctx, CredentialSpec{Name: "mtls", Role: RoleTokenizer, CertSAN: "spiffe://corp/ns/payments/sa/billing", Scope: Scope{Domains: []string{"a"}}, Expires: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	pj, err := v.AuthenticateJWTSubject(ctx, "system:serviceaccount:payments:billing")
	if err != nil || pj.AuthMethod != AuthJWT || pj.Scope.Reveal != RevealMasked || strings.Join(pj.Scope.Domains, ",") != "a" {
		t.Fatalf("JWT principal = %+v, %v; want its scope", pj, err)
	}
	pc, err := v.AuthenticateCert(ctx, []string{"spiffe://corp/ns/payments/sa/billing"})
	if err != nil || pc.AuthMethod != AuthCert || strings.Join(pc.Scope.Domains, ",") != "a" {
		t.Fatalf("certificate principal = %+v, %v; want its scope", pc, err)
	}
	// The scope binds calls made as these principals.
	res, err := v.Tokenize(WithRequest(ctx, RequestInfo{Principal: pc}), []TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: "b"}})
	if err != nil || !errors.Is(res[0].Err, ErrOutOfScope) {
		t.Errorf("certificate-bound tokenizer outside its domain: %+v, %v", res, err)
	}
	_, unknownJWT := v.AuthenticateJWTSubject(ctx, "system:serviceaccount:nobody:nobody")
	_, unknownCert := v.AuthenticateCert(ctx, []string{"spiffe://corp/ns/nobody/sa/nobody"})
	clk.add(time.Hour)
	if _, err := v.AuthenticateJWTSubject(ctx, "system:serviceaccount:payments:billing"); err == nil || err.Error() != unknownJWT.Error() {
		t.Errorf("expired JWT-bound credential: %v, want %v", err, unknownJWT)
	}
	if _, err := v.AuthenticateCert(ctx, []string{"spiffe://corp/ns/payments/sa/billing"}); err != nil {
		t.Errorf("certificate-bound credential before its expiry: %v", err)
	}
	clk.add(time.Hour)
	if _, err := v.AuthenticateCert(ctx, []string{"spiffe://corp/ns/payments/sa/billing"}); err == nil || err.Error() != unknownCert.Error() {
		t.Errorf("expired certificate-bound credential: %v, want %v", err, unknownCert)
	}
}

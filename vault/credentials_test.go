package vault

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/audit"
	"github.com/tokenvault/tokenvault/vault/store"
)

// hashIndexed reports whether secret's hash is in the credential hash index.
func hashIndexed(t *testing.T, st store.Store, secret string) bool {
	t.Helper()
	var ok bool
	if err := st.View(context.Background(), func(tx store.Tx) error {
		ok = tx.Get(bucketCredHash, hashSecret(secret)) != nil
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ok
}

func authOK(v *Vault, secret string) bool {
	_, err := v.Authenticate(context.Background(), secret)
	return err == nil
}

// TestRotateCredentialOverlap: the previous secret works until the overlap ends, is then
// refused like an unknown one, and the prune removes its index entry with an audit event.
func TestRotateCredentialOverlap(t *testing.T) {
	v, clk, st := openClock(t)
	ctx := context.Background()
	c, first, err := v.CreateCredential(ctx, CredentialSpec{Name: "app", Role: RoleTokenizer})
	if err != nil {
		t.Fatal(err)
	}
	got, second, err := v.RotateCredential(ctx, c.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if second == first || !strings.HasPrefix(second, secretPrefix) {
		t.Fatalf("new secret %q", second)
	}
	if got.Hash != nil || got.PrevHash != nil || !got.PrevExpire.Equal(clk.now().Add(time.Hour)) || !got.RotateTime.Equal(clk.now()) {
		t.Errorf("returned credential %+v", got)
	}
	if !authOK(v, first) || !authOK(v, second) {
		t.Fatal("during the overlap both secrets must authenticate")
	}
	clk.add(time.Hour - time.Second)
	if !authOK(v, first) {
		t.Error("the previous secret stopped a second before the overlap's end")
	}
	clk.add(time.Second)
	if _, err := v.Authenticate(ctx, first); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("previous secret after the overlap: %v, want ErrUnauthenticated", err)
	}
	if !authOK(v, second) {
		t.Error("the new secret stopped working")
	}
	if !hashIndexed(t, st, first) {
		t.Fatal("the expired previous secret left the index before the prune (test premise)")
	}
	n, err := v.PruneRotatedSecrets(ctx)
	if err != nil || n != 1 {
		t.Fatalf("PruneRotatedSecrets = %d, %v; want 1", n, err)
	}
	if hashIndexed(t, st, first) {
		t.Error("the prune left the expired secret's hash in the index")
	}
	if n, _ := v.PruneRotatedSecrets(ctx); n != 0 {
		t.Errorf("a second prune ended %d overlaps", n)
	}
	evs, _, err := v.ListAudit(ctx, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var methods []string
	for _, ev := range evs {
		if ev.Target == c.ID {
			methods = append(methods, ev.Method)
		}
	}
	if strings.Join(methods, ",") != "CreateCredential,RotateCredential,RotationOverlapEnded" {
		t.Errorf("audited %v", methods)
	}
	creds, _ := v.ListCredentials(ctx)
	for _, cr := range creds {
		if cr.ID == c.ID && (cr.PrevHash != nil || !cr.PrevExpire.IsZero()) {
			t.Errorf("after the prune the credential still has a previous secret: %+v", cr)
		}
	}
}

// TestRotateCredentialNoOverlap: without overlap the previous secret is dead at once and gone
// from the index; a second rotation ends an earlier overlap at once.
func TestRotateCredentialNoOverlap(t *testing.T) {
	v, _, st := openClock(t)
	ctx := context.Background()
	c, first, _ := v.CreateCredential(ctx, CredentialSpec{Name: "app", Role: RoleAdmin})
	_, second, err := v.RotateCredential(ctx, c.ID, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, third, err := v.RotateCredential(ctx, c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{first, second} {
		if authOK(v, s) || hashIndexed(t, st, s) {
			t.Error("an earlier secret still authenticates or is indexed after a rotation without overlap")
		}
	}
	if !authOK(v, third) {
		t.Error("the new secret does not authenticate")
	}
	// Revoking during an overlap kills both secrets and empties the index.
	_, fourth, _ := v.RotateCredential(ctx, c.ID, time.Hour)
	if err := v.RevokeCredential(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{third, fourth} {
		if authOK(v, s) || hashIndexed(t, st, s) {
			t.Error("a secret of a revoked credential still authenticates or is indexed")
		}
	}
}

// TestRotateCredentialRefusals covers the limits, the root, revoked and certificate-bound
// credentials; a refusal changes nothing and writes no event.
func TestRotateCredentialRefusals(t *testing.T) {
	v, _, _ := openClock(t)
	ctx := context.Background()
	if err := v.SetRootSecret(ctx, "old-root-secret"); err != nil {
		t.Fatal(err)
	}
	app, appSecret, _ := v.CreateCredential(ctx, CredentialSpec{Name: "app", Role: RoleTokenizer})
	gone, _, _ := v.CreateCredential(ctx, CredentialSpec{Name: "gone", Role: RoleAuditor})
	if err := v.RevokeCredential(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	mtls, _, _ := v.CreateCredential(ctx, CredentialSpec{Name: "mtls", Role: RoleVendor, Vendor: "acme", CertSAN: "vendor.example.com"})
	before, _, _ := v.ListAudit(ctx, AuditFilter{Limit: 1000})
	cases := []struct {
		id      string
		overlap time.Duration
		want    error
		say     string
	}{
		{app.ID, -time.Second, ErrInvalidArgument, "negative"},
		{app.ID, MaxRotationOverlap + time.Second, ErrInvalidArgument, "30 days"},
		{RootCredentialID, time.Minute, ErrInvalidArgument, "without overlap"},
		{gone.ID, 0, ErrCredentialState, "revoked"},
		{mtls.ID, 0, ErrCredentialState, "certificate"},
		{"cred_nope", 0, ErrCredentialNotFound, ""},
	}
	for _, tc := range cases {
		_, s, err := v.RotateCredential(ctx, tc.id, tc.overlap)
		if !errors.Is(err, tc.want) || s != "" || !strings.Contains(err.Error(), tc.say) {
			t.Errorf("RotateCredential(%s, %v) = %q, %v; want %v mentioning %q", tc.id, tc.overlap, s, err, tc.want, tc.say)
		}
	}
	if after, _, _ := v.ListAudit(ctx, AuditFilter{Limit: 1000}); len(after) != len(before) || len(before) == 0 {
		t.Errorf("refused rotations wrote audit events (%d → %d)", len(before), len(after))
	}
	if !authOK(v, "old-root-secret") || !authOK(v, appSecret) {
		t.Error("a refused rotation changed a secret")
	}
	// At the limit it works; the root without overlap works and the old root is dead at once.
	if _, _, err := v.RotateCredential(ctx, app.ID, MaxRotationOverlap); err != nil {
		t.Errorf("rotation with the longest overlap: %v", err)
	}
	_, root, err := v.RotateCredential(ctx, RootCredentialID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if authOK(v, "old-root-secret") || !authOK(v, root) {
		t.Error("rotate root: the old root secret still works, or the new one does not")
	}
}

// TestRotateAuditHasNoSecret: the rotation's event names the credential, and neither the new
// nor the previous secret (nor their hashes) appears in the trail.
func TestRotateAuditHasNoSecret(t *testing.T) {
	v, _, _ := openClock(t)
	ctx := context.Background()
	c, first, _ := v.CreateCredential(ctx, CredentialSpec{Name: "app", Role: RoleTokenizer})
	_, second, err := v.RotateCredential(WithRequest(ctx, RequestInfo{Principal: Principal{ID: BreakGlassActor}}), c.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := v.ExportAudit(ctx, 0, &buf); err != nil {
		t.Fatal(err)
	}
	trail := buf.String()
	for _, s := range []string{first, second, string(hashSecret(first)), string(hashSecret(second))} {
		if strings.Contains(trail, s) {
			t.Error("the audit trail holds a secret or its hash")
		}
	}
	if !strings.Contains(trail, `"credential_id":"break-glass (offline)"`) || !strings.Contains(trail, `"method":"RotateCredential"`) || !strings.Contains(trail, `"target":"`+c.ID+`"`) {
		t.Errorf("the rotation's event lacks its actor, method or target:\n%s", trail)
	}
}

// TestRootExists: RootExists needs no KEK and tells an initialised store from a new one.
func TestRootExists(t *testing.T) {
	v, st := openTest(t)
	ctx := context.Background()
	if ok, err := RootExists(ctx, st); err != nil || ok {
		t.Fatalf("RootExists on a new vault = %v, %v", ok, err)
	}
	if _, err := v.InitRoot(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := RootExists(ctx, st); err != nil || !ok {
		t.Fatalf("RootExists after InitRoot = %v, %v", ok, err)
	}
}

// TestCredentialJWTSubject: a credential bound to a JWT subject has no secret, authenticates
// by its subject until revoked, holds the subject alone while live, and frees it on
// revocation without a later revocation unbinding the next holder. Events written on its
// behalf name the method and the subject.
func TestCredentialJWTSubject(t *testing.T) {
	v, _, st := openClock(t)
	ctx := context.Background()
	const sub = "system:serviceaccount:payments:billing"
	c, secret, err := v.CreateCredential(ctx, CredentialSpec{Name: "billing", Role: RoleTokenizer, JWTSubject: sub})
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" || c.JWTSubject != sub {
		t.Fatalf("created %+v with secret %q; want the subject and no secret", c, secret)
	}
	p, err := v.AuthenticateJWTSubject(ctx, sub)
	if err != nil || p.ID != c.ID || p.Role != RoleTokenizer || p.AuthMethod != AuthJWT || p.AuthSubject() != sub {
		t.Fatalf("AuthenticateJWTSubject = %+v, %v", p, err)
	}
	for _, other := range []string{"", "system:serviceaccount:payments:other", sub + " ", strings.ToUpper(sub)} {
		if _, err := v.AuthenticateJWTSubject(ctx, other); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("subject %q: %v, want ErrUnauthenticated", other, err)
		}
	}
	// No secret: an empty one, or the empty hash, never matches.
	if authOK(v, "") || hashIndexed(t, st, "") {
		t.Error("a JWT-bound credential has a usable empty secret")
	}
	if _, _, err := v.CreateCredential(ctx, CredentialSpec{Name: "dup", Role: RoleAuditor, JWTSubject: sub}); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("second live credential for the subject: %v, want ErrInvalidArgument", err)
	}
	if _, _, err := v.RotateCredential(ctx, c.ID, 0); !errors.Is(err, ErrCredentialState) {
		t.Errorf("rotating a JWT-bound credential: %v, want ErrCredentialState", err)
	}
	// Acting as it, the audit actor names the method and subject.
	actx := WithRequest(ctx, RequestInfo{Method: "Test", Principal: p})
	if err := v.AuditDenial(actx, "test"); err != nil {
		t.Fatal(err)
	}
	evs, _, _ := v.ListAudit(ctx, AuditFilter{Method: "Test"})
	if len(evs) != 1 || evs[0].Actor.AuthMethod != "jwt" || evs[0].Actor.AuthSubject != sub || evs[0].Actor.CredentialID != c.ID {
		t.Errorf("audit actor %+v", evs)
	}
	// The new fields are covered by the chain: the export verifies, and an edited subject
	// does not.
	if _, _, err := v.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	var export bytes.Buffer
	if err := v.ExportAudit(ctx, 1, &export); err != nil {
		t.Fatal(err)
	}
	if rep, err := audit.Verify(bytes.NewReader(export.Bytes()), audit.Options{}); err != nil || !rep.OK() {
		t.Fatalf("export with auth_method/auth_subject: %+v, %v", rep, err)
	}
	forged := bytes.Replace(export.Bytes(), []byte(`"auth_subject":"`+sub), []byte(`"auth_subject":"system:serviceaccount:x:y`), 1)
	if bytes.Equal(forged, export.Bytes()) {
		t.Fatal("the export holds no auth_subject")
	}
	if rep, err := audit.Verify(bytes.NewReader(forged), audit.Options{}); err == nil && rep.OK() {
		t.Error("an edited auth_subject verifies")
	}

	if err := v.RevokeCredential(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := v.AuthenticateJWTSubject(ctx, sub); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked: %v, want ErrUnauthenticated", err)
	}
	next, _, err := v.CreateCredential(ctx, CredentialSpec{Name: "billing2", Role: RoleDetokenizer, JWTSubject: sub})
	if err != nil {
		t.Fatalf("the subject of a revoked credential is free again: %v", err)
	}
	if err := v.RevokeCredential(ctx, c.ID); err != nil { // again: must not unbind next
		t.Fatal(err)
	}
	if p, err := v.AuthenticateJWTSubject(ctx, sub); err != nil || p.ID != next.ID {
		t.Errorf("after revoking the old credential again: %+v, %v; want %s", p, err, next.ID)
	}
}

// TestCredentialSpecIdentities: which roles and values may be bound to a JWT subject or a
// certificate SAN.
func TestCredentialSpecIdentities(t *testing.T) {
	v, _, _ := openClock(t)
	ctx := context.Background()
	bad := []CredentialSpec{
		{Name: "v", Role: RoleVendor, Vendor: "acme", JWTSubject: "sub"},
		{Name: "both", Role: RoleTokenizer, JWTSubject: "sub", CertSAN: "a.example"},
		{Name: "space", Role: RoleTokenizer, JWTSubject: "a b"},
		{Name: "ctl", Role: RoleTokenizer, JWTSubject: "a\x00b"},
		{Name: "long", Role: RoleTokenizer, JWTSubject: strings.Repeat("a", MaxIdentityLen+1)},
		{Name: "sanspace", Role: RoleTokenizer, CertSAN: "a b"},
	}
	for _, spec := range bad {
		if _, _, err := v.CreateCredential(ctx, spec); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("CreateCredential(%+v) = %v, want ErrInvalidArgument", spec, err)
		}
	}
	// Internal roles may now be bound to a certificate (a SPIFFE ID, say).
	const spiffe = "spiffe://corp/ns/payments/sa/billing"
	c, secret, err := v.CreateCredential(ctx, CredentialSpec{Name: "billing", Role: RoleDetokenizer, CertSAN: spiffe})
	if err != nil || secret == "" {
		t.Fatalf("detokenizer bound to a SPIFFE ID: %v", err)
	}
	p, err := v.AuthenticateCert(ctx, []string{"other.example", spiffe})
	if err != nil || p.ID != c.ID || p.AuthMethod != AuthCert || p.AuthSubject() != spiffe {
		t.Errorf("AuthenticateCert = %+v, %v", p, err)
	}
	if p, err := v.Authenticate(ctx, secret); err != nil || p.AuthMethod != AuthSecret || p.AuthSubject() != "" {
		t.Errorf("Authenticate = %+v, %v", p, err)
	}
}

// Issue 14: duplicate credential names were accepted silently. A live credential's name is
// now unique (names are how people tell credentials apart in lists and audit reasons); a
// revoked credential frees its name.
func TestCredentialNamesUniqueWhileLive(t *testing.T) {
	v, _ := openTest(t)
	ctx := context.Background()
	first, _, err := v.CreateCredential(ctx, CredentialSpec{Name: "billing", Role: RoleTokenizer})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.CreateCredential(ctx, CredentialSpec{Name: "billing", Role: RoleDetokenizer}); !errors.Is(err, ErrCredentialExists) || !strings.Contains(err.Error(), "revoke that one first") {
		t.Fatalf("second live credential named billing: %v, want ErrCredentialExists", err)
	}
	if _, _, err := v.CreateCredential(ctx, CredentialSpec{Name: "root", Role: RoleAdmin}); err != nil {
		t.Fatalf("no root credential here (no InitRoot), so the name is free: %v", err)
	}
	if err := v.RevokeCredential(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.CreateCredential(ctx, CredentialSpec{Name: "billing", Role: RoleTokenizer}); err != nil {
		t.Fatalf("after revoking the first: %v", err)
	}
}

package keyring

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tokenvault/tokenvault/internal/testkek"
)

func TestWrapUnwrapRoundTrip(t *testing.T) {
	kek := testkek.New(t)
	k, err := New()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := k.Wrap(kek)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := Unwrap(blob, kek)
	if err != nil {
		t.Fatalf("Unwrap: %v", err)
	}
	ct, err := k.Seal([]byte("4111111111111111"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := k2.Open(ct, []byte("ad"))
	if err != nil || string(pt) != "4111111111111111" {
		t.Fatalf("Open after unwrap = %q, %v", pt, err)
	}
	d1, _ := k.Derive("ff1", "acme", "pan")
	d2, _ := k2.Derive("ff1", "acme", "pan")
	if !bytes.Equal(d1, d2) {
		t.Fatal("derived keys differ after unwrap: tokens would change")
	}
	if bytes.Contains(blob, d1) {
		t.Fatal("wrapped blob contains derived key bytes")
	}
}

func TestUnwrapWrongKEK(t *testing.T) {
	k, _ := New()
	blob, err := k.Wrap(testkek.New(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unwrap(blob, testkek.New(t)); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("Unwrap with wrong KEK = %v, want ErrUnwrap", err)
	}
	if _, err := Unwrap([]byte("garbage"), testkek.New(t)); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("Unwrap(garbage) = %v, want ErrUnwrap", err)
	}
}

func TestOpenBindsAssociatedData(t *testing.T) {
	k, _ := New()
	ct, _ := k.Seal([]byte("secret"), []byte("acme/pan/tok1"))
	if _, err := k.Open(ct, []byte("acme/pan/tok2")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open with other AD = %v, want ErrDecrypt", err)
	}
	ct[len(ct)-1] ^= 1
	if _, err := k.Open(ct, []byte("acme/pan/tok1")); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("Open tampered = %v, want ErrDecrypt", err)
	}
}

func TestDeriveSeparatesInputs(t *testing.T) {
	k, _ := New()
	seen := map[string]string{}
	for _, in := range [][]string{
		{"ff1", "acme", "pan"}, {"ff1", "acm", "epan"}, {"ff1", "acme", "pan", ""},
		{"index", "acme", "pan"}, {"ff1", "other", "pan"},
	} {
		d, err := k.Derive(in[0], in[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		if len(d) != 32 {
			t.Fatalf("Derive len = %d", len(d))
		}
		if prev, ok := seen[string(d)]; ok {
			t.Fatalf("Derive(%q) equals Derive(%s)", in, prev)
		}
		seen[string(d)] = string(rune(len(seen)))
	}
}

func TestAuditSignatures(t *testing.T) {
	k, _ := New()
	sig, err := k.Sign([]byte("checkpoint 7"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.AuditPublicKeyset()
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(sig, []byte("checkpoint 7")); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	if err := v.Verify(sig, []byte("checkpoint 8")); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify(other data) = %v", err)
	}
	// The signing key survives wrapping.
	kek := testkek.New(t)
	blob, _ := k.Wrap(kek)
	k2, err := Unwrap(blob, kek)
	if err != nil {
		t.Fatal(err)
	}
	sig2, _ := k2.Sign([]byte("x"))
	if err := v.Verify(sig2, []byte("x")); err != nil {
		t.Fatalf("signature after unwrap does not verify with the old public key: %v", err)
	}
}

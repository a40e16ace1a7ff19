package server

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// TestLooksLikeJWT: tokenvault secrets are never read as JWTs; three base64url segments are.
func TestLooksLikeJWT(t *testing.T) {
	for s, want := range map[string]bool{
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln": true,
		"a.b.c":                          true,
		"tvs_eyJh.eyJz.c2ln":             false, // a secret, whatever follows
		"tvs_AAAAAAAAAAAAAAAAAAAAAAAAAA": false,
		"test-root-secret-0123456789":    false,
		"a.b.":                           false,
		"a..c":                           false,
		"a.b.c.d":                        false,
		"a.b+c.d":                        false,
		"a.b=.c":                         false,
		"a b.c.d":                        false,
	} {
		if got := looksLikeJWT(s); got != want {
			t.Errorf("looksLikeJWT(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestParseJWKS: only public signature keys of the accepted types are kept; private keys are
// reduced to their public half; symmetric, encryption and unknown keys are dropped; a key id
// used twice, or a set with no usable key, is refused. keyFits then matches key and algorithm.
func TestParseJWKS(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	smallRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	raw := func(keys ...jose.JSONWebKey) []byte {
		var out struct {
			Keys []json.RawMessage `json:"keys"`
		}
		for _, k := range keys {
			b, err := k.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			out.Keys = append(out.Keys, b)
		}
		out.Keys = append(out.Keys, json.RawMessage(`{"kty":"oct","k":"c2VjcmV0","kid":"hmac"}`), json.RawMessage(`{"kty":"XYZ","kid":"future"}`))
		b, _ := json.Marshal(out)
		return b
	}
	keys, err := parseJWKS(raw(
		jose.JSONWebKey{Key: rsaKey, KeyID: "rsa-private"}, // the private half is dropped
		jose.JSONWebKey{Key: &ecKey.PublicKey, KeyID: "ec", Use: "sig"},
		jose.JSONWebKey{Key: edPub, KeyID: "ed", Algorithm: "EdDSA"},
		jose.JSONWebKey{Key: &rsaKey.PublicKey, KeyID: "enc", Use: "enc"},
		jose.JSONWebKey{Key: &smallRSA.PublicKey, KeyID: "small"},
		jose.JSONWebKey{Key: &p384.PublicKey, KeyID: "p384"},
	))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := keys["hmac"]; ok || len(keys) != 5 {
		t.Fatalf("kept %d keys: %v", len(keys), keys)
	}
	if _, ok := keys["rsa-private"].Key.(*rsa.PublicKey); !ok {
		t.Errorf("a private key kept as %T", keys["rsa-private"].Key)
	}
	if _, ok := keys["enc"]; ok {
		t.Error("an encryption key was kept")
	}
	fits := []struct {
		kid, alg string
		want     bool
	}{
		{"rsa-private", "RS256", true}, {"rsa-private", "ES256", false}, {"rsa-private", "HS256", false},
		{"ec", "ES256", true}, {"ec", "RS256", false},
		{"ed", "EdDSA", true}, {"ed", "ES256", false},
		{"small", "RS256", false}, {"p384", "ES256", false},
	}
	for _, f := range fits {
		if got := keyFits(keys[f.kid], f.alg); got != f.want {
			t.Errorf("keyFits(%s, %s) = %v, want %v", f.kid, f.alg, got, f.want)
		}
	}
	if _, err := parseJWKS(raw(jose.JSONWebKey{Key: edPub, KeyID: "x"}, jose.JSONWebKey{Key: &ecKey.PublicKey, KeyID: "x"})); err == nil {
		t.Error("two keys with one key id accepted")
	}
	for _, bad := range []string{`{}`, `[]`, `{"keys":[]}`, `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`} {
		if _, err := parseJWKS([]byte(bad)); err == nil {
			t.Errorf("parseJWKS(%s) accepted", bad)
		}
	}
}

package vault

import (
	"context"
	"testing"
)

// BenchmarkAuthenticate: one bearer-secret authentication of a known credential, as every
// call does (twice for an HTTP request with a body). With the verified-credential cache it is
// a SHA-256, a map lookup and the checks; without, also a bbolt read and a JSON decode.
func BenchmarkAuthenticate(b *testing.B) {
	v, _ := openTest(b)
	ctx := context.Background()
	_, secret, err := v.CreateCredential(ctx, CredentialSpec{Name: "app", Role: RoleTokenizer, Scope: Scope{Domains: []string{"default", "acme"}}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Authenticate(ctx, secret); err != nil {
			b.Fatal(err)
		}
	}
}

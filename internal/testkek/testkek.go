// Package testkek gives tests a key-encryption key: a fresh in-memory Tink AES-256-GCM AEAD,
// as the product's KEKs are. It is for _test files only; it lives under internal so that it
// is no part of the module's API, and it imports nothing of tokenvault, so that the crypto
// packages' own tests can use it as well as the vault's.
package testkek

import (
	"testing"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// New returns a new KEK, or fails tb.
func New(tb testing.TB) tink.AEAD {
	tb.Helper()
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		tb.Fatal(err)
	}
	a, err := aead.New(h)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

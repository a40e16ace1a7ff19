package kek

import (
	"context"
	"errors"
	"testing"

	"github.com/tink-crypto/tink-go/v2/testing/fakekms"
)

func TestOpenWithFakeKMS(t *testing.T) {
	uri, err := fakekms.NewKeyURI()
	if err != nil {
		t.Fatal(err)
	}
	client, err := fakekms.NewClient("fake-kms://")
	if err != nil {
		t.Fatal(err)
	}
	a, err := Open(context.Background(), uri, WithClient(client))
	if err != nil {
		t.Fatalf("Open(fake) = %v", err)
	}
	ct, _ := a.Encrypt([]byte("x"), nil)
	// The same URI gives the same key: a restarted server can unwrap.
	b, err := Open(context.Background(), uri, WithClient(client))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := b.Decrypt(ct, nil); err != nil || string(pt) != "x" {
		t.Fatalf("second Open cannot decrypt: %v", err)
	}
}

func TestOpenRejectsUnknownScheme(t *testing.T) {
	if _, err := Open(context.Background(), "file:///etc/passwd"); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Open(file://) = %v", err)
	}
}

package keyring

import (
	"errors"
	"testing"

	"github.com/tokenvault/tokenvault/internal/testkek"
)

func TestRotateDisableDestroy(t *testing.T) {
	k, _ := New()
	first := k.PrimaryKeyID()
	old, _ := k.Seal([]byte("old value"), []byte("ad"))
	if id, ok := CiphertextKeyID(old); !ok || id != first {
		t.Fatalf("CiphertextKeyID = %d, %v; want %d", id, ok, first)
	}
	d1, _ := k.Derive("ff1", "acme", "pan")
	second, err := k.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if k.PrimaryKeyID() != second || second == first {
		t.Fatalf("primary after rotate = %d, want new key %d", k.PrimaryKeyID(), second)
	}
	fresh, _ := k.Seal([]byte("new value"), []byte("ad"))
	if id, _ := CiphertextKeyID(fresh); id != second {
		t.Errorf("new ciphertext made by key %d, want %d", id, second)
	}
	if pt, err := k.Open(old, []byte("ad")); err != nil || string(pt) != "old value" {
		t.Fatalf("old record after rotate: %q, %v", pt, err)
	}
	if d2, _ := k.Derive("ff1", "acme", "pan"); string(d1) != string(d2) {
		t.Fatal("rotation changed a token key")
	}
	if err := k.Disable(second); !errors.Is(err, ErrPrimaryKey) {
		t.Errorf("Disable(primary) = %v", err)
	}
	if err := k.Destroy(first); !errors.Is(err, ErrKeyEnabled) {
		t.Errorf("Destroy(enabled) = %v", err)
	}
	if err := k.Disable(first); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open(old, []byte("ad")); !errors.Is(err, ErrDecrypt) {
		t.Errorf("Open with a disabled key = %v", err)
	}
	if err := k.Enable(first); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Open(old, []byte("ad")); err != nil {
		t.Errorf("Open after re-enable = %v", err)
	}
	_ = k.Disable(first)
	if err := k.Destroy(first); err != nil {
		t.Fatal(err)
	}
	if len(k.DataKeys()) != 1 {
		t.Errorf("keys after destroy = %+v", k.DataKeys())
	}
	// The state survives wrapping.
	kek := testkek.New(t)
	blob, _ := k.Wrap(kek)
	k2, err := Unwrap(blob, kek)
	if err != nil {
		t.Fatal(err)
	}
	if k2.PrimaryKeyID() != second {
		t.Errorf("primary after unwrap = %d", k2.PrimaryKeyID())
	}
	if pt, err := k2.Open(fresh, []byte("ad")); err != nil || string(pt) != "new value" {
		t.Errorf("Open after unwrap: %q %v", pt, err)
	}
}

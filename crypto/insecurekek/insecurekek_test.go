package insecurekek

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOrCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "kek.json")
	kek, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreate new = %v, %v", created, err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, want 0600", info.Mode().Perm())
	}
	ct, err := kek.Encrypt([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	kek2, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("LoadOrCreate existing = %v, %v", created, err)
	}
	if pt, err := kek2.Decrypt(ct, nil); err != nil || string(pt) != "x" {
		t.Fatalf("reloaded KEK cannot decrypt: %v", err)
	}
}

func TestRefusesLoosePermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.json")
	if _, _, err := LoadOrCreate(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(path); !errors.Is(err, ErrPermissions) {
		t.Fatalf("LoadOrCreate(0644) = %v, want ErrPermissions", err)
	}
}

func TestRefusesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.json")
	if err := os.WriteFile(path, []byte("{not a keyset"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(path); !errors.Is(err, ErrInvalid) {
		t.Fatalf("LoadOrCreate(garbage) = %v, want ErrInvalid", err)
	}
}

package insecurekek

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Load (an existing vault's KEK) checks the permissions too, not only LoadOrCreate, and the
// error names the file and the fix. Group read is refused as well (docs/configuration.md).
func TestLoadRefusesLoosePermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek.json")
	if _, _, err := LoadOrCreate(path); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if !errors.Is(err, ErrPermissions) {
			t.Fatalf("Load(%04o) = %v, want ErrPermissions", mode, err)
		}
		if !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("Load(%04o) error %q does not say how to fix it", mode, err)
		}
		if _, _, err := LoadOrCreate(path); !errors.Is(err, ErrPermissions) {
			t.Fatalf("LoadOrCreate(%04o) = %v, want ErrPermissions", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path); err != nil {
			t.Fatalf("Load(%04o) = %v", mode, err)
		}
	}
}

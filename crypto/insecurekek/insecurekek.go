// Package insecurekek loads or creates a key-encryption key (KEK) stored as a cleartext Tink
// keyset in a local file.
//
// # Basics
//
// [LoadOrCreate] returns a [tink.AEAD] that the keyring uses to wrap the vault's data keys. The
// file is created with mode 0600 on first use and holds one AES-256-GCM key in Tink's JSON
// keyset format.
//
// # Caveats
//
// Anyone who can read the file and the store can decrypt every original: the protection is
// the file's permissions. Use a KMS KEK in production. This package's name is deliberately
// alarming, so that one grep finds every place that relies on a cleartext KEK.
package insecurekek

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// ErrPermissions is returned (wrapped, with the path, its mode and the chmod that fixes it)
// when the group or others have any access to the KEK file: it must be 0600 (or 0400). Both
// [Load] and [LoadOrCreate] check it, on every start. (Kubernetes Secret volumes with an
// fsGroup are group-readable: copy the KEK out of them with install -m 0600, as
// deploy/kubernetes does.)
var ErrPermissions = errors.New("insecurekek: the KEK file must not be readable or writable by group or others")

// CheckPermissions returns an error wrapping [ErrPermissions] when the group or others have
// any access to the file at path (following symbolic links). The message says how to fix it.
func CheckPermissions(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("insecurekek: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o; fix it with: chmod 600 %s", ErrPermissions, path, perm, path)
	}
	return nil
}

// ErrInvalid is returned when the KEK file exists but does not hold a usable AEAD keyset.
var ErrInvalid = errors.New("insecurekek: KEK file is not a valid Tink AEAD keyset")

// LoadOrCreate reads the KEK keyset at path, creating it (and its directory, 0700) if it does
// not exist. created reports whether a new key was generated.
func LoadOrCreate(path string) (kek tink.AEAD, created bool, err error) {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		kek, err := create(path)
		return kek, err == nil, err
	case err != nil:
		return nil, false, fmt.Errorf("insecurekek: reading KEK file: %w", err)
	}
	if err := CheckPermissions(path); err != nil {
		return nil, false, err
	}
	kek, err = parse(data)
	return kek, false, err
}

// Load reads an existing KEK keyset; it never creates one. Like LoadOrCreate it refuses a
// file the group or others can access ([ErrPermissions]).
func Load(path string) (tink.AEAD, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("insecurekek: reading KEK file: %w", err)
	}
	if err := CheckPermissions(path); err != nil {
		return nil, err
	}
	return parse(data)
}

func parse(data []byte) (tink.AEAD, error) {
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(data)))
	if err != nil {
		return nil, ErrInvalid
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, ErrInvalid
	}
	return a, nil
}

func create(path string) (tink.AEAD, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("insecurekek: %w", err)
	}
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("insecurekek: generating KEK: %w", err)
	}
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
		return nil, fmt.Errorf("insecurekek: encoding KEK: %w", err)
	}
	// Write a temporary file, fsync it, then link it into place (failing if a KEK appeared
	// meanwhile: losing it loses every record), and fsync the directory, so a crash leaves
	// either no KEK or a whole one, never an empty file.
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".kek-*.tmp")
	if err != nil {
		return nil, fmt.Errorf("insecurekek: creating KEK file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("insecurekek: %w", err)
	}
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("insecurekek: writing KEK file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("insecurekek: syncing KEK file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("insecurekek: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("insecurekek: creating KEK file: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return nil, fmt.Errorf("insecurekek: syncing KEK directory: %w", err)
		}
	}
	return aead.New(h)
}

package keyring

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
)

// KeyState is the state of one data key.
type KeyState string

// Key states. A destroyed key is gone from the keyset; the vault remembers it in its key
// metadata only.
const (
	KeyPrimary  KeyState = "primary"  // encrypts new records
	KeyEnabled  KeyState = "enabled"  // decrypts old records
	KeyDisabled KeyState = "disabled" // kept, but decrypts nothing
)

// DataKey describes one key of the data keyset (never its material).
type DataKey struct {
	ID    uint32
	State KeyState
}

// Errors of key management.
var (
	// ErrUnknownKey is returned for a key id that is not in the data keyset.
	ErrUnknownKey = errors.New("keyring: no such data key")
	// ErrPrimaryKey is returned when asked to disable or destroy the primary key.
	ErrPrimaryKey = errors.New("keyring: the primary key cannot be disabled or destroyed; rotate first")
	// ErrKeyEnabled is returned when asked to destroy a key that is not disabled first.
	ErrKeyEnabled = errors.New("keyring: only a disabled key can be destroyed")
)

// DataKeys lists the data keys.
func (k *Keyring) DataKeys() []DataKey {
	info := k.data.Load().handle.KeysetInfo()
	var out []DataKey
	for _, ki := range info.GetKeyInfo() {
		st := KeyEnabled
		switch {
		case ki.GetKeyId() == info.GetPrimaryKeyId():
			st = KeyPrimary
		case ki.GetStatus().String() != "ENABLED":
			st = KeyDisabled
		}
		out = append(out, DataKey{ID: ki.GetKeyId(), State: st})
	}
	return out
}

// PrimaryKeyID returns the id of the key that encrypts new records.
func (k *Keyring) PrimaryKeyID() uint32 {
	return k.data.Load().handle.KeysetInfo().GetPrimaryKeyId()
}

// CiphertextKeyID returns the id of the data key that made ciphertext, read from Tink's
// 5-byte output prefix (0x01 and the big-endian key id).
func CiphertextKeyID(ciphertext []byte) (uint32, bool) {
	if len(ciphertext) < 5 || ciphertext[0] != 0x01 {
		return 0, false
	}
	return binary.BigEndian.Uint32(ciphertext[1:5]), true
}

// change applies f to a manager over the current data keyset and swaps the result in.
func (k *Keyring) change(f func(*keyset.Manager) error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	m := keyset.NewManagerFromHandle(k.data.Load().handle)
	if err := f(m); err != nil {
		return err
	}
	h, err := m.Handle()
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	dk, err := newDataKeys(h)
	if err != nil {
		return err
	}
	k.data.Store(dk)
	return nil
}

// Rotate adds a fresh AES-256-GCM data key and makes it primary: new records use it at once,
// old records still decrypt with their keys. It returns the new key's id. Token keys are not
// touched, so no token changes.
func (k *Keyring) Rotate() (uint32, error) {
	var id uint32
	err := k.change(func(m *keyset.Manager) error {
		var err error
		if id, err = m.Add(aead.AES256GCMKeyTemplate()); err != nil {
			return fmt.Errorf("keyring: adding a data key: %w", err)
		}
		return m.SetPrimary(id)
	})
	return id, err
}

func (k *Keyring) find(id uint32) (DataKey, error) {
	for _, dk := range k.DataKeys() {
		if dk.ID == id {
			return dk, nil
		}
	}
	return DataKey{}, ErrUnknownKey
}

// Disable stops a non-primary key from decrypting. The caller checks that no record needs it.
func (k *Keyring) Disable(id uint32) error {
	dk, err := k.find(id)
	if err != nil {
		return err
	}
	if dk.State == KeyPrimary {
		return ErrPrimaryKey
	}
	return k.change(func(m *keyset.Manager) error { return m.Disable(id) })
}

// Enable re-enables a disabled key.
func (k *Keyring) Enable(id uint32) error {
	if _, err := k.find(id); err != nil {
		return err
	}
	return k.change(func(m *keyset.Manager) error { return m.Enable(id) })
}

// Destroy removes a disabled key's material from the keyset for good.
func (k *Keyring) Destroy(id uint32) error {
	dk, err := k.find(id)
	if err != nil {
		return err
	}
	switch dk.State {
	case KeyPrimary:
		return ErrPrimaryKey
	case KeyEnabled:
		return ErrKeyEnabled
	}
	return k.change(func(m *keyset.Manager) error { return m.Delete(id) })
}

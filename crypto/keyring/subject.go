package keyring

import (
	"bytes"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
	"github.com/tink-crypto/tink-go/v2/tink"
	"google.golang.org/protobuf/proto"
)

// Subject keys make erasure by data subject a crypto-shredding: each subject's originals are
// encrypted under a key of its own (a Tink AES-256-GCM keyset), stored only wrapped by the data
// AEAD. Deleting the wrapped key makes every copy of those ciphertexts unreadable, including
// copies in old backups once the erasure is re-applied to them.

func subjectAD(id []byte) []byte { return append([]byte("tokenvault/subject-key/v1/"), id...) }

// NewSubjectKey generates a subject key bound to id and returns it wrapped for storage, with
// its AEAD.
func (k *Keyring) NewSubjectKey(id []byte) ([]byte, tink.AEAD, error) {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, nil, fmt.Errorf("keyring: generating a subject key: %w", err)
	}
	var b bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&b), k.data.Load().aead, subjectAD(id)); err != nil {
		return nil, nil, fmt.Errorf("keyring: wrapping a subject key: %w", err)
	}
	a, err := aead.New(h)
	if err != nil {
		return nil, nil, err
	}
	return b.Bytes(), a, nil
}

// OpenSubjectKey unwraps a subject key made by NewSubjectKey for the same id.
func (k *Keyring) OpenSubjectKey(id, wrapped []byte) (tink.AEAD, error) {
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), k.data.Load().aead, subjectAD(id))
	if err != nil {
		return nil, ErrDecrypt
	}
	return aead.New(h)
}

// RewrapSubjectKey re-wraps a subject key under the primary data key (for the rewrap after a
// rotation). It returns the new wrapped form and the data key that wrapped the old one.
func (k *Keyring) RewrapSubjectKey(id, wrapped []byte) ([]byte, error) {
	dk := k.data.Load()
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), dk.aead, subjectAD(id))
	if err != nil {
		return nil, ErrDecrypt
	}
	var b bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&b), dk.aead, subjectAD(id)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// SubjectKeyWrapID returns the id of the data key that wrapped a subject key.
func SubjectKeyWrapID(wrapped []byte) (uint32, bool) {
	var ek tinkpb.EncryptedKeyset
	if proto.Unmarshal(wrapped, &ek) != nil {
		return 0, false
	}
	return CiphertextKeyID(ek.GetEncryptedKeyset())
}

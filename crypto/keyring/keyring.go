// Package keyring holds the vault's data keys and keeps them wrapped under a key-encryption
// key (KEK).
//
// # Basics
//
// A [Keyring] has two Tink keysets:
//
//   - the data keyset (AES-256-GCM), which encrypts originals. Its ciphertexts carry Tink's
//     5-byte output prefix naming the key, so a later rotation can add a primary key while old
//     records still decrypt.
//   - the audit keyset (Ed25519), which signs audit checkpoints; its public half is published
//     with [Keyring.AuditPublicKeyset] so anyone can verify them offline with [NewVerifier].
//   - the token keyset (HMAC-SHA256 PRF), from which every token key is derived with
//     [Keyring.Derive]: one FF1 key per domain, template, alphabet and length, one blind-index
//     key per domain and template. Its primary key never changes, which is why tokens never
//     change when data keys rotate.
//
// [Keyring.Wrap] encrypts both keysets under the KEK for storage; [Unwrap] reverses it.
//
// # Caveats
//
// Key bytes never leave Tink except the derived token keys, which go straight into FF1 and
// HMAC states held by the vault. Decryption failures of any kind return the single opaque
// [ErrDecrypt]. A Keyring is safe for concurrent use.
package keyring

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf"
	"github.com/tink-crypto/tink-go/v2/signature"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// ErrDecrypt is returned by [Keyring.Open] whatever went wrong: wrong key, tampered
// ciphertext or mismatched associated data.
var ErrDecrypt = errors.New("keyring: decryption failed")

// ErrUnwrap is returned by [Unwrap] when the KEK cannot open the stored keysets: the KEK is
// wrong or the stored keysets are damaged.
var ErrUnwrap = errors.New("keyring: cannot unwrap keysets with this KEK")

// associated data binding wrapped keysets to their role.
var (
	adData  = []byte("tokenvault/keyring/data/v1")
	adToken = []byte("tokenvault/keyring/token/v1")
	adAudit = []byte("tokenvault/keyring/audit/v1")
)

// Keyring holds the data and token keysets. Create one with [New] or [Unwrap].
type Keyring struct {
	data        atomic.Pointer[dataKeys]
	mu          sync.Mutex // serialises changes to the data keyset
	tokenHandle *keyset.Handle
	auditHandle *keyset.Handle
	prf         *prf.Set
	signer      tink.Signer
}

// dataKeys is one immutable version of the data keyset and its primitive. Changes build a
// new version and swap it in, so encryptions in flight are never disturbed.
type dataKeys struct {
	handle *keyset.Handle
	aead   tink.AEAD
}

func newDataKeys(h *keyset.Handle) (*dataKeys, error) {
	a, err := aead.New(h)
	if err != nil {
		return nil, fmt.Errorf("keyring: data keyset: %w", err)
	}
	return &dataKeys{handle: h, aead: a}, nil
}

// New generates fresh data and token keysets.
func New() (*Keyring, error) {
	dh, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("keyring: generating data keyset: %w", err)
	}
	th, err := keyset.NewHandle(prf.HMACSHA256PRFKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("keyring: generating token keyset: %w", err)
	}
	ah, err := keyset.NewHandle(signature.ED25519KeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("keyring: generating audit signing keyset: %w", err)
	}
	return fromHandles(dh, th, ah)
}

func fromHandles(dh, th, ah *keyset.Handle) (*Keyring, error) {
	dk, err := newDataKeys(dh)
	if err != nil {
		return nil, err
	}
	p, err := prf.NewPRFSet(th)
	if err != nil {
		return nil, fmt.Errorf("keyring: token keyset: %w", err)
	}
	sg, err := signature.NewSigner(ah)
	if err != nil {
		return nil, fmt.Errorf("keyring: audit signing keyset: %w", err)
	}
	k := &Keyring{tokenHandle: th, auditHandle: ah, prf: p, signer: sg}
	k.data.Store(dk)
	return k, nil
}

type wrapped struct {
	Version int    `json:"version"`
	Data    []byte `json:"data"`
	Token   []byte `json:"token"`
	Audit   []byte `json:"audit"`
}

// Wrap encrypts both keysets under kek and returns an opaque blob for storage. The blob holds
// no key material in clear.
func (k *Keyring) Wrap(kek tink.AEAD) ([]byte, error) {
	var d, t bytes.Buffer
	if err := k.data.Load().handle.WriteWithAssociatedData(keyset.NewBinaryWriter(&d), kek, adData); err != nil {
		return nil, fmt.Errorf("keyring: wrapping data keyset: %w", err)
	}
	if err := k.tokenHandle.WriteWithAssociatedData(keyset.NewBinaryWriter(&t), kek, adToken); err != nil {
		return nil, fmt.Errorf("keyring: wrapping token keyset: %w", err)
	}
	var a bytes.Buffer
	if err := k.auditHandle.WriteWithAssociatedData(keyset.NewBinaryWriter(&a), kek, adAudit); err != nil {
		return nil, fmt.Errorf("keyring: wrapping audit keyset: %w", err)
	}
	return json.Marshal(wrapped{Version: 1, Data: d.Bytes(), Token: t.Bytes(), Audit: a.Bytes()})
}

// Unwrap decrypts a blob made by [Keyring.Wrap] with kek.
func Unwrap(blob []byte, kek tink.AEAD) (*Keyring, error) {
	var w wrapped
	if err := json.Unmarshal(blob, &w); err != nil || w.Version != 1 {
		return nil, ErrUnwrap
	}
	dh, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(w.Data)), kek, adData)
	if err != nil {
		return nil, ErrUnwrap
	}
	th, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(w.Token)), kek, adToken)
	if err != nil {
		return nil, ErrUnwrap
	}
	ah, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(w.Audit)), kek, adAudit)
	if err != nil {
		return nil, ErrUnwrap
	}
	return fromHandles(dh, th, ah)
}

// Seal encrypts plaintext with the primary data key, binding it to ad.
func (k *Keyring) Seal(plaintext, ad []byte) ([]byte, error) {
	ct, err := k.data.Load().aead.Encrypt(plaintext, ad)
	if err != nil {
		return nil, fmt.Errorf("keyring: encryption failed: %w", err)
	}
	return ct, nil
}

// Open decrypts a ciphertext made by [Keyring.Seal] with the same ad. Every failure is
// [ErrDecrypt].
func (k *Keyring) Open(ciphertext, ad []byte) ([]byte, error) {
	pt, err := k.data.Load().aead.Decrypt(ciphertext, ad)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// Derive returns a 32-byte key for purpose and parts, computed with the primary token PRF
// over an unambiguous (length-prefixed) encoding. Distinct (purpose, parts) give independent
// keys; the same ones always give the same key.
func (k *Keyring) Derive(purpose string, parts ...string) ([]byte, error) {
	in := make([]byte, 0, 64)
	in = append(in, "tokenvault/derive/v1"...)
	in = binary.AppendUvarint(in, uint64(len(purpose)))
	in = append(in, purpose...)
	for _, p := range parts {
		in = binary.AppendUvarint(in, uint64(len(p)))
		in = append(in, p...)
	}
	out, err := k.prf.ComputePrimaryPRF(in, 32)
	if err != nil {
		return nil, fmt.Errorf("keyring: deriving key: %w", err)
	}
	return out, nil
}

// Sign signs data with the audit signing key.
func (k *Keyring) Sign(data []byte) ([]byte, error) {
	sig, err := k.signer.Sign(data)
	if err != nil {
		return nil, fmt.Errorf("keyring: signing: %w", err)
	}
	return sig, nil
}

// AuditPublicKeyset returns the public half of the audit signing keyset in Tink's JSON keyset
// format. It holds no secret.
func (k *Keyring) AuditPublicKeyset() ([]byte, error) {
	pub, err := k.auditHandle.Public()
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := pub.WriteWithNoSecrets(keyset.NewJSONWriter(&b)); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ErrBadSignature is returned by a verifier for a signature that does not verify.
var ErrBadSignature = errors.New("keyring: signature does not verify")

// Verifier checks audit checkpoint signatures with a public keyset only.
type Verifier struct{ v tink.Verifier }

// NewVerifier parses a public keyset made by [Keyring.AuditPublicKeyset].
func NewVerifier(publicKeyset []byte) (*Verifier, error) {
	h, err := keyset.ReadWithNoSecrets(keyset.NewJSONReader(bytes.NewReader(publicKeyset)))
	if err != nil {
		return nil, fmt.Errorf("keyring: not a public keyset: %w", err)
	}
	v, err := signature.NewVerifier(h)
	if err != nil {
		return nil, fmt.Errorf("keyring: not a signature keyset: %w", err)
	}
	return &Verifier{v: v}, nil
}

// Verify returns nil if sig is a valid signature of data, else ErrBadSignature.
func (v *Verifier) Verify(sig, data []byte) error {
	if v.v.Verify(sig, data) != nil {
		return ErrBadSignature
	}
	return nil
}

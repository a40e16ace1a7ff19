// Package kek opens key-encryption keys (KEKs) held by a key management service, through
// Tink's KMS integrations.
//
// # Basics
//
// [Open] takes a key URI and returns a [tink.AEAD] whose every call goes to the KMS:
//
//	aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID   AWS KMS (default AWS credential chain)
//	gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K   Cloud KMS (application default credentials)
//	hcvault://HOST[:PORT]/transit/keys/NAME        HashiCorp Vault transit (token in VAULT_TOKEN)
//
// The KEK only wraps the vault's keysets, so the KMS is called at start and at key operations,
// never per request.
//
// # Caveats
//
// A KMS that is unreachable at start is not fatal to the server: it starts sealed and retries
// (see cmd/tokenvault). Tests use Tink's fake KMS through [WithClient]; the real clients are
// compiled in and selected by the URI's scheme. Built with -tags nokms, the binary carries no
// KMS client (about a third of its packages) and supports local KEK files only.
package kek

import (
	"context"
	"errors"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/core/registry"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// ErrUnsupported is returned for a key URI whose scheme no client handles.
var ErrUnsupported = errors.New("kek: unsupported key URI (want aws-kms://, gcp-kms:// or hcvault://)")

// kmsSchemes are the key URI schemes of the built-in KMS clients (clients.go).
func kmsSchemes() []string { return []string{"aws-kms://", "gcp-kms://", "hcvault://"} }

// ErrUnavailable wraps failures to reach or use the KMS; they may pass, so callers retry.
var ErrUnavailable = errors.New("kek: the KMS is not available")

type options struct {
	clients []registry.KMSClient
}

// Option configures Open.
type Option func(*options)

// WithClient adds a KMS client tried before the built-in ones (tests pass Tink's fake KMS).
func WithClient(c registry.KMSClient) Option {
	return func(o *options) { o.clients = append(o.clients, c) }
}

// Open returns the KEK named by uri. It checks the key is usable by encrypting and
// decrypting a probe, so an unreachable KMS or a key without permission fails here.
func Open(ctx context.Context, uri string, opts ...Option) (tink.AEAD, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	var client registry.KMSClient
	for _, c := range o.clients {
		if c.Supported(uri) {
			client = c
			break
		}
	}
	if client == nil {
		var err error
		if client, err = builtinClient(ctx, uri); err != nil {
			return nil, err
		}
	}
	a, err := client.GetAEAD(uri)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	probe := []byte("tokenvault kek probe")
	ct, err := a.Encrypt(probe, []byte("probe"))
	if err != nil {
		return nil, fmt.Errorf("%w: encrypting a probe: %v", ErrUnavailable, err)
	}
	if pt, err := a.Decrypt(ct, []byte("probe")); err != nil || string(pt) != string(probe) {
		return nil, fmt.Errorf("%w: decrypting a probe failed", ErrUnavailable)
	}
	return a, nil
}

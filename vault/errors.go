package vault

import (
	"errors"

	"github.com/tokenvault/tokenvault/vault/template"
)

// Errors returned by the vault. Callers match them with errors.Is; the server maps each to a
// gRPC status code in one table. None of their messages (nor the messages of errors that wrap
// them) contain a value, a token or key material.
var (
	// ErrUnknownTemplate is returned for a whole call that names a template that does not exist.
	ErrUnknownTemplate = template.ErrUnknownTemplate

	// ErrInvalidValue is the per-item error for a value that does not fit its template. It is
	// the template package's error, re-exported so callers need only this package.
	ErrInvalidValue = template.ErrInvalidValue

	// ErrInvalidTemplate is returned by CreateTemplate for an unusable definition.
	ErrInvalidTemplate = template.ErrInvalidDefinition

	// ErrTemplateExists is returned by CreateTemplate when the name is taken.
	ErrTemplateExists = errors.New("template already exists")

	// ErrNotFound is the per-item error for a token that does not exist in the domain, was
	// erased or expired, or belongs to another template than the one named.
	ErrNotFound = errors.New("token not found")

	// ErrTokenSpaceExhausted is the per-item error when no free token could be found for a
	// value: the template's token space is (nearly) full.
	ErrTokenSpaceExhausted = errors.New("no free token left in this template's token space")

	// ErrIntegrity is the per-item error when a stored record fails to decrypt or parse: the
	// store was tampered with or damaged. It is always logged.
	ErrIntegrity = errors.New("stored record failed its integrity check")

	// ErrBatchTooLarge is returned for a whole call with more than MaxBatch items.
	ErrBatchTooLarge = errors.New("too many items in one call")

	// ErrEmptyBatch is returned for a whole call with no items.
	ErrEmptyBatch = errors.New("no items in the call")

	// ErrInvalidArgument is returned for malformed arguments other than values (names,
	// domains, roles).
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrUnauthenticated is returned by Authenticate for a missing, unknown or revoked secret.
	ErrUnauthenticated = errors.New("missing, unknown or revoked credential")

	// ErrCredentialNotFound is returned when a credential id does not exist.
	ErrCredentialNotFound = errors.New("credential not found")

	// ErrKEK is returned by Open when the KEK cannot unwrap the stored keyring.
	ErrKEK = errors.New("the key-encryption key cannot unwrap this vault's keys (wrong or missing KEK)")
)

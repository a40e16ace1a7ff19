package vault

import (
	"errors"
	"fmt"
	"time"

	"github.com/tokenvault/tokenvault/vault/audit"
	"github.com/tokenvault/tokenvault/vault/fieldpolicy"
	"github.com/tokenvault/tokenvault/vault/template"
)

// Errors returned by the vault. Callers match them with errors.Is; the server maps each to a
// gRPC status code in one table. None of their messages (nor the messages of errors that wrap
// them) contain a value, a token or key material.

// Errors of tokens and templates.
var (
	// ErrUnknownTemplate is returned for a whole call that names a template that does not exist.
	ErrUnknownTemplate = template.ErrUnknownTemplate

	// ErrInvalidValue is the per-item error for a value that does not fit its template. It is
	// the template package's error, re-exported so callers need only this package.
	ErrInvalidValue = template.ErrInvalidValue

	// ErrInvalidTemplate is returned by CreateTemplate for an unusable definition.
	ErrInvalidTemplate = template.ErrInvalidDefinition

	// ErrCredentialExists is returned by CreateCredential when a live credential has the name.
	ErrCredentialExists = errors.New("credential name taken")

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
)

// Errors of whole calls.
var (
	// ErrBatchTooLarge is returned for a whole call with more than MaxBatch items.
	ErrBatchTooLarge = errors.New("too many items in one call")

	// ErrEmptyBatch is returned for a whole call with no items.
	ErrEmptyBatch = errors.New("no items in the call")

	// ErrInvalidArgument is returned for malformed arguments other than values (names,
	// domains, roles).
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrNoAuditEvent is returned by AuditEventAt for a sequence number with no stored event
	// (never written, or pruned).
	ErrNoAuditEvent = errors.New("no such audit event")

	// ErrSubjectErasing is returned for a whole tokenize call (nothing stored) when a data
	// subject it names was being erased for as long as the call's context lasted: a tokenize
	// waits for an erasure of its subject to finish rather than hold it off. Retrying later is
	// safe; the retry seals under a new key of the subject. Wrapped in a RetryAfterError.
	ErrSubjectErasing = errors.New("a data subject named in this call is being erased; retry in a few seconds")
)

// Errors of JSON documents (TokenizeRecords, DetokenizeRecords).
var (
	// ErrInvalidPolicy is returned for a field policy that does not parse or compile.
	ErrInvalidPolicy = fieldpolicy.ErrInvalidPolicy

	// ErrInvalidDocument is returned for a malformed document; the message names its index.
	ErrInvalidDocument = fieldpolicy.ErrInvalidDocument

	// ErrRecordLimit is returned when documents are nested too deeply or select too many
	// fields.
	ErrRecordLimit = fieldpolicy.ErrLimit
)

// Errors of credentials and grants.
var (
	// ErrUnauthenticated is returned by Authenticate and AuthenticateCert for a missing,
	// unknown, revoked or expired credential (all alike: no oracle).
	ErrUnauthenticated = errors.New("missing, unknown or revoked credential")

	// ErrCredentialNotFound is returned when a credential id does not exist.
	ErrCredentialNotFound = errors.New("credential not found")

	// ErrCredentialState is returned for an operation the credential's state does not allow
	// (rotating a revoked credential, or one that authenticates by client certificate).
	ErrCredentialState = errors.New("the credential's state does not allow this operation")

	// ErrPermissionDenied is the per-item error of a vendor reveal that no live grant covers.
	// It reads the same whether the token exists or not.
	ErrPermissionDenied = errors.New("permission denied: no live grant of this vendor covers this item")

	// ErrRateLimited is returned for a whole vendor call that would exceed a grant's rate:
	// nothing is revealed.
	ErrRateLimited = errors.New("grant rate exceeded; retry later")

	// ErrQuotaExhausted is returned for a whole vendor call that would exceed a grant's total
	// quota: nothing is revealed, and only a new grant helps.
	ErrQuotaExhausted = errors.New("grant quota used up; ask for a new grant")

	// ErrGrantNotLive is returned for a whole vendor call that names a grant (grant_id) which
	// is not a live grant of the calling vendor: nothing is revealed.
	ErrGrantNotLive = fmt.Errorf("%w: grant_id names no live grant of this vendor", ErrPermissionDenied)

	// ErrNoSuchVendor is returned for a grant to a vendor that no live vendor credential acts
	// for: the grant could never be used (a typo, or the credential not created yet).
	ErrNoSuchVendor = errors.New("unknown vendor")

	// ErrGrantNotFound is returned when a grant id does not exist.
	ErrGrantNotFound = errors.New("grant not found")

	// ErrOutOfScope is the per-item error for an item outside the calling credential's scope
	// (its domains or templates). It is a permission denial (errors.Is(ErrOutOfScope,
	// ErrPermissionDenied)), and reads the same whether the token exists or not.
	ErrOutOfScope error = outOfScope{}
)

// outOfScope is ErrOutOfScope's type: its own message, matched as ErrPermissionDenied too.
type outOfScope struct{}

func (outOfScope) Error() string {
	return "permission denied: this credential's scope does not cover this item"
}

func (outOfScope) Is(target error) bool { return target == ErrPermissionDenied }

// Errors of keys, the store and backups.
var (
	// ErrKEK is returned by Open when the KEK cannot unwrap the stored keyring.
	ErrKEK = errors.New("the key-encryption key cannot unwrap this vault's keys (wrong or missing KEK)")

	// ErrSchemaTooNew is returned by Open for a store written by a newer tokenvault.
	ErrSchemaTooNew = errors.New("this store was written by a newer tokenvault; upgrade the binary (downgrades are not supported)")

	// ErrKeyInUse is returned when disabling or destroying a key that still protects records.
	ErrKeyInUse = errors.New("the key still protects records; wait for the rewrap to finish")

	// ErrKeyState is returned for a key operation the key's state does not allow.
	ErrKeyState = errors.New("the key's state does not allow this operation")

	// ErrNoSuchKey is returned for an unknown key id.
	ErrNoSuchKey = errors.New("no such data key")

	// ErrLeaseLost is returned by a write made for background work (RunBackground's passes,
	// and the writes of a context from Leased, such as the server's checkpoints) when this
	// vault no longer holds the lease it started under: another replica has taken it over.
	// The write is rolled back; the new holder does the work.
	ErrLeaseLost = errors.New("this replica no longer holds the background lease")

	// ErrNoSnapshot is returned by Backup when the store cannot take online snapshots.
	ErrNoSnapshot = errors.New("this store cannot take online backups")
)

// Errors of the audit trail.
var (
	// ErrAuditTampered is returned by VerifyStoreAudit and VerifyReceipt when a trail or a
	// receipt does not verify (audit.Verify's audit.ErrTampered, re-exported).
	ErrAuditTampered = audit.ErrTampered

	// ErrNotExported is returned by PruneAudit for events no export has delivered yet.
	ErrNotExported = errors.New("these audit events were never exported; export them first (audit export)")
)

// errBadRecord is unmarshalRecord's error for bytes that are not a stored record; callers turn
// it into ErrIntegrity (or skip the record) and never return it.
var errBadRecord = errors.New("malformed record")

// RetryAfterError is a refusal that a retry after After may not get: a grant's rate, or a
// tokenize that waited for an erasure of its subject. It unwraps to its cause (ErrRateLimited,
// ErrSubjectErasing), so errors.Is keeps working.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }
func (e *RetryAfterError) Unwrap() error { return e.Err }

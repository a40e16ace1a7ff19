package store

import (
	"context"
	"errors"
)

// These errors can be returned when opening or closing a Store.
var (
	// ErrLocked is returned by Open when the data file is held by another
	// read-write Store: another process, or another Open of the same file in
	// this process that has not been closed. Open waits for Options.Timeout
	// before giving up; it never waits indefinitely.
	ErrLocked = errors.New("store: store is in use by another process")

	// ErrClosed is returned by View and Update when they are called after
	// Close. Update calls that were already queued when Close was called are
	// still run and committed; they never see ErrClosed.
	ErrClosed = errors.New("store: store is closed")

	// ErrCorrupt is returned by Bolt.Check when the consistency check of the
	// data file finds problems. The returned error wraps ErrCorrupt and each
	// problem found.
	ErrCorrupt = errors.New("store: consistency check failed")
)

// These errors can be returned by the methods of Tx.
var (
	// ErrBucketName is returned by Put, Delete, Scan and NextSequence when the
	// bucket name is not valid (see Bucket.Validate): empty, longer than
	// MaxBucketNameSize, or with characters other than ASCII letters, digits,
	// '_', '-' and '.'.
	ErrBucketName = errors.New("store: invalid bucket name")

	// ErrKeyEmpty is returned by Put and Delete when the key is empty.
	ErrKeyEmpty = errors.New("store: key required")

	// ErrKeyTooLarge is returned by Put and Delete when the key is longer than
	// MaxKeySize bytes.
	ErrKeyTooLarge = errors.New("store: key too large")

	// ErrValueTooLarge is returned by Put when the value is longer than
	// MaxValueSize bytes.
	ErrValueTooLarge = errors.New("store: value too large")

	// ErrReadOnly is returned by Put, Delete and NextSequence when they are
	// called on the Tx of a View.
	ErrReadOnly = errors.New("store: write in a read-only transaction")

	// ErrTxDone is returned by Put, Delete, Scan and NextSequence when the Tx
	// is used after the function it was passed to has returned.
	ErrTxDone = errors.New("store: transaction used after its function returned")

	// ErrScanMutation is returned by Put and Delete when they are called, from
	// inside a Scan callback, on the bucket being scanned. Collect the keys
	// and change them after Scan returns, or write to another bucket.
	ErrScanMutation = errors.New("store: bucket modified during its own scan")

	// ErrExists is returned by Insert when the key is already present in the
	// transaction's view (stored before it began, or written earlier in it).
	ErrExists = errors.New("store: key already exists")

	// ErrStopScan may be returned by a Scan callback to stop the scan early.
	// Scan then returns nil. It is never returned by Scan itself.
	ErrStopScan = errors.New("store: stop scan")
)

// ErrCommitUnknown is wrapped by the error that Update returns when the
// transaction was sent for commit but its outcome is unknown: the connection
// to a database server was lost, or the call's context ended, while COMMIT
// was in flight. The writes may or may not be durable, and may become visible
// later; a retry may apply them twice. Callers must fail closed: never act as
// if the write were committed (nor as if it were not) without reading it back.
// The embedded Bolt backend returns it only when writing or syncing its
// journal fails (it then refuses further writes until reopened).
var ErrCommitUnknown = errors.New("store: commit outcome unknown")

// ErrUnavailable is wrapped by the errors of View, Update and Ping when a
// remote backend cannot reach its database: the connection was refused or
// lost, the server is shutting down or starting up, or it has no connection
// slot left. The condition is expected to pass: callers may retry later,
// and the store reconnects by itself. Unless the error also wraps
// ErrCommitUnknown (the connection was lost while COMMIT was in flight), the
// failing call committed nothing. The embedded Bolt backend never returns it.
var ErrUnavailable = errors.New("store: database unavailable")

// Pinger is implemented by stores on a remote database (pgstore): Ping
// checks that the database answers, returning an error wrapping
// ErrUnavailable when it cannot be reached. Health checks use it; a store
// without it (Bolt) is local and always reachable while open.
type Pinger interface {
	Ping(ctx context.Context) error
}

// ErrPanic is wrapped by the error that Update returns when its function
// panicked. The panic is recovered, the function's writes are discarded, the
// other callers grouped into the same transaction are unaffected, and the
// store stays usable. The error text holds the panic value and stack.
// (A panic in the function passed to View is not recovered: View runs it in
// the caller's goroutine.)
var ErrPanic = errors.New("store: panic in transaction function")

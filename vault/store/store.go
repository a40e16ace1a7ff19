package store

import (
	"context"
	"fmt"
)

// Limits that every Store implementation enforces, so that data written
// through one backend can be moved to another. They are well below bbolt's
// own limits: MaxKeySize fits a PostgreSQL B-tree index entry, MaxValueSize
// keeps a single value cheap to hold in memory.
const (
	// MaxBucketNameSize is the maximum length of a Bucket name, in bytes.
	MaxBucketNameSize = 64
	// MaxKeySize is the maximum length of a key, in bytes.
	MaxKeySize = 1024
	// MaxValueSize is the maximum length of a value, in bytes.
	MaxValueSize = 16 << 20
)

// Bucket names a namespace of keys: a bbolt bucket in Bolt, a table or key
// prefix in other backends. Valid names are 1 to MaxBucketNameSize bytes of
// ASCII letters, digits, '_', '-' and '.'. Buckets need not be created: a
// bucket comes into existence on its first Put or NextSequence, and reading a
// bucket that does not exist behaves as reading an empty one.
type Bucket string

// Validate returns an error wrapping ErrBucketName if b is not a valid
// bucket name, and nil otherwise.
func (b Bucket) Validate() error {
	if len(b) == 0 || len(b) > MaxBucketNameSize {
		return fmt.Errorf("%w: length %d not in [1, %d]", ErrBucketName, len(b), MaxBucketNameSize)
	}
	for i := 0; i < len(b); i++ {
		if !bucketChar(b[i]) {
			return fmt.Errorf("%w: %q: byte %d not one of [A-Za-z0-9_.-]", ErrBucketName, string(b), i)
		}
	}
	return nil
}

func bucketChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '-' || c == '.'
}

// ValidateKey returns ErrKeyEmpty or ErrKeyTooLarge if key cannot be
// stored, and nil otherwise. Errors never include key bytes: keys may be
// sensitive.
func ValidateKey(key []byte) error {
	switch {
	case len(key) == 0:
		return ErrKeyEmpty
	case len(key) > MaxKeySize:
		return ErrKeyTooLarge
	}
	return nil
}

// ValidateValue returns ErrValueTooLarge if value cannot be stored, and nil
// otherwise. An empty or nil value is valid and is stored as an empty value
// (Get returns a non-nil empty slice for it).
func ValidateValue(value []byte) error {
	if len(value) > MaxValueSize {
		return ErrValueTooLarge
	}
	return nil
}

// Store is a transactional key/value store of byte strings, grouped in
// buckets. It does no encryption: callers encrypt values before Put.
//
// A Store is safe for concurrent use by multiple goroutines.
type Store interface {
	// View runs fn in a read-only, consistent snapshot of the store.
	//
	// fn runs in the calling goroutine; a panic in fn propagates to the
	// caller after the snapshot is released. View returns ctx.Err() without
	// running fn if ctx is already done, and ErrClosed after Close.
	// Otherwise it returns fn's error. Byte slices returned by Tx.Get and
	// passed to Tx.Scan callbacks are valid only until fn returns, and must
	// not be modified: copy them (bytes.Clone) to keep them.
	View(ctx context.Context, fn func(Tx) error) error

	// Update runs fn in a read-write transaction and returns after the
	// transaction is durably committed (fsync), or with the reason it was not.
	//
	// Concurrent Update calls are grouped into one transaction and one
	// commit (group commit), in the order they were queued; each fn sees the
	// writes of the functions before it in the group. Consequently:
	//
	//   - fn may run more than once (when another function in its group fails
	//     after writing, the group is rolled back and the others are re-run).
	//     fn must have no effect outside the Tx other than setting its own
	//     result variables, which it must (re)assign on every run.
	//   - If fn returns an error or panics, none of its writes are kept, that
	//     error (for a panic, one wrapping ErrPanic) is returned to this caller
	//     only, and the other callers' work still commits.
	//   - If ctx is done before fn first starts, Update returns ctx.Err() and
	//     fn is not run. Once fn has started, Bolt no longer consults ctx: the
	//     call waits for the commit and its result stands. A backend on a
	//     remote database (pgstore) lets ctx bound the whole call instead, so
	//     that no call outlives its deadline while the database is
	//     unreachable: ending ctx then rolls the transaction back (an error
	//     wrapping ctx.Err()), or, if COMMIT was in flight, makes the outcome
	//     unknown (an error wrapping ErrCommitUnknown).
	//   - fn must not call Update or Close on the same Store (it would
	//     deadlock) nor View (which would not see the transaction's writes),
	//     must not use the Tx from other goroutines, and must not block for
	//     long: it holds up every caller in its group.
	//
	// Update returns ErrClosed if called after Close. An error wrapping
	// ErrCommitUnknown means the writes may or may not have been committed:
	// fail closed.
	Update(ctx context.Context, fn func(Tx) error) error

	// Close waits for queued Update calls to commit, then releases the store.
	// Calls to View and Update made after Close return ErrClosed. Close may be
	// called more than once; later calls return the result of the first.
	Close() error
}

// Tx is the transaction passed to the functions given to View and Update.
// It is valid only until that function returns and must be used only by
// the goroutine running it.
//
// Errors returned by Tx methods never include key or value bytes.
type Tx interface {
	// Get returns the value stored for key in bucket b, or nil if there is
	// none (a stored empty value is returned as a non-nil empty slice). An
	// invalid bucket name or key is reported as absent. The returned slice is
	// valid only until the transaction function returns and must not be
	// modified.
	Get(b Bucket, key []byte) []byte

	// GetMany returns the values stored for keys in bucket b, in the order of
	// keys: result i is what Get(b, keys[i]) would return at this point of the
	// transaction (the transaction's own writes included), nil for an absent
	// key and a non-nil empty slice for a stored empty value. Keys may repeat.
	// An invalid bucket name reports every key absent, an invalid key (empty
	// or over MaxKeySize) reports that key absent. The result has len(keys)
	// elements (nil for an empty keys); its slices follow Get's rules: valid
	// only until the transaction function returns, not to be modified.
	//
	// It exists for backends on a remote database: one GetMany costs one round
	// trip whatever the number of keys (pgstore), where as many Gets cost one
	// each. On a failed read it behaves like Get (nil results; the error is
	// returned by View or Update).
	GetMany(b Bucket, keys [][]byte) [][]byte

	// Put stores value for key in bucket b, creating the bucket if needed.
	//
	// Put does not copy value (bbolt's rule): key and value must not be
	// modified by the caller until the enclosing Update call has returned.
	// After that they may be reused freely.
	//
	// Put returns ErrBucketName, ErrKeyEmpty, ErrKeyTooLarge or
	// ErrValueTooLarge for invalid arguments, ErrReadOnly in View,
	// ErrScanMutation inside a Scan of bucket b, and ErrTxDone after the
	// transaction function returned.
	Put(b Bucket, key, value []byte) error

	// Insert stores value for key in bucket b only if key is absent: a
	// create-only write, for records that must never be overwritten (a token
	// issued to one value must not be reissued to another by a racing
	// process). It takes its arguments as Put does and returns Put's errors,
	// plus ErrExists when the key is present in the transaction's view.
	//
	// A key created by a concurrent transaction that committed after this one
	// began is not in its view: the transaction then fails to commit, and
	// Update runs the function again in a new one (pgstore: the row is
	// written with a plain INSERT, and the unique violation it raises is
	// retried like a serialization failure), where a read shows the key. Bolt
	// has a single writer, so there is no such race. pgstore checks presence
	// only against the transaction's own writes when Insert is called, and
	// against stored keys when the write is sent (before a Scan, Buckets or
	// COMMIT): read the key first (Get, GetMany) and Insert only if it was
	// absent, as one does anyway to decide.
	Insert(b Bucket, key, value []byte) error

	// Delete removes key from bucket b. Deleting a key or bucket that does not
	// exist is not an error. It returns the same errors as Put, except
	// ErrValueTooLarge.
	Delete(b Bucket, key []byte) error

	// Scan calls fn for each key in bucket b that begins with prefix, in
	// ascending byte order, starting at the first key >= start when start is
	// non-nil. A nil or empty prefix matches every key.
	//
	// If fn returns ErrStopScan, Scan stops and returns nil; if fn returns any
	// other error, Scan stops and returns it. k and v are valid only until the
	// transaction function returns and must not be modified. fn may read any
	// bucket and write to buckets other than b; Put and Delete on b itself
	// return ErrScanMutation. In View, Scan also stops and returns ctx.Err()
	// if the View's context is done. A missing bucket scans as empty.
	Scan(b Bucket, prefix, start []byte, fn func(k, v []byte) error) error

	// NextSequence returns the next value of bucket b's sequence, creating
	// the bucket if needed. Values are per bucket, start at 1 and strictly
	// increase in the order they are taken; in Bolt, which commits one
	// transaction at a time, that is also commit order. In pgstore a value
	// is taken without waiting for other transactions, so two concurrent
	// transactions may commit in the other order (the one with the smaller
	// value later). Values handed out in a transaction that did not commit
	// may be handed out again (bbolt) or skipped (other backends): do not
	// rely on either. It returns ErrReadOnly in View.
	NextSequence(b Bucket) (uint64, error)

	// Buckets returns the valid names of the buckets that exist, in ascending
	// byte order: those holding at least one key or a nonzero sequence (a
	// bucket emptied by deletes and never given a sequence may or may not be
	// listed). With Scan, Sequence and AdvanceSequence it lets a whole store be
	// copied, to another backend or into a backup, without knowing its
	// layout. The transaction's own writes are included. It returns
	// ErrTxDone after the transaction function returned, and a database
	// error as View and Update would.
	Buckets() ([]Bucket, error)

	// Sequence returns bucket b's current sequence value without changing it:
	// the last value NextSequence handed out (in a committed transaction, or
	// in this one), or the value AdvanceSequence set; 0 for a bucket that never
	// had one, or does not exist. It returns ErrBucketName for an invalid
	// name and ErrTxDone after the transaction function returned.
	Sequence(b Bucket) (uint64, error)

	// AdvanceSequence makes every later NextSequence of bucket b return more
	// than atLeast, creating the bucket if needed: it sets the sequence to
	// atLeast when it is lower, and never moves it back, so it is safe while
	// other transactions (or processes) take values. Data copied in from
	// elsewhere (store.Copy into an empty store, a migration, an older layout)
	// uses it to continue a sequence past the keys it holds; it is not for
	// allocating values. It returns ErrBucketName, ErrReadOnly in View and
	// ErrTxDone after the transaction function returned.
	AdvanceSequence(b Bucket, atLeast uint64) error
}

// SharedGetter is implemented by backends whose Update may run under snapshot isolation
// (WithSnapshotIsolation). GetForShare reads key as Get does, and also takes a share lock on
// it until the transaction ends: a concurrent writer of key waits for this transaction, and if
// key was changed by a transaction that committed after this one's snapshot, this transaction
// fails and is re-run. It is how a function that runs under snapshot isolation makes a read
// that must stay true until its commit (e.g. "this is still the primary key") as strong as
// under SERIALIZABLE.
type SharedGetter interface {
	GetForShare(b Bucket, key []byte) []byte
	// GetManyForShare is GetMany with GetForShare's lock on every key present.
	GetManyForShare(b Bucket, keys [][]byte) [][]byte
}

// GetForShare reads key with tx's GetForShare when the backend has one (see SharedGetter),
// and with Get otherwise (Bolt: a single writer needs no lock).
func GetForShare(tx Tx, b Bucket, key []byte) []byte {
	if sg, ok := tx.(SharedGetter); ok {
		return sg.GetForShare(b, key)
	}
	return tx.Get(b, key)
}

// GetManyForShare reads keys with tx's GetManyForShare when the backend has one (see
// SharedGetter), and with GetMany otherwise.
func GetManyForShare(tx Tx, b Bucket, keys [][]byte) [][]byte {
	if sg, ok := tx.(SharedGetter); ok {
		return sg.GetManyForShare(b, keys)
	}
	return tx.GetMany(b, keys)
}

// Read names keys to read from one bucket, for GetManyIn.
type Read struct {
	Bucket Bucket
	Keys   [][]byte
}

// MultiGetter is implemented by backends that can read keys from several buckets in one
// statement (one round trip on PostgreSQL): see GetManyIn.
type MultiGetter interface {
	// GetManyIn is GetManyIn (below); ok is false when the backend cannot answer in one
	// statement (e.g. the transaction wrote some of the keys), and the caller then reads the
	// buckets one by one.
	GetManyIn(reads []Read) (vals [][][]byte, ok bool)
}

// GetManyIn returns, for each read, tx.GetMany(read.Bucket, read.Keys): read together in one
// statement by backends implementing MultiGetter (all from the transaction's snapshot), and
// one after the other by the others.
func GetManyIn(tx Tx, reads []Read) [][][]byte {
	if g, ok := tx.(MultiGetter); ok {
		if vals, ok := g.GetManyIn(reads); ok {
			return vals
		}
	}
	vals := make([][][]byte, len(reads))
	for i, r := range reads {
		vals[i] = tx.GetMany(r.Bucket, r.Keys)
	}
	return vals
}

// GuardedSharedGetter is implemented by backends that can read keys for share unless a guard
// is set, in one statement (one round trip on PostgreSQL): see GetManyForShareUnless.
type GuardedSharedGetter interface {
	// GetManyForShareUnless is GetManyForShareUnless (below); ok is false when the backend
	// cannot answer in one statement (e.g. the transaction wrote some of the keys), and the
	// caller then reads them separately.
	GetManyForShareUnless(b, guard Bucket, keys [][]byte) (vals, guards [][]byte, ok bool)
}

// GetManyForShareUnless reads keys from bucket guard as GetMany does (no lock), and the keys
// of b whose guard is absent as GetManyForShare does (locked for share). A key whose guard is
// present is neither read nor locked in b: guards[i] is its guard's value and vals[i] is nil.
// Backends implementing GuardedSharedGetter do both in one statement, reading the guards from
// the transaction's snapshot; others read the guards, then the unguarded keys. It is how a
// function running under snapshot isolation takes a share lock only where no one announced
// (with a guard committed before its snapshot) that they are about to change the key: the
// lock would hold the writer off, and PostgreSQL grants a new share lock on a row while a
// writer waits for the earlier ones.
func GetManyForShareUnless(tx Tx, b, guard Bucket, keys [][]byte) (vals, guards [][]byte) {
	if g, ok := tx.(GuardedSharedGetter); ok {
		if vals, guards, ok := g.GetManyForShareUnless(b, guard, keys); ok {
			return vals, guards
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	guards = tx.GetMany(guard, keys)
	free := make([][]byte, 0, len(keys))
	for i, k := range keys {
		if guards[i] == nil {
			free = append(free, k)
		}
	}
	got := GetManyForShare(tx, b, free)
	vals = make([][]byte, len(keys))
	for i := range keys {
		if guards[i] == nil {
			vals[i], got = got[0], got[1:]
		}
	}
	return vals, guards
}

// snapshotIsolationKey marks a context for WithSnapshotIsolation.
type snapshotIsolationKey struct{}

// WithSnapshotIsolation returns a context whose Update calls may run with snapshot isolation
// instead of full serializability: in pgstore, REPEATABLE READ instead of SERIALIZABLE. Bolt
// has one writer and ignores it.
//
// Use it only for a function whose correctness rests on conflicts between writes of the same
// key, which snapshot isolation still detects: every key it creates is written with Insert
// (a concurrent creator makes the commit fail) or is one no other transaction can write (a
// fresh NextSequence number), and every key it overwrites with Put is one
// whose current value (or absence) it read and decided on (a concurrent write of that key
// makes pgstore fail the transaction with a serialization failure, and Update runs the
// function again). What snapshot isolation lets through is write skew: two transactions
// each reading what the other writes, under different keys, such as a check of a counter
// kept in one key before writing another. A function that depends on such a check must not
// use it.
//
// The gain is for functions that read and write many scattered keys (a batch tokenize):
// SERIALIZABLE tracks reads at index-page granularity, so concurrent batches that touch the
// same pages abort each other even when they share no key.
func WithSnapshotIsolation(ctx context.Context) context.Context {
	return context.WithValue(ctx, snapshotIsolationKey{}, true)
}

// SnapshotIsolation reports whether ctx was made by WithSnapshotIsolation (for backends).
func SnapshotIsolation(ctx context.Context) bool {
	v, _ := ctx.Value(snapshotIsolationKey{}).(bool)
	return v
}

// KeyReader is implemented by backends on a remote database, where a View costs round trips
// of its own (pgstore: a transaction's BEGIN and ROLLBACK): ReadKey reads one key in a single
// statement, outside any transaction, in one round trip. A single statement sees one
// committed state, so a read that starts after a write's commit returned sees that write.
// The result is Get's (nil for an absent key, a non-nil empty slice for an empty value),
// owned by the caller. It returns ErrClosed after Close, and a database error as View would.
type KeyReader interface {
	ReadKey(ctx context.Context, b Bucket, key []byte) ([]byte, error)
}

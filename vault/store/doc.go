/*
Package store is the storage layer of the vault: a narrow, transactional
key/value interface (Store, Tx) over byte strings, and its implementation on
an embedded bbolt file (Bolt). It knows nothing of cryptography: callers
encrypt values before they Put them and decrypt what they Get. The interface
is kept small so that other backends can implement it and pass the same
conformance suite, package storetest: package pgstore implements it on
PostgreSQL, for several processes sharing one database.

# Basics

A Store holds buckets, named by Bucket, each an ordered set of unique keys
with their values, and a sequence counter (Tx.NextSequence). Buckets need no
creation: the first Put or NextSequence creates one, and reading a bucket
that does not exist behaves as reading an empty one.

Besides Get, Put, Delete, Scan and NextSequence, a Tx reads many keys of a
bucket at once (GetMany: one round trip on a remote database, whatever the
number of keys), creates a key only if it is absent (Insert: a record never
overwritten), and lists its buckets and sequences (Buckets, Sequence,
SetSequence) so that Copy can copy a whole store between backends, and
SnapshotOf can write any store as a bbolt backup.

All access goes through transactions. View runs a function in a read-only,
consistent snapshot; any number of Views run at once, alongside writes.
Update runs a function in a read-write transaction and returns once that
transaction is durably committed: with Bolt, written and fsynced to the file.
When Update returns nil, the write survives a crash.

Writes are serialized. Bolt runs them on a single committer goroutine and
groups the Update calls that queue up while a commit is in progress into the
next transaction, so that many concurrent callers share one fsync (group
commit). A single caller is committed at once, without any batching delay.
Within a group, each function sees the writes of those before it, in queue
order; each caller still gets its own result.

	s, err := store.Open(path, store.Options{})
	if err != nil {
		return err // errors.Is(err, store.ErrLocked) if another process has it
	}
	defer s.Close()

	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.Put("tokens", token, ciphertext)
	})

	var value []byte
	err = s.View(ctx, func(tx store.Tx) error {
		value = bytes.Clone(tx.Get("tokens", token)) // copy: see Caveats
		return nil
	})

# Caveats

One writer process. A Bolt file is locked by the process that opened it;
Open in a second process (or a second Open in the same process) fails with
ErrLocked after Options.Timeout. Only one server may use a data file.

An Update function may run more than once. When a function in a group fails
after writing (or panics), bbolt cannot undo only its writes: the whole
transaction is rolled back and the other functions of the group are run
again. Functions must therefore have no side effects outside the Tx other
than assigning their own result variables (on every run), and must be quick:
a slow function delays every caller of its group. A function that returns an
error, or panics, has none of its writes kept; a panic is returned as an error
wrapping ErrPanic. A function must not call Update or Close on the same
store: it would deadlock.

Values are valid only inside the transaction. Slices returned by Tx.Get and
passed to Tx.Scan callbacks point into the memory-mapped file (or into the
transaction's own buffers): they are valid only until the function given to
View or Update returns, and must never be modified; writing to them can
crash the process. Copy what you need to keep. Conversely Put does not copy
its arguments: key and value must not be modified until Update returns.

Durability is fsync on commit. Update returns only after the commit's fsync
(fdatasync on Linux) completed. Options.NoSync disables it, trading
durability and consistency on crash for speed; it is for tests and
benchmarks only.

Long Views hold back the file. A read transaction keeps the pages of its
snapshot from being reused, and bbolt cannot grow its memory map while one is
open, so a long View can make the file grow and stall Updates; keep Views
short, and never wait for an Update from inside a View.

Errors never carry key or value bytes, which may be sensitive.

# Backends

Bolt (this package) is one file, one process, one writer goroutine with
group commit. pgstore.Postgres is PostgreSQL, through pgx, for many
processes on one database:

  - mapping: every bucket in one table tokenvault_kv (bucket text, key bytea,
    value bytea, primary key (bucket, key)); bytea compares bytewise, so
    ORDER BY key is Scan's byte order. NextSequence is a PostgreSQL sequence per
    bucket (nextval: no row lock, so concurrent writers do not conflict on
    it; values may skip, and need not follow commit order). The schema is created
    by the binary and versioned (tokenvault_schema_version, version 1).
  - isolation: View is a REPEATABLE READ, READ ONLY transaction (a snapshot
    from its first read); each Update is its own SERIALIZABLE transaction,
    so read-check-write functions stay correct across processes (plain
    REPEATABLE READ would miss write skew: two processes each reading that
    a key is absent and inserting different keys).
  - retries: a serialization failure, deadlock or unique violation re-runs
    the function in a new transaction (with backoff, bounded in attempts and
    by the context). The contract above (a function may run more than once)
    is what makes this safe; no grouping across callers is done.
  - context: it bounds the whole call, the commit included (Bolt ignores it
    once the function has started), so no call outlives its deadline while
    the database is unreachable.
  - errors: a failed read makes Get return nil and the View or Update return
    the error, whatever the function returned. When the connection is lost
    or the context ends while COMMIT is in flight, Update returns an error
    wrapping ErrCommitUnknown: the transaction may have committed. Callers
    must fail closed. Bolt never returns it.
*/
package store

/*
Package pgstore implements store.Store on PostgreSQL, through pgx, so that
several tokenvault processes can share one database. It passes the same
conformance suite (package storetest) as the embedded Bolt store, and like
it knows nothing of cryptography: values arrive encrypted.

# Mapping

All buckets live in one table, tokenvault_kv (bucket text, key bytea, value
bytea, primary key (bucket, key)); a bucket exists as long as it has rows.
bytea compares bytewise (memcmp, then length), so ORDER BY key is the byte
order that Tx.Scan promises, with no collation involved. Scans read pages of
rows (64 growing to 4096) rather than holding a cursor open, because the
Scan callback may run queries of its own on the same connection.
Tx.NextSequence is nextval of a PostgreSQL sequence per bucket
(tokenvault_seq_ and a hash of the bucket name, created on first use in the
transaction that needs it, continuing from the bucket's row in the
tokenvault_sequence table, where the first versions counted; that table now
names every bucket with a sequence, for Tx.Buckets; Tx.Sequence reads the
sequence, and Tx.AdvanceSequence moves it forward: with setval on a sequence
its own transaction creates, which no other can see yet (store.Copy into an
empty store), else by taking values, so that it never moves back). nextval locks no row, so
concurrent writers do not serialize on it (a counter row updated under
SERIALIZABLE would make every writer of the bucket conflict); in exchange
values of rolled-back transactions are skipped, and two concurrent
transactions may commit in the opposite order of their values. The schema is created by Open
and versioned in tokenvault_schema_version (SchemaVersion, now 1); Open
refuses a database whose schema is newer (ErrSchemaTooNew). Concurrent Opens
of one empty database are safe.

# Isolation

View runs in a REPEATABLE READ, READ ONLY transaction: a consistent snapshot
taken at its first read, which never blocks writers and never fails to
serialize. Update runs each call in its own SERIALIZABLE transaction. Plain
REPEATABLE READ would catch two transactions writing the same row, but not
write skew: two replicas each reading that a token is absent and inserting
rows under different keys (a token record and its value index), or each
reading a quota counter and writing a usage row. SERIALIZABLE detects those
too, so a function that reads, checks and writes is correct on a cluster as
it is on one process; its cost is the occasional re-run below.

SERIALIZABLE tracks reads at index-page granularity, so functions that
read and write many scattered keys (a batch of random tokens) abort each
other when their keys share B-tree pages, though they share no key. A call
whose context comes from store.WithSnapshotIsolation runs in REPEATABLE
READ instead: conflicting writes of one key still fail and re-run (a plain
INSERT of an existing key, from Tx.Insert, raises a unique violation; an
update or upsert of a row written by a concurrent transaction raises a
serialization failure), write skew does not. The vault uses it for
Tokenize and for an audit event written on its own.

# Retries

PostgreSQL aborts one of two conflicting serializable transactions with a
serialization failure (SQLSTATE 40001), a deadlock (40P01) or, for
concurrent inserts of one key, a unique violation (23505); two transactions
creating one bucket's sequence at once fail with a unique violation on the
catalog or duplicate_table (42P07). Update then runs
the function again, in a new transaction, with jittered backoff, up to
Options.MaxAttempts times and while the call's context lasts. The store
contract already allows this: a function may run more than once, and must
have no effect outside the Tx other than (re)setting its own results. A
"create only if absent" is therefore written as Get, then Insert (or Put)
if absent: the loser of a race is re-run, sees the winner's row, and does
not write.

Put, Insert and Delete are buffered and sent together, one multi-row
statement per bucket and kind (an upsert for Put, a plain INSERT for
Insert, a DELETE), before a Scan and before COMMIT. BEGIN is sent with a
transaction's first statement, in one pipelined batch (lazyTx; the
snapshot is taken at that statement either way), and the connection is
taken from the pool only then; and once a transaction has begun, its
writes are sent with COMMIT (lazyTx.CommitWith). So an Update of 100 Puts
costs two round trips (BEGIN and the writes, then COMMIT), one that reads
then writes two (BEGIN and the read, then the writes and COMMIT), a View of
one Get two (BEGIN and the read, then ROLLBACK), and a function that sends
nothing none. If that first exchange finds its pooled connection broken (a
server restart), nothing of the transaction ran, and it is sent once more
on a new connection (a first exchange never holds COMMIT). A write that the
server refuses in the writes-and-COMMIT exchange makes it skip the COMMIT:
the transaction is rolled back and, for a conflict, re-run; if that exchange
is lost, the outcome is unknown, as for a lost COMMIT. Get and
GetMany read the buffer first, so a function sees its own writes; GetMany
reads any number of keys in one statement (key = ANY($2)). ReadKey
(store.KeyReader) reads one key in a single statement outside any
transaction: one round trip. RoundTrips counts the round trips made,
through a pgx tracer.

# Errors and outages

Tx.Get has no error result: when a read fails, Get returns nil, the error is
kept, every later call on the Tx fails with it, and View or Update return it
whatever the function returned. So a function that saw a spurious "absent"
never commits, and a View's caller always learns that the read failed.

The call's context bounds everything, unlike Bolt's Update, which ignores
cancellation once the function runs: while the database is unreachable,
calls fail at once or when their context ends, never later. The pool drops
connections broken by a server restart, so the same Postgres recovers by
itself once the server is back.

When the connection is lost, the server shuts down, or the context ends
while COMMIT is in flight, the transaction may or may not have committed
(with synchronous replication, it may even be committed locally but not
yet acknowledged). Update then returns an error wrapping
store.ErrCommitUnknown, and does not retry. Callers must fail closed: not
reveal a value whose audit event may be lost, not report a write as lost
either. A COMMIT that was never sent, or that the server answered with a
rollback, is a known failure and is retried as above.

Errors never carry key or value bytes: server errors are reduced to their
severity, SQLSTATE and message (the detail of a unique violation quotes
the key).
*/
package pgstore

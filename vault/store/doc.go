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
AdvanceSequence, which never moves a sequence back) so that Copy can copy a
whole store between backends, and
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
Under load, the journal's committer can be told to wait a little for company
(Options.CommitDelay: after a group of several calls, until as many calls are
queued again, at most that long), so that more calls share one fsync.
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
(fdatasync on Linux) completed: of the journal record (below), or without
the journal of the bbolt transaction. Options.NoSync disables it, trading
durability and consistency on crash for speed; it is for tests and
benchmarks only.

Long Views hold back the file. A read transaction keeps the pages of its
snapshot from being reused, and bbolt cannot grow its memory map while one is
open, so a long View can make the file grow and stall Updates; keep Views
short, and never wait for an Update from inside a View.

Errors never carry key or value bytes, which may be sensitive.

# The journal

Inserting random keys into bbolt's B-tree under fsync is slow: each commit
rewrites every page it touched, and a commit of a few hundred random keys
touches a page per key. So by default Bolt acknowledges a write once it is
durable in an append-only journal, keeps it in memory, and merges it into the
B-tree later, in large key-sorted batches. bbolt stays the store of record;
Options.NoJournal turns the journal off (every group then commits into the
B-tree, as before).

Write path. The committer goroutine takes a group of queued Update calls (as
above) and runs their functions against the overlay: their writes go into the
active memtable, tagged with the group's sequence number, which no View can
see yet. A function that fails or panics has its own writes popped off again
(a savepoint bbolt lacks), so with the journal no function is ever re-run.
The group's writes are then encoded as one journal record, written with one
write and one fdatasync; only then is the group's sequence number published
to readers and are the callers answered. The file is written ahead of its
records with zeros, a MiB at a time, so that a record overwrites blocks the
file already has: an fdatasync that must also commit a new file size costs
several times the CPU and latency of one that need not, and this way one in a
MiB of records pays it. A group whose functions wrote
nothing is answered without touching the disk.

Journal files and records. The journal is a series of files next to the
bbolt file, FILE.journal.ID (ID: 16 hex digits, increasing). Each starts with
a header (magic, the store's random id, kept in bbolt, and the file id, with
a CRC32C) and holds records framed by their length and the CRC32C
(Castagnoli) of their payload: the group's sequence number and its
operations (put, delete, bucket sequence). One record is one group: it is
replayed whole or not at all.

Overlay and reads. Each journal file has a memtable: a skiplist of (bucket,
key) in byte order, each key with its versions (newest first, a delete being
a tombstone), plus a hash index for point lookups. A bucket's sequence
(NextSequence, AdvanceSequence) is one more versioned key of the bucket, with an
empty user key (which no caller can use), so it too is read as of the
snapshot and merged with the bucket's keys. It has one writer (the
committer) and lock-free readers. A key new to the memtable goes into the
hash index at once, but into the skiplist only when its group ends, with
the group's other new keys, sorted, each searched for from the position of
the one before (a finger search), before the group is published: no
snapshot can see their versions earlier, and a Scan or Buckets inside an
Update links them first, so that it sees its group's writes in order.
A memtable's nodes, versions, keys and values live in chunked arenas of
pointer-free types and refer to each other by integer handles, so the
garbage collector does not scan them (see memtable.go for the memory
model).

A View opens a bbolt read transaction, reads from it the merged position
(below), then takes the list of memtables not merged into that transaction
and the last published sequence number: Get and GetMany look in the
memtables newest first, then in bbolt; Scan merges the memtables' and
bbolt's keys in order, the newest version of a key winning and tombstones
hiding it. Snapshots are exact: a View sees every group published before it
began and nothing after, as with plain bbolt. Update functions read the same
way, with their group's own pending writes included. The functions of a
group share one bbolt read transaction, so a key that one of their reads
found missing from bbolt is remembered for the group, and a create-only
Insert of it looks only in the overlay.

The key filter. Most reads that reach bbolt under tokenize are of keys that
are not there (the index entry of a new value, the candidate token), and a
miss costs a full B-tree descent. A journaled store keeps a Bloom filter of
bbolt's keys (a split block filter, 8 bits per key of capacity, built for
twice the keys found: 2 bytes per key right after a build, and 4 while the
next one is built; measured, 1 in 800 absent keys answered "maybe" right
after a build, 1 in 30 when it is full); a key it has not seen is absent without a
descent. It must never answer "absent" for a key a snapshot can see, which
rests on three rules (keyfilter.go): every merge adds the keys it writes
(with the generation they went into: see Generations), before it commits, to the filter in use and to the one being built; a build
installs its filter before reading bbolt, reads every key in chunks of one
short read transaction each (a long one would hold off bbolt's file growth),
and is valid from the merged position of its last chunk; a snapshot uses the
filter only if its bbolt transaction is at that position or later. Deleted
keys stay in it (they cost a descent). It is built in the background at
Open (sized from the estimate of the keys the last merge with a filter kept
in the file, or, without one, after a first pass that counts the keys; a
serving store also maps its file in at once, MAP_POPULATE on Linux, since
that build reads every page), and again when full (as many
keys merged since its build, new or overwritten, as it can hold beyond those
it found) or stale (the estimated keys fell under a quarter of those found),
sized for twice the keys then estimated: those found, plus the keys merges
added that it had not seen, minus the deletes of keys it had; a build whose
keys fill more than three quarters of it, or less than a quarter, is redone
with the count. Until the first build ends, reads descend as before.
Options.NoKeyFilter turns it off.
TestKeyFilterNeverHidesAKey and TestKeyFilterSnapshotBeforeDelete test the
rules against merges, builds and deletes racing the reads; each of the rules
broken makes one of them fail.

Generations. A merge of random keys into one large B-tree touches about one
leaf page per key, and bbolt seeks from the root and unpacks every page it
touches, so the cost of a merged key grew with the store (at 10 million
tokens, 3.1 times the CPU per key of an empty store: BENCHMARKS.md). So a
bucket is one bbolt bucket, its base, only until 2^20 new keys were put
into it; the next new key begins generation 1, a bbolt bucket of its own
named after the bucket (a name no Bucket can have), and so on: new keys go
into the newest generation, whose B-tree stays small, and the older ones
are not rewritten. A key already stored stays in its generation: Put
overwrites it there and Delete removes it there, so a key is in one
generation only. The key filter tells which generations may hold a key:
each generation sets its own bits in the key's one block, so one cache
line answers for all of them, a read of an absent key descends no B-tree
and a read of a present key about one (BenchmarkGetGenerations: the same
cost per key with 8 generations as with one tree), and a merge puts a new
key into the newest generation without a read. Without the filter (before
its first build, with NoKeyFilter, in recovery and on the plain path),
reads and merges look in every generation, newest first. The count of new
keys in the newest generation is kept in the journal's bucket, written in
the same transaction; deletes do not lower it. Scan merges the
generations' keys in order; the base holds the bucket's sequence. Generations are never removed, so a reader
finds them by name (generation n+1 exists only if n does), and a file
written before generations existed is read as it is: its buckets are their
base, taking new keys until 2^20 more were put into it. The plain path
(Options.NoJournal) and recovery write the same layout.
TestGenerationsKeepEachKeyOnce checks, with the file in hand, that a random
mix of puts, overwrites and deletes leaves every key in one generation
only, with and without the filter and the journal; the conformance suite
also runs on generations of three keys.

Merging and rotation. When the active memtable passes a quarter of
Options.JournalMemory (or a second after the last merge, if it holds
anything), the committer freezes it: it creates the next journal file
(header written and synced, directory synced) and starts a new memtable; the
old file gets no more writes. A merger goroutine writes the frozen
memtables into bbolt in one read-write transaction, in key order, and in the
same transaction records the merged position (the last merged file's id and
size) in a bucket of its own; after the commit it drops those memtables
and deletes their files. If the overlay holds more than JournalMemory,
Update calls wait for the merge (back-pressure).

Recovery. Open reads the merged position from bbolt, deletes journal files
at or before it (merged, but not yet deleted when the process stopped), and
replays the later ones in order into memtables, which it merges into bbolt
in one transaction that records the new position, before deleting the
files. In the last file, a record that is incomplete or fails its checksum
(and is followed by nothing but zeros) is a torn tail, the write of a group
that was never acknowledged: it and anything after it are ignored; the zeros
written ahead of the records read the same way. Only the last file may end
in zeros: a rotation cuts the old file's zeros off, durably, before it
creates the next file. A bad
record anywhere else, a header of another store, or records out of sequence
are corruption: Open fails with ErrCorrupt instead of dropping acknowledged
writes. Open does this whether or not the journal is on, so a store can be
reopened with Options.NoJournal.

Guarantees. An acknowledged Update is in an fsynced journal record or in the
bbolt file; a crash at any point (tested with failpoints at every step of the
write path, rotation, merge and recovery, in TestCrashPoints) loses none,
and each group is replayed whole or not at all. Close merges everything and
deletes the journal, so a cleanly closed store is one self-contained bbolt
file; if that merge fails, the journal stays and the next Open replays it.
Snapshot (online backup) merges everything committed before it first, so
the copy needs no journal. If a journal write or fsync fails, the callers of
that group get an error wrapping ErrCommitUnknown (the record may have
reached the disk) and the store refuses further writes until it is reopened.
Memory: the overlay is bounded by JournalMemory (256 MiB by default), and
so is the journal replayed at Open.

# Backends

Bolt (this package) is one file (and its journal), one process, one writer
goroutine with group commit. pgstore.Postgres is PostgreSQL, through pgx, for many
processes on one database:

  - mapping: every bucket in one table tokenvault_kv (bucket text, key bytea,
    value bytea, primary key (bucket, key)); bytea compares bytewise, so
    ORDER BY key is Scan's byte order. NextSequence is a PostgreSQL sequence per
    bucket (nextval: no row lock, so concurrent writers do not conflict on
    it; values may skip, and need not follow commit order); table
    tokenvault_sequence names the buckets that have one. The schema is created
    by the binary and versioned (tokenvault_schema_version, version 1).
  - isolation: View is a REPEATABLE READ, READ ONLY transaction (a snapshot
    from its first read); each Update is its own SERIALIZABLE transaction,
    so read-check-write functions stay correct across processes (plain
    REPEATABLE READ would miss write skew: two processes each reading that
    a key is absent and inserting different keys). An Update whose context
    comes from WithSnapshotIsolation runs in REPEATABLE READ (the vault's
    Tokenize, whose create-only Inserts make racing writers collide, and an
    audit event written alone, which overwrites only its own chain's head).
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
    must fail closed. Bolt returns it only when a journal write fails.

The server opens Bolt with --data DIR (its journal: --store-journal, on by
default) and pgstore with --store postgres://…; tokenvault migrate moves a
stopped vault between them with Copy.
*/
package store

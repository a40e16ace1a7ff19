package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the bbolt file inside a data directory (--data DIR).
const FileName = "tokenvault.db"

// Defaults used by Open for zero Options fields.
const (
	DefaultMode            os.FileMode = 0o600
	DefaultTimeout                     = 1500 * time.Millisecond
	DefaultMaxGroup                    = 1024
	DefaultInitialMmapSize             = 1 << 30
	// DefaultJournalMemory is Options.JournalMemory's default.
	DefaultJournalMemory = 256 << 20

	// MaxCommitDelay is Options.CommitDelay's largest value (a longer one is
	// cut to it).
	MaxCommitDelay = 100 * time.Millisecond
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// Mode is the permission of the data file when Open creates it.
	// Zero means DefaultMode (0600: owner read/write only).
	Mode os.FileMode

	// Timeout is how long Open waits for the file lock held by another
	// process (or another open Bolt on the same file) before returning
	// ErrLocked. Zero means DefaultTimeout; a negative value means a single
	// attempt without waiting. Open never waits indefinitely.
	Timeout time.Duration

	// MaxGroup bounds the number of Update calls grouped into one
	// transaction and one commit. Zero means DefaultMaxGroup.
	MaxGroup int

	// InitialMmapSize is the initial size of the memory map, in bytes.
	// bbolt must wait for all read transactions to end before it can grow
	// the map, so while the data fits in it, open View calls never stall a
	// commit. Zero means DefaultInitialMmapSize; a negative value means
	// bbolt's default (32 KiB, doubling as the file grows). It reserves
	// address space, not memory; on Windows, though, the file is grown to
	// this size at once.
	InitialMmapSize int

	// NoSync skips the fsync on commit: a crash can lose committed data or
	// corrupt the file. Only for tests and benchmarks that measure
	// everything else; never in production.
	NoSync bool

	// NoJournal turns the journal off: every Update group is then written
	// straight into the bbolt B-tree, one bbolt commit (and fsync) per group,
	// as before the journal existed. Open still replays a journal left by an
	// earlier run. For comparison and benchmarks.
	NoJournal bool

	// NoKeyFilter turns off the journal's key filter: a Bloom filter of the
	// B-tree's keys that answers reads of absent keys (every new value a
	// tokenize looks up) without a B-tree descent. It holds 2 bytes of
	// memory per key right after a build (4 while the next is built), which
	// runs in the background at Open and when the filter is full; until the
	// first build ends, reads descend the B-tree. See keyfilter.go. A
	// short-lived Open (a copy, an offline command) should turn it off: the
	// build reads the whole file.
	NoKeyFilter bool

	// JournalMemory bounds the memory, in bytes, held by writes that are
	// durable in the journal but not yet merged into the B-tree: beyond it,
	// Update calls wait for the merge (back-pressure). A merge starts when a
	// quarter of it is in use, or a second after the last one. Zero means
	// DefaultJournalMemory.
	JournalMemory int64

	// CommitDelay is how long, at most, a busy journal committer lets the
	// next group gather company: when the group it just committed held at
	// least commitCompany calls (many callers are active), it waits until
	// as many calls as that group held are queued (their callers' next
	// calls), or CommitDelay has passed, before taking the calls queued
	// since. A journal write costs the same fsync (about 120 µs of CPU
	// on the machine of BENCHMARKS.md) for one call or a thousand, so
	// fewer, larger groups leave more CPU to the callers (PostgreSQL's
	// commit_delay does the same). A call among few callers is committed at
	// once. Zero (the default) never waits: under CPU-bound batch reveals a
	// millisecond saves CPU, but callers of single items that leave CPU to
	// spare see the millisecond in their latency (BENCHMARKS.md). At most
	// MaxCommitDelay (Close may wait that long for a waiting group).
	CommitDelay time.Duration

	// For tests: failpoint is called at each named step of the write path,
	// merge, rotation and recovery (see journal.go and journaled.go); an
	// error it returns at a merge's "writing" step fails that merge. And
	// mergeInterval replaces the one-second merge interval. filterMin and
	// filterChunk replace keyFilterMinKeys and keyFilterChunk; with
	// filterChurn, the key filter is built again after every merge.
	// genKeys replaces defaultGenKeys (generations.go).
	failpoint              func(step string) error
	mergeInterval          time.Duration
	filterMin, filterChunk int
	filterChurn            bool
	genKeys                int
}

// Bolt is a Store backed by a single bbolt file and, unless
// Options.NoJournal is set, its journal (files next to it: see doc.go).
// Only one Bolt (in one process) can have a file open at a time; see
// ErrLocked.
//
// Update calls are run by a single committer goroutine that groups all
// calls queued while the previous commit was running into one transaction
// with one fsync (group commit): a journal record, or without the journal a
// bbolt read-write transaction. A call that finds the committer idle is
// committed at once, without waiting for company.
type Bolt struct {
	db       *bolt.DB
	path     string
	maxGroup int
	genKeys  int      // new keys per generation (0: defaultGenKeys)
	j        *journal // nil with Options.NoJournal

	mu        sync.Mutex
	cond      sync.Cond // signalled when queue grows or closed is set; uses mu
	queue     []*request
	want      int           // under mu: the journal's committer awaits company until queue holds want (0: not waiting)
	company   chan struct{} // under mu: closed when queue reaches want
	closed    bool          // under mu: no more requests are accepted
	freezeReq bool          // under mu: the journal's active memtable is to be frozen
	isDone    atomic.Bool   // mirror of closed, read without mu by View
	stopped   chan struct{} // closed when the committer goroutine has exited

	closeOnce sync.Once
	closeErr  error

	stats struct {
		commits, committed, failed, rollbacks, reruns, waits, timedOut atomic.Uint64
	}
}

var _ Store = (*Bolt)(nil)

// Open opens the bbolt store at path, creating the file (with Options.Mode)
// if it does not exist. If another process holds the file, Open returns an
// error wrapping ErrLocked after Options.Timeout.
func Open(path string, opts Options) (*Bolt, error) {
	if opts.Mode == 0 {
		opts.Mode = DefaultMode
	}
	switch {
	case opts.Timeout == 0:
		opts.Timeout = DefaultTimeout
	case opts.Timeout < 0:
		opts.Timeout = -1 // bbolt: nonzero and already expired: try once.
	}
	if opts.MaxGroup <= 0 {
		opts.MaxGroup = DefaultMaxGroup
	}
	switch {
	case opts.InitialMmapSize == 0:
		opts.InitialMmapSize = DefaultInitialMmapSize
	case opts.InitialMmapSize < 0:
		opts.InitialMmapSize = 0
	}
	bo := &bolt.Options{
		Timeout:         opts.Timeout,
		NoSync:          opts.NoSync,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: opts.InitialMmapSize,
	}
	if !opts.NoJournal && !opts.NoKeyFilter {
		// A serving store (the key filter is on in serve only) maps its
		// file in at once (Linux: MAP_POPULATE, in sequential read-ahead),
		// instead of taking a page fault at each first touch of a page:
		// the filter's first build reads every page anyway, and until it
		// ends reads look in every generation (generations.go). Measured
		// in BENCHMARKS.md ("generations").
		bo.MmapFlags = mmapPopulate
	}
	db, err := bolt.Open(path, opts.Mode, bo)
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("store: open %s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	fp := opts.failpoint
	if fp == nil {
		fp = func(string) error { return nil }
	}
	storeID, next, seq, pending, err := recoverJournal(db, path, fp, !opts.NoJournal, opts.genKeys)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	s := &Bolt{
		db:       db,
		path:     path,
		maxGroup: opts.MaxGroup,
		genKeys:  opts.genKeys,
		stopped:  make(chan struct{}),
	}
	s.cond.L = &s.mu
	if !opts.NoJournal {
		if s.j, err = openJournal(s, opts, storeID, next, seq, pending); err != nil {
			db.Close()
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		go s.j.committer()
		return s, nil
	}
	go s.committer()
	return s, nil
}

// Path returns the path of the data file.
func (s *Bolt) Path() string { return s.path }

// View implements Store.View.
func (s *Bolt) View(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.isDone.Load() {
		return ErrClosed
	}
	if s.j != nil {
		return s.j.view(ctx, fn)
	}
	btx, err := s.db.Begin(false)
	if err != nil {
		if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
			return ErrClosed
		}
		return fmt.Errorf("store: begin read transaction: %w", err)
	}
	defer func() { _ = btx.Rollback() }()
	t := &boltTx{g: newGroupTx(btx, s.genKeys), ctx: ctx}
	defer t.finish()
	return fn(t)
}

// Update implements Store.Update.
func (s *Bolt) Update(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{ctx: ctx, fn: fn, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.queue = append(s.queue, r)
	s.cond.Signal()
	if s.want > 0 && len(s.queue) >= s.want {
		close(s.company)
		s.want, s.company = 0, nil
	}
	s.mu.Unlock()

	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(stateQueued, stateCanceled) {
			// The committer will skip r: it never ran and never will.
			return ctx.Err()
		}
		// The committer has claimed r: its result stands.
		<-r.done
		return r.err
	}
}

// Close implements Store.Close: it stops accepting Update calls, waits for
// the queued ones to be committed, stops the committer goroutine, merges the
// journal into the B-tree and removes it (if that fails, the journal stays
// and the next Open replays it), and then closes the file, waiting for
// running View calls to finish.
func (s *Bolt) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.isDone.Store(true)
		s.cond.Broadcast()
		if s.company != nil { // the committer awaits company: nobody more is coming
			close(s.company)
			s.want, s.company = 0, nil
		}
		s.mu.Unlock()
		<-s.stopped
		var errs []error
		if s.j != nil {
			errs = append(errs, s.j.close())
		}
		errs = append(errs, s.db.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return s.closeErr
}

// Check runs bbolt's consistency check of the whole file. It returns nil if
// the file is consistent, an error wrapping ErrCorrupt and the problems found
// if not, and ErrClosed after Close. It reads every page, in a read-write
// transaction that it rolls back (bbolt's check is not safe alongside a
// concurrent writer): Update calls wait while it runs, and it is slow on
// large files.
func (s *Bolt) Check() error {
	if s.isDone.Load() {
		return ErrClosed
	}
	var problems []error
	btx, err := s.db.Begin(true)
	if err == nil {
		// Drain the channel fully: the checker goroutine reads the
		// transaction's pages until it closes the channel.
		for err := range btx.Check() {
			problems = append(problems, err)
		}
		err = btx.Rollback()
	}
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	if err != nil {
		return fmt.Errorf("store: check: %w", err)
	}
	if len(problems) == 0 {
		return nil
	}
	const show = 10
	n := len(problems)
	if n > show {
		problems = append(problems[:show], fmt.Errorf("... and %d more", n-show))
	}
	return fmt.Errorf("%w: %d problems: %w", ErrCorrupt, n, errors.Join(problems...))
}

// Stats are counters of a Bolt since Open, and the size of its data.
type Stats struct {
	// Commits is the number of read-write transactions committed, each with
	// one fsync. With group commit it is lower than Committed.
	Commits uint64
	// Committed is the number of Update calls whose writes were committed.
	Committed uint64
	// Failed is the number of Update calls whose function returned an error
	// or panicked, or whose commit failed.
	Failed uint64
	// Rollbacks is the number of group transactions rolled back because a
	// function failed after writing (or panicked); with the journal, the
	// number of such functions whose writes alone were undone.
	Rollbacks uint64
	// Reruns is the number of times a function was run again after such a
	// rollback (never with the journal, which undoes one function's writes
	// without touching the others').
	Reruns uint64
	// Waits is the number of groups that waited for company before
	// committing (Options.CommitDelay), and WaitsTimedOut those of them
	// whose company did not come within the delay.
	Waits, WaitsTimedOut uint64
	// Merges is the number of merges of the journal into the B-tree, and
	// MergedKeys the keys they wrote.
	Merges, MergedKeys uint64
	// Overlay is the memory held by writes not yet merged, in bytes
	// (an estimate).
	Overlay int64
	// KeyFilterBytes is the memory held by the key filters (the one in use
	// and the one being built), KeyFilterSkips the B-tree reads they
	// answered (the key was absent), KeyFilterBuilds the builds completed.
	KeyFilterBytes                  int64
	KeyFilterSkips, KeyFilterBuilds uint64
	// Size is the size of the data in the file, in bytes (bbolt Tx.Size),
	// plus the journal not yet merged; 0 after Close.
	Size int64
}

// Stats returns the counters of s and the current data size. It is cheap:
// it opens a read-only transaction but reads no pages.
func (s *Bolt) Stats() Stats {
	st := Stats{
		Commits:       s.stats.commits.Load(),
		Committed:     s.stats.committed.Load(),
		Waits:         s.stats.waits.Load(),
		WaitsTimedOut: s.stats.timedOut.Load(),
		Failed:        s.stats.failed.Load(),
		Rollbacks:     s.stats.rollbacks.Load(),
		Reruns:        s.stats.reruns.Load(),
	}
	if s.j != nil {
		st.Merges, st.MergedKeys = s.j.merges.Load(), s.j.mergedKeys.Load()
		k := &s.j.filters
		st.KeyFilterSkips, st.KeyFilterBuilds = k.skipped.Load(), k.builds.Load()
		for _, f := range []*keyFilter{k.inUse.Load(), k.building.Load()} {
			if f != nil {
				st.KeyFilterBytes += 4 * int64(len(f.words))
			}
		}
		for _, m := range s.j.state.Load().layers {
			st.Overlay += m.bytes.Load()
			st.Size += m.fileBytes.Load()
		}
	}
	if !s.isDone.Load() {
		_ = s.db.View(func(tx *bolt.Tx) error {
			st.Size += tx.Size()
			return nil
		})
	}
	return st
}

package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// The journaled write path of Bolt (design in doc.go, "The journal").

// journal is the state of a journaled Bolt.
type journal struct {
	s        *Bolt
	db       *bolt.DB
	path     string
	storeID  [16]byte
	noSync   bool
	delay    time.Duration // Options.CommitDelay, resolved (0: none)
	limit    int64         // back-pressure: overlay bytes above which writers wait
	freezeAt int64         // the active memtable is frozen (and merged) past this size
	interval time.Duration
	fp       func(string) error

	// state is the overlay: memtables, oldest first; the last is the active
	// one. Replaced (never modified) by freeze and merge.
	state atomic.Pointer[jstate]
	// visible is the sequence number of the last group durably committed.
	visible atomic.Uint64

	// Owned by the committer goroutine (and by Close once it has stopped).
	f          *os.File // the active journal file
	off        int64    // where its records end
	filled     int64    // its size: records, then zeros written ahead of them (extend)
	zeros      []byte   // journalChunk zero bytes, for extend
	appendOnly bool     // extend failed (no room): the file's records are appended instead
	seq        uint64   // last group sequence number used
	g          jgroup

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every freeze, merge and failure
	failed   error         // a journal write failed: no more writes are taken
	mergeErr error

	kick       chan struct{} // wakes the merger: a memtable was frozen
	quit       chan struct{} // closed by Close: the merger stops
	hadGens    bool          // a bucket had generations at Open (see awaitFilter)
	mergerDone chan struct{}

	merges, mergedKeys atomic.Uint64
	filters            keyFilters // the key filter (keyfilter.go); unused with Options.NoKeyFilter
}

type jstate struct {
	layers []*memtable
}

func (st *jstate) active() *memtable { return st.layers[len(st.layers)-1] }

// openJournal starts the journal of s; recovery has run. pending are the
// memtables recovery could not merge (their files are still there): they
// are served from memory and merged in the background. If the first
// journal file cannot be created (a full disk), the store opens for reads
// and refuses writes.
func openJournal(s *Bolt, opts Options, storeID [16]byte, next, seq uint64, pending []*memtable) (*journal, error) {
	limit := opts.JournalMemory
	if limit <= 0 {
		limit = DefaultJournalMemory
	}
	j := &journal{
		s: s, db: s.db, path: s.path, storeID: storeID, noSync: opts.NoSync,
		limit: limit, freezeAt: max(limit/4, 1), interval: time.Second, fp: opts.failpoint,
		seq:     seq,
		changed: make(chan struct{}), kick: make(chan struct{}, 1),
		quit: make(chan struct{}), mergerDone: make(chan struct{}),
	}
	if j.fp == nil {
		j.fp = func(string) error { return nil }
	}
	if opts.mergeInterval > 0 {
		j.interval = opts.mergeInterval
	}
	if opts.CommitDelay > 0 {
		j.delay = min(opts.CommitDelay, MaxCommitDelay)
	}
	j.visible.Store(seq)
	if f, err := j.create(next); err != nil {
		j.failed = err
	} else {
		j.f, j.off, j.filled = f, journalHeaderSize, journalHeaderSize
	}
	j.state.Store(&jstate{layers: append(pending, newMemtable(next))})
	_ = j.db.View(func(btx *bolt.Tx) error {
		return btx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			if _, gen := splitGenName(name); gen > 0 {
				j.hadGens = true
			}
			return nil
		})
	})
	j.startFilters(opts)
	go j.merger()
	return j, nil
}

// create creates journal file id, with its header, durably (file and
// directory entry synced).
func (j *journal) create(id uint64) (*os.File, error) {
	path := journalPath(j.path, id)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, DefaultMode)
	if err != nil {
		return nil, fmt.Errorf("store: journal: %w", err)
	}
	j.fp("rotate.created")
	_, err = f.Write(journalHeader(j.storeID, id))
	j.fp("rotate.header")
	if err == nil && !j.noSync {
		err = f.Sync()
		if err == nil {
			err = syncDir(filepath.Dir(path))
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: journal: %w", err)
	}
	return f, nil
}

// journalChunk is how far a journal file is extended ahead of its records, with zeros.
//
// An fdatasync after an append that grows the file must also commit the file's new size (on
// ext4 a journal transaction of its own), which costs several times the CPU and latency of
// one after an overwrite of blocks the file already has. So the committer writes zeros ahead
// of its records, a chunk at a time, and each group's record overwrites them: one fdatasync in
// journalChunk/record-size commits metadata. The zeros after the last record are what a torn
// tail already looks like to recovery (loadJournal); only the last file may have them, so
// freeze cuts them off before the next file exists.
const journalChunk = 1 << 20

// extend writes zeros from the end of the active file to past end, journalChunk at a time.
// They reach the disk with the next fdatasync. Committer only.
func (j *journal) extend(end int64) error {
	if j.zeros == nil {
		j.zeros = make([]byte, journalChunk)
	}
	for j.filled < end {
		j.filled += journalChunk // also when the write fails: some of it may be in the file
		if _, err := j.f.WriteAt(j.zeros, j.filled-journalChunk); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// notify wakes everyone waiting on j.changed. Call with j.mu held.
func (j *journal) notify() {
	close(j.changed)
	j.changed = make(chan struct{})
}

func (j *journal) failure() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed
}

// fail makes the journal refuse all further writes.
func (j *journal) fail(err error) {
	j.mu.Lock()
	if j.failed == nil {
		j.failed = err
	}
	j.notify()
	j.mu.Unlock()
}

// snapshot is a consistent read state: a bbolt read transaction and the
// memtables not merged into it, read as of sequence number at.
type snapshot struct {
	btx     *bolt.Tx
	layers  []*memtable // newest first
	at      uint64
	gens    map[Bucket]*gens // opened buckets; nil for those absent
	filter  *keyFilter       // nil: none may be used
	filters *keyFilters
	skipped uint64 // reads the filter answered
}

// begin opens a snapshot. The bbolt transaction is begun first, then the
// overlay is read: every memtable merged into bbolt after the transaction
// began is still in the overlay then, unless it was also removed, which
// begin detects (the oldest memtable is newer than the transaction's merged
// position) and retries. Memtables merged before the transaction began were
// frozen before, so their writes are all visible at the sequence number read
// last (a merge never carries writes a snapshot must not see).
func (j *journal) begin(writer bool) (*snapshot, error) {
	for {
		btx, err := j.db.Begin(false)
		if err != nil {
			if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
				return nil, ErrClosed
			}
			return nil, fmt.Errorf("store: begin read transaction: %w", err)
		}
		merged := mergedFile(btx)
		st := j.state.Load()
		at := j.visible.Load()
		if writer {
			at = math.MaxUint64
		}
		if st.layers[0].id > merged+1 {
			_ = btx.Rollback() // a merge went by: try again
			continue
		}
		sn := &snapshot{btx: btx, at: at, filters: &j.filters}
		_ = j.fp("snapshot.begun")
		sn.filter = j.filters.forSnapshot(merged) // after btx began: see keyfilter.go
		for i := len(st.layers) - 1; i >= 0 && st.layers[i].id > merged; i-- {
			sn.layers = append(sn.layers, st.layers[i])
		}
		return sn, nil
	}
}

func (sn *snapshot) release() {
	_ = sn.btx.Rollback()
	if sn.skipped > 0 {
		sn.filters.skipped.Add(sn.skipped)
		sn.skipped = 0
	}
}

// boltGet reads key of bucket b from the snapshot's B-trees, nil if absent;
// ck is its composite key. A key the filter has not seen is absent.
func (sn *snapshot) boltGet(b Bucket, key, ck []byte) []byte {
	g := sn.bucket(b)
	if g == nil {
		return nil
	}
	if sn.filter == nil {
		v, _ := g.get(key, keyProbe{})
		return v
	}
	v, read := g.get(key, sn.filter.probe(ck))
	if !read {
		sn.skipped++
	}
	return v
}

// bucket returns bucket b's B-trees in the snapshot, nil if it has none.
func (sn *snapshot) bucket(b Bucket) *gens {
	g, ok := sn.gens[b]
	if ok {
		return g
	}
	g = openGens(sn.btx, []byte(b))
	if sn.gens == nil {
		sn.gens = make(map[Bucket]*gens)
	}
	sn.gens[b] = g
	return g
}

// view implements Bolt.View for a journaled store.
func (j *journal) view(ctx context.Context, fn func(Tx) error) error {
	sn, err := j.begin(false)
	if err != nil {
		return err
	}
	defer sn.release()
	t := &jTx{sn: sn, ctx: ctx}
	defer t.finish()
	return fn(t)
}

// jgroup is the group in flight: its writes are in the active memtable with
// sequence number seq, not yet visible to Views.
type jgroup struct {
	mem  *memtable
	seq  uint64
	undo []undoEntry
	rec  []byte // the journal record: frame header space, then the payload
	sn   *snapshot
	// absent are the keys that reads of the group found missing from sn's
	// bbolt transaction (not from the overlay, which the group changes).
	absent absentSet
}

// absentSet is a set of composite keys, reused from group to group. Its
// slots and key bytes hold no pointers: nothing for the GC to scan.
type absentSet struct {
	seed  maphash.Seed
	slots []absentSlot // open addressing; a power of two
	n     int
	keys  []byte // the keys' bytes, back to back
}

type absentSlot struct {
	hash     uint64 // 0: empty
	off, len uint32 // the key: keys[off : off+len]
}

func (s *absentSet) reset() {
	if s.n > 0 {
		clear(s.slots)
		s.n = 0
	}
	s.keys = s.keys[:0]
}

func (s *absentSet) add(ck []byte) {
	if s.slots == nil {
		s.seed = maphash.MakeSeed()
		s.slots = make([]absentSlot, 1024)
	}
	if s.n >= len(s.slots)/2 {
		old := s.slots
		s.slots = make([]absentSlot, 2*len(old))
		for _, sl := range old {
			if sl.hash != 0 {
				*s.slot(sl.hash, nil) = sl
			}
		}
	}
	h := maphash.Bytes(s.seed, ck) | 1
	if sl := s.slot(h, ck); sl.hash == 0 {
		*sl = absentSlot{hash: h, off: uint32(len(s.keys)), len: uint32(len(ck))}
		s.keys = append(s.keys, ck...)
		s.n++
	}
}

// slot returns the slot of ck (hash h), or the empty slot where it goes.
// With ck nil, the first empty slot for h.
func (s *absentSet) slot(h uint64, ck []byte) *absentSlot {
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		sl := &s.slots[i]
		if sl.hash == 0 || ck != nil && sl.hash == h && bytes.Equal(s.keys[sl.off:sl.off+sl.len], ck) {
			return sl
		}
	}
}

func (s *absentSet) has(ck []byte) bool {
	if s.n == 0 {
		return false
	}
	return s.slot(maphash.Bytes(s.seed, ck)|1, ck).hash != 0
}

// undoEntry is a version pushed on n by the group in flight.
type undoEntry struct {
	n nodeRef
}

// rollbackTo undoes the group's writes after the marks.
func (j *journal) rollbackTo(g *jgroup, undo, rec int) {
	for i := len(g.undo) - 1; i >= undo; i-- {
		g.mem.pop(g.undo[i].n)
	}
	clear(g.undo[undo:])
	g.undo = g.undo[:undo]
	g.rec = g.rec[:rec]
}

// abort ends the group in flight after runtime.Goexit on the committer.
func (j *journal) abort(batch []*request, err error) {
	g := &j.g
	if g.mem != nil {
		j.rollbackTo(g, 0, frameHeaderSize)
		g.mem.link()
	}
	if g.sn != nil {
		g.sn.release()
		g.sn = nil
	}
	for _, r := range batch {
		if r.state.Load() == stateClaimed && !r.answered {
			j.s.stats.failed.Add(1)
			r.err, r.answered = err, true
			close(r.done)
		}
	}
}

// committer is the journaled store's committer goroutine.
func (j *journal) committer() {
	s := j.s
	normal := false
	var batch []*request
	defer func() {
		if normal {
			close(s.stopped)
			return
		}
		j.abort(batch, errGoexit)
		go j.committer()
	}()
	var buf []*request
	last := 0             // the size of the last group while callers keep coming (Options.CommitDelay)
	var lastEnd time.Time // when the last group was answered (with a delay only)
	var timer *time.Timer // for the waits
	for {
		var freeze, ok bool
		batch, freeze, ok = s.nextJournaled(buf[:0])
		if freeze {
			j.freeze()
		}
		if !ok {
			normal = true
			return
		}
		if len(batch) > 0 {
			if j.delay > 0 {
				if time.Since(lastEnd) > j.delay {
					last = 0 // the queue stayed empty longer than the delay: the burst is over
				}
				// After a group with company, wait for as much company again.
				if want := min(last, s.maxGroup); want >= commitCompany && len(batch) < want {
					if timer == nil {
						timer = time.NewTimer(j.delay)
					} else {
						timer.Reset(j.delay)
					}
					batch = s.awaitCompany(batch, want, timer)
					timer.Stop()
				}
				last = len(batch)
			}
			j.backpressure()
			j.run(batch)
			if j.delay > 0 {
				lastEnd = time.Now()
			}
			if j.g.mem.bytes.Load() >= j.freezeAt || j.g.mem.full() {
				j.freeze()
			}
		}
		clear(batch)
		buf, batch = batch, nil
	}
}

// nextJournaled is next, returning also when a freeze is requested.
func (s *Bolt) nextJournaled(buf []*request) (batch []*request, freeze, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) == 0 && !s.freezeReq {
		if s.closed {
			return nil, false, false
		}
		s.cond.Wait()
	}
	freeze, s.freezeReq = s.freezeReq, false
	return s.takeQueued(buf), freeze, true
}

// commitCompany is the size of a group after which the committer waits
// Options.CommitDelay before the next: so many calls at once mean many
// callers, whose next calls are on their way.
const commitCompany = 4

// awaitCompany waits until want calls are at hand (batch and the queue) or
// timer fires, whichever comes first, then appends what was queued to batch
// (up to maxGroup in all). The last group's size is the company expected: its
// callers' next calls are on their way. Waiting for them, not for a fixed
// time, leaves no CPU idle once they are here. It counts a wait in
// Stats.Waits when it had to wait.
func (s *Bolt) awaitCompany(batch []*request, want int, timer *time.Timer) []*request {
	s.mu.Lock()
	defer s.mu.Unlock()
	if need := want - len(batch); len(s.queue) < need && !s.closed {
		ch := make(chan struct{})
		s.want, s.company = need, ch
		s.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			s.stats.timedOut.Add(1)
		}
		s.mu.Lock()
		s.want, s.company = 0, nil
		s.stats.waits.Add(1)
	}
	return s.takeQueued(batch)
}

// requestFreeze asks the committer to freeze the active memtable.
func (s *Bolt) requestFreeze() {
	s.mu.Lock()
	s.freezeReq = true
	s.cond.Signal()
	s.mu.Unlock()
}

// overlayBytes is the memory held by the memtables.
func (st *jstate) overlayBytes() int64 {
	var n int64
	for _, m := range st.layers {
		n += m.bytes.Load()
	}
	return n
}

// backpressure waits while the overlay holds more than the limit.
func (j *journal) backpressure() {
	for {
		j.mu.Lock()
		ch, failed := j.changed, j.failed
		j.mu.Unlock()
		if failed != nil || j.state.Load().overlayBytes() <= j.limit {
			return
		}
		<-ch
	}
}

// run runs one group: every function in one write state over the overlay,
// then one journal record and one fsync, then the answers.
func (j *journal) run(batch []*request) {
	s := j.s
	live := batch[:0:0]
	for _, r := range batch {
		if !r.state.CompareAndSwap(stateQueued, stateClaimed) {
			continue
		}
		if err := r.ctx.Err(); err != nil {
			answer(r, err)
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	if err := j.failure(); err != nil {
		for _, r := range live {
			s.stats.failed.Add(1)
			answer(r, fmt.Errorf("store: the journal refuses writes since an earlier failure (reopen the store): %w", err))
		}
		return
	}
	sn, err := j.begin(true)
	if err != nil {
		for _, r := range live {
			s.stats.failed.Add(1)
			answer(r, err)
		}
		return
	}
	g := &j.g
	g.mem, g.seq, g.sn = j.state.Load().active(), j.seq+1, sn
	g.absent.reset()
	g.rec = append(g.rec[:0], make([]byte, frameHeaderSize)...)
	g.rec = appendUint64(g.rec, g.seq)
	ok := live[:0]
	for _, r := range live {
		if err := j.call(g, r); err != nil {
			s.stats.failed.Add(1)
			answer(r, err)
			continue
		}
		ok = append(ok, r)
	}
	g.sn = nil
	sn.release()
	// Before the group is published (or, on failure, while its versions
	// are undone), its new keys join the skiplist.
	g.mem.link()
	if len(g.undo) == 0 {
		// Nothing written: nothing to make durable.
		s.stats.committed.Add(uint64(len(ok)))
		for _, r := range ok {
			answer(r, nil)
		}
		return
	}
	rec := frame(g.rec)
	if end := j.off + int64(len(rec)); end > j.filled && !j.appendOnly {
		if j.extend(end) != nil {
			// No room to write ahead (a nearly full disk): append this file's records, as
			// long as they fit. The zeros that were written are cut off at the freeze.
			j.appendOnly = true
		}
		j.fp("journal.extended")
	}
	j.fp("journal.write")
	_, err = j.f.WriteAt(rec, j.off)
	j.fp("journal.written")
	if err == nil && !j.noSync {
		err = fdatasync(j.f)
	}
	if err != nil {
		// The record may or may not be on disk: fail closed, for good.
		j.fail(err)
		err = fmt.Errorf("%w: store: journal write: %w", ErrCommitUnknown, err)
		j.rollbackTo(g, 0, frameHeaderSize)
		for _, r := range ok {
			s.stats.failed.Add(1)
			answer(r, err)
		}
		return
	}
	j.fp("journal.synced")
	j.off += int64(len(rec))
	j.seq = g.seq
	clear(g.undo)
	g.undo = g.undo[:0]
	g.mem.records.Add(1)
	g.mem.fileBytes.Store(j.off)
	j.visible.Store(g.seq)
	s.stats.commits.Add(1)
	s.stats.committed.Add(uint64(len(ok)))
	for _, r := range ok {
		answer(r, nil)
	}
}

func appendUint64(b []byte, v uint64) []byte {
	return append(b, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func answer(r *request, err error) {
	r.err, r.answered = err, true
	close(r.done)
}

// call runs r.fn in the group. If it fails or panics, its writes are undone
// (and only its writes).
func (j *journal) call(g *jgroup, r *request) (err error) {
	t := &jTx{sn: g.sn, writable: true, j: j, g: g}
	undo, rec := len(g.undo), len(g.rec)
	defer func() {
		t.finish()
		if p := recover(); p != nil {
			err = &panicError{value: p, stack: debug.Stack()}
		}
		if err != nil && len(g.undo) > undo {
			j.rollbackTo(g, undo, rec)
			j.s.stats.rollbacks.Add(1)
		}
	}()
	return r.fn(t)
}

// freeze makes the active memtable immutable and starts a new one on a new
// journal file; the merger takes it from there. Committer only.
func (j *journal) freeze() {
	st := j.state.Load()
	old := st.active()
	if old.records.Load() == 0 || j.failure() != nil {
		return
	}
	j.fp("rotate.begin")
	// Only the last journal file may end in zeros (a torn tail): cut the old file's zeros
	// off, durably, before there is a next file.
	if j.filled > j.off {
		err := j.f.Truncate(j.off)
		if err == nil && !j.noSync {
			err = j.f.Sync()
		}
		if err != nil {
			j.fail(fmt.Errorf("store: journal: %w", err))
			return
		}
		j.filled = j.off
	}
	j.fp("rotate.truncated")
	f, err := j.create(old.id + 1)
	if err != nil {
		j.fail(err)
		return
	}
	old.endOff = j.off
	j.f.Close()
	j.f, j.off, j.filled, j.appendOnly = f, journalHeaderSize, journalHeaderSize, false
	layers := append(slices.Clip(st.layers), newMemtable(old.id+1))
	j.mu.Lock()
	j.state.Store(&jstate{layers: layers})
	j.notify()
	j.mu.Unlock()
	select {
	case j.kick <- struct{}{}:
	default:
	}
	j.fp("rotate.done")
}

// merger merges frozen memtables into bbolt until the journal is closed.
func (j *journal) merger() {
	defer close(j.mergerDone)
	tick := time.NewTicker(j.interval)
	defer tick.Stop()
	j.awaitFilter()
	for {
		st := j.state.Load()
		if frozen := st.layers[:len(st.layers)-1]; len(frozen) > 0 {
			if err := j.merge(frozen); err != nil {
				select { // retry later
				case <-j.quit:
					return
				case <-time.After(time.Second):
				}
			}
			continue
		}
		select {
		case <-j.quit:
			return
		case <-j.kick:
		case <-tick.C:
			if st.active().records.Load() > 0 {
				j.s.requestFreeze()
			}
		}
	}
}

// awaitFilter holds the first merges of a store that had generations when
// it opened until its key filter's first build ends (or fails, or the store
// closes): without the filter, a merge looks for every key in every
// generation, and on a large store one such merge of the journal's memory
// runs for minutes, holding back every write after it (measured: tokenize at
// 5 items/s for the first 24 s after a restart on 20 M tokens). Writes go
// on meanwhile, into the journal, up to its memory.
func (j *journal) awaitFilter() {
	k := &j.filters
	if !j.hadGens || k.off {
		return
	}
	for k.inUse.Load() == nil && k.running.Load() {
		select {
		case <-j.quit:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// merge writes the frozen memtables into bbolt in one transaction that
// records them as merged, then drops them and their journal files.
func (j *journal) merge(frozen []*memtable) error {
	k := &j.filters
	k.mergeMu.Lock()
	defer k.mergeMu.Unlock()
	btx, err := j.db.Begin(true)
	if err != nil {
		return j.mergeFailed(err)
	}
	// The filter in use is valid for btx (see keyfilter.go).
	f := k.inUse.Load()
	keys, err := mergeLayers(btx, frozen, j.fp, "merge", k.merged, f, j.s.genKeys)
	if err == nil && f != nil {
		// A full filter's estimate runs low (keys new to the B-tree no
		// longer find a bit to set): then none, and the next Open counts.
		var n uint64
		if !f.full() {
			n = f.keys()
		}
		err = writeFilterKeys(btx, n)
	}
	if err != nil {
		_ = btx.Rollback()
		return j.mergeFailed(err)
	}
	j.fp("merge.commit")
	if err := btx.Commit(); err != nil {
		return j.mergeFailed(err)
	}
	j.fp("merge.committed")
	j.mu.Lock()
	st := j.state.Load()
	rest := slices.Clone(st.layers[len(frozen):])
	if len(rest) == 0 { // Close merged the active memtable too
		rest = []*memtable{newMemtable(frozen[len(frozen)-1].id + 1)}
	}
	j.state.Store(&jstate{layers: rest})
	j.mergeErr = nil
	j.notify()
	j.mu.Unlock()
	j.merges.Add(1)
	j.mergedKeys.Add(uint64(keys))
	j.rebuildIfDue()
	for _, m := range frozen {
		if err := os.Remove(journalPath(j.path, m.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			// Harmless: the next Open removes merged files.
			continue
		}
	}
	j.fp("merge.removed")
	return nil
}

func (j *journal) mergeFailed(err error) error {
	err = fmt.Errorf("store: journal merge: %w", err)
	j.mu.Lock()
	j.mergeErr = err
	j.notify()
	j.mu.Unlock()
	return err
}

// flush makes everything committed before the call part of the bbolt file:
// it freezes the active memtable and waits for the merges.
func (j *journal) flush(ctx context.Context) error {
	target := j.state.Load().active().id
	j.s.requestFreeze()
	for {
		j.mu.Lock()
		ch, failed, mergeErr := j.changed, j.failed, j.mergeErr
		j.mu.Unlock()
		if failed != nil {
			return failed
		}
		pending := false
		for _, m := range j.state.Load().layers {
			if m.id <= target && m.records.Load() > 0 {
				pending = true
			}
		}
		if !pending {
			return nil
		}
		if mergeErr != nil {
			return mergeErr
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// close runs after the committer stopped: it merges the whole overlay, the
// active memtable included (no more writes come), into bbolt and removes
// the journal. If the merge fails, the journal stays, to be replayed by the
// next Open.
func (j *journal) close() error {
	close(j.quit)
	<-j.mergerDone
	j.filters.done.Wait() // a build stops at its next chunk
	st := j.state.Load()
	active := st.active()
	active.endOff = j.off
	var err error
	records := false
	for _, m := range st.layers {
		records = records || m.records.Load() > 0
	}
	if records {
		err = j.merge(st.layers)
	} else if j.f != nil {
		_ = os.Remove(journalPath(j.path, active.id))
	}
	if j.f != nil {
		if cerr := j.f.Close(); err == nil {
			err = cerr
		}
	}
	if ferr := j.failure(); ferr != nil {
		err = errors.Join(err, fmt.Errorf("store: the journal failed: %w", ferr))
	}
	return err
}

// jTx is the Tx of a journaled store.
type jTx struct {
	sn       *snapshot
	ctx      context.Context // View only: checked during Scan
	writable bool
	j        *journal // Update only
	g        *jgroup  // Update only
	done     bool
	scanning []Bucket
	ck       []byte
	seqBuf   [8]byte
}

var _ Tx = (*jTx)(nil)

func (t *jTx) finish() { t.done = true }

// linkPending links the group's new keys into the active memtable's
// skiplist, so that an Update's walks of the skiplist (Scan, Buckets) see
// the writes of its group, its own included.
func (t *jTx) linkPending() {
	if t.writable {
		t.g.mem.link()
	}
}

// lookup returns the newest version of key in the overlay visible to t, or
// nil, and whether the overlay decides (a version was found).
// It leaves the composite key of (b, key) in t.ck.
func (t *jTx) lookup(b Bucket, key []byte) (value []byte, found bool) {
	t.ck = compositeKey(t.ck[:0], b, key)
	for _, m := range t.sn.layers {
		if n := m.find(t.ck); n != 0 {
			if v, ok := m.visible(n, t.sn.at); ok {
				return v, true
			}
		}
	}
	return nil, false
}

func (t *jTx) get(b Bucket, key []byte) []byte {
	if v, found := t.lookup(b, key); found {
		return v
	}
	v := t.sn.boltGet(b, key, t.ck)
	if v == nil && t.writable {
		t.g.absent.add(t.ck)
	}
	return v
}

func (t *jTx) Get(b Bucket, key []byte) []byte {
	if t.done || ValidateKey(key) != nil || b.Validate() != nil {
		return nil
	}
	return t.get(b, key)
}

// GetMany returns the values of keys in bucket b, in order, nil for those
// absent; the same rules as Get apply to each.
func (t *jTx) GetMany(b Bucket, keys [][]byte) [][]byte {
	if len(keys) == 0 {
		return nil
	}
	out := make([][]byte, len(keys))
	if t.done || b.Validate() != nil {
		return out
	}
	for i, k := range keys {
		if ValidateKey(k) == nil {
			out[i] = t.get(b, k)
		}
	}
	return out
}

func (t *jTx) checkWrite(b Bucket, key []byte) error {
	return checkWrite(t.done, t.writable, t.scanning, b, key)
}

// checkWrite checks the state and arguments common to Put and Delete.
func checkWrite(done, writable bool, scanning []Bucket, b Bucket, key []byte) error {
	switch {
	case done:
		return ErrTxDone
	case !writable:
		return ErrReadOnly
	}
	if err := b.Validate(); err != nil {
		return err
	}
	if err := ValidateKey(key); err != nil {
		return err
	}
	if len(scanning) > 0 && slices.Contains(scanning, b) {
		return ErrScanMutation
	}
	return nil
}

func (t *jTx) Put(b Bucket, key, value []byte) error {
	if err := t.checkWrite(b, key); err != nil {
		return err
	}
	if err := ValidateValue(value); err != nil {
		return err
	}
	g := t.g
	t.ck = compositeKey(t.ck[:0], b, key)
	n := g.mem.upsert(t.ck)
	g.mem.push(n, g.seq, value, false)
	g.undo = append(g.undo, undoEntry{n: n})
	g.rec = appendPut(g.rec, b, key, value)
	return nil
}

func (t *jTx) Delete(b Bucket, key []byte) error {
	if err := t.checkWrite(b, key); err != nil {
		return err
	}
	if t.get(b, key) == nil {
		return nil // nothing to delete: no tombstone needed
	}
	g := t.g
	t.ck = compositeKey(t.ck[:0], b, key)
	n := g.mem.upsert(t.ck)
	g.mem.push(n, g.seq, nil, true)
	g.undo = append(g.undo, undoEntry{n: n})
	g.rec = appendDelete(g.rec, b, key)
	return nil
}

// sequence returns bucket b's sequence as t sees it: the newest version of
// its sequence key in the overlay, else bbolt's.
func (t *jTx) sequence(b Bucket) uint64 {
	if v, found := t.lookup(b, nil); found {
		return binary.BigEndian.Uint64(v)
	}
	if g := t.sn.bucket(b); g != nil {
		return g.base().Sequence()
	}
	return 0
}

// checkSequenceWrite checks the state and bucket of a sequence change.
func (t *jTx) checkSequenceWrite(b Bucket) error {
	switch {
	case t.done:
		return ErrTxDone
	case !t.writable:
		return ErrReadOnly
	}
	return b.Validate()
}

// setSequence writes bucket b's sequence: a version of its sequence key.
func (t *jTx) setSequence(b Bucket, n uint64) {
	g := t.g
	t.ck = compositeKey(t.ck[:0], b, nil)
	node := g.mem.upsert(t.ck)
	g.mem.push(node, g.seq, binary.BigEndian.AppendUint64(t.seqBuf[:0], n), false)
	g.undo = append(g.undo, undoEntry{n: node})
	g.rec = appendSequence(g.rec, b, n)
}

func (t *jTx) NextSequence(b Bucket) (uint64, error) {
	if err := t.checkSequenceWrite(b); err != nil {
		return 0, err
	}
	n := t.sequence(b) + 1
	t.setSequence(b, n)
	return n, nil
}

func (t *jTx) Sequence(b Bucket) (uint64, error) {
	if t.done {
		return 0, ErrTxDone
	}
	if err := b.Validate(); err != nil {
		return 0, err
	}
	return t.sequence(b), nil
}

// AdvanceSequence implements Tx. It writes nothing when the
// sequence is already there.
func (t *jTx) AdvanceSequence(b Bucket, atLeast uint64) error {
	if err := t.checkSequenceWrite(b); err != nil {
		return err
	}
	if t.sequence(b) < atLeast {
		t.setSequence(b, atLeast)
	}
	return nil
}

func (t *jTx) Insert(b Bucket, key, value []byte) error {
	if err := t.checkWrite(b, key); err != nil {
		return err
	}
	if err := ValidateValue(value); err != nil {
		return err
	}
	// As get, but a key that a read of this group found absent from bbolt
	// is not looked up there again: the group's bbolt snapshot is the same.
	// The overlay, which the group writes, is always looked at.
	if v, found := t.lookup(b, key); found {
		if v != nil {
			return ErrExists
		}
	} else if !t.g.absent.has(t.ck) && t.sn.boltGet(b, key, t.ck) != nil {
		return ErrExists
	}
	return t.Put(b, key, value)
}

// Buckets lists the buckets with a key or a nonzero sequence, in bbolt or
// in the overlay (a bucket whose keys are all deleted in the overlay may be
// listed).
func (t *jTx) Buckets() ([]Bucket, error) {
	if t.done {
		return nil, ErrTxDone
	}
	t.linkPending()
	seen := make(map[Bucket]bool)
	err := t.sn.btx.ForEach(func(name []byte, bk *bolt.Bucket) error {
		b := Bucket(name)
		if b.Validate() != nil {
			return nil // not one of ours (the journal's own bucket), or a generation
		}
		if bk.Sequence() != 0 || !openGens(t.sn.btx, name).empty() {
			seen[b] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, m := range t.sn.layers {
		// One seek per bucket: every key of bucket b sorts before b 0x01.
		for n := m.first(); n != 0; {
			b, _ := splitKey(m.key(n))
			if !seen[Bucket(b)] {
				for x := n; x != 0; x = m.next(x) {
					if k := m.key(x); !bytes.HasPrefix(k, b) || k[len(b)] != 0 {
						break
					}
					if v, ok := m.visible(x, t.sn.at); ok && v != nil {
						seen[Bucket(b)] = true
						break
					}
				}
			}
			n = m.seek(append(slices.Clip(b), 1), nil)
		}
	}
	out := make([]Bucket, 0, len(seen))
	for b := range seen {
		out = append(out, b)
	}
	slices.Sort(out)
	return out, nil
}

func (t *jTx) Scan(b Bucket, prefix, start []byte, fn func(k, v []byte) error) error {
	if t.done {
		return ErrTxDone
	}
	if err := b.Validate(); err != nil {
		return err
	}
	seek := prefix
	if start != nil && bytes.Compare(start, prefix) > 0 {
		seek = start
	}
	t.scanning = append(t.scanning, b)
	defer func() { t.scanning = t.scanning[:len(t.scanning)-1] }()
	t.linkPending()

	pre := len(b) + 1
	ckPrefix := compositeKey(nil, b, prefix)
	ckSeek := compositeKey(nil, b, seek)
	at := t.sn.at
	layers := t.sn.layers
	cur := make([]nodeRef, len(layers))
	for i, m := range layers {
		cur[i] = m.seek(ckSeek, nil)
	}
	// curKey is the user key of cur[i].
	curKey := make([][]byte, len(layers))
	// normalize moves cur[i] to its next visible node within the prefix.
	normalize := func(i int) {
		m := layers[i]
		for n := cur[i]; ; n = m.next(n) {
			var k []byte
			if n != 0 {
				k = m.key(n)
			}
			if n == 0 || !bytes.HasPrefix(k, ckPrefix) {
				cur[i], curKey[i] = 0, nil
				return
			}
			if len(k) > pre { // not the sequence key
				if _, ok := m.visible(n, at); ok {
					cur[i], curKey[i] = n, k[pre:]
					return
				}
			}
		}
	}
	for i := range cur {
		normalize(i)
	}
	var c *genCursor
	var bk, bv []byte
	nextBolt := func(first bool) {
		if first {
			bk, bv = c.seek(seek)
		} else {
			bk, bv = c.next()
		}
		if bk == nil || !bytes.HasPrefix(bk, prefix) {
			bk, bv = nil, nil
		}
	}
	if g := t.sn.bucket(b); g != nil {
		c = g.cursor()
		nextBolt(true)
	}
	for n := 1; ; n++ {
		// The smallest key, and the version of the newest source holding it.
		var key, value []byte
		for i, x := range cur {
			if x != 0 && (key == nil || bytes.Compare(curKey[i], key) < 0) {
				key = curKey[i]
				value, _ = layers[i].visible(x, at)
			}
		}
		fromBolt := false
		if bk != nil {
			switch {
			case key == nil || bytes.Compare(bk, key) < 0:
				key, value, fromBolt = bk, bv, true
			case bytes.Equal(bk, key):
				nextBolt(false) // shadowed by the overlay
			}
		}
		if key == nil {
			return nil
		}
		// Advance every source past key (the first is the newest, so the
		// loop above took its version among equals).
		if fromBolt {
			nextBolt(false)
		}
		for i, x := range cur {
			if x != 0 && bytes.Equal(curKey[i], key) {
				cur[i] = layers[i].next(x)
				normalize(i)
			}
		}
		if value == nil {
			continue // deleted
		}
		if stop, err := visit(t.ctx, n, fn, key, value); stop {
			return err
		}
	}
}

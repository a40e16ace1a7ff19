package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// The key filter of a journaled Bolt: a Bloom filter of the keys in the
// B-tree, so that a read of a key that is not there (every new value a
// tokenize looks up, every token it checks) is answered without a B-tree
// descent. It may say "maybe" for a key that is absent (1 in 800 absent keys
// just after a build, 1 in 30 when full: TestKeyFilterAnswers); it never says
// "absent" for a key that a snapshot allowed to use it can see. That rests
// on three rules:
//
//   - every merge adds the keys it writes (with the generation of their
//     bucket it writes them into) to the filter in use and to the one being
//     built, before it commits (keyFilters.merged, under mergeMu);
//   - a build installs its filter as "being built" before it reads the
//     B-tree, then reads every key, in chunks of one read transaction each,
//     and records the merged position of its last chunk as validFrom;
//   - a snapshot uses the filter only if its own B-tree transaction is at
//     validFrom or later (loaded after the transaction began).
//
// A key a snapshot at or after validFrom sees was either written by a merge
// after the build began (added by that merge), or was there when the build
// began and was not deleted up to the snapshot's position, so it was there
// when its chunk was read. Deleted keys stay in the filter: they only cost a
// descent. The filter grows by being built again, in the background, with
// twice the keys it found; until then the filter in use keeps answering,
// with more "maybe"s.

const (
	// keyFilterBits is the filter's size per key of capacity, in bits.
	// A build sizes the filter for twice the keys it found.
	keyFilterBits = 8
	// keyFilterMinKeys is the smallest capacity built.
	keyFilterMinKeys = 1 << 16
	// keyFilterChunk is how many keys a build reads per read transaction: a
	// long read transaction would hold off the B-tree's growth (bbolt
	// remaps its file only when no read transaction is open).
	keyFilterChunk = 1 << 16
)

// keyFilter is a split block Bloom filter (as Apache Parquet's): a key sets
// one bit in each of the 8 words of one 256-bit block. Adds and lookups may
// run concurrently: words are read and set atomically.
type keyFilter struct {
	seed      maphash.Seed
	words     []uint32 // 8 per block
	blocks    uint64
	capacity  uint64
	validFrom uint64        // merged position from which snapshots may use it; set before it is used
	found     uint64        // keys its build found; set before it is used
	added     atomic.Uint64 // keys added (a key merged twice counts twice)
	// fresh and gone count, since it is in use, the keys merges added that
	// it had not seen (new to the B-tree, give or take a false "maybe")
	// and the keys merges deleted: found + fresh - gone estimates the keys
	// in the B-tree, which sizes the next build.
	fresh, gone atomic.Uint64
}

func newKeyFilter(capacity, minKeys uint64) *keyFilter {
	capacity = max(capacity, minKeys)
	blocks := (capacity*keyFilterBits + 255) / 256
	return &keyFilter{seed: maphash.MakeSeed(), words: make([]uint32, 8*blocks), blocks: blocks, capacity: capacity}
}

// The block salts of the split block Bloom filter (Parquet's).
var keyFilterSalt = [8]uint32{0x47b6137b, 0x44974d91, 0x8824ad5b, 0xa2b7289d, 0x705495c7, 0x2df1424b, 0x9efc4947, 0x5c6bfb31}

func (f *keyFilter) block(ck []byte) ([]uint32, uint32) {
	h := maphash.Bytes(f.seed, ck)
	b := (h >> 32) * f.blocks >> 32
	return f.words[8*b : 8*b+8 : 8*b+8], uint32(h)
}

// A key's entry is for the generation of its bucket that holds it
// (generations.go): all of a key's entries are in the one block its
// composite key chooses, each generation setting its own bits there, so
// that one cache line tells which generations may hold the key. Generation
// 0, the base, uses the key's own bits.

// genBits returns the 32 bits that choose generation gen's bits in a block,
// x being the key's own.
func genBits(x uint32, gen int) uint32 {
	if gen == 0 {
		return x
	}
	h := (uint64(x) ^ uint64(gen)*0x9e3779b97f4a7c15) * 0xbf58476d1ce4e5b9
	return uint32(h >> 32)
}

// keyProbe is a key's block in a filter, to ask about its generations. The
// zero keyProbe (no filter) rules nothing out.
type keyProbe struct {
	w []uint32
	x uint32
}

func (f *keyFilter) probe(ck []byte) keyProbe {
	w, x := f.block(ck)
	return keyProbe{w, x}
}

// has reports whether generation gen may hold the key; false means it does not.
func (p keyProbe) has(gen int) bool {
	if p.w == nil {
		return true
	}
	x := genBits(p.x, gen)
	for i := range p.w {
		if atomic.LoadUint32(&p.w[i])&(uint32(1)<<((x*keyFilterSalt[i])>>27)) == 0 {
			return false
		}
	}
	return true
}

// add adds the composite key ck as held by generation gen of its bucket,
// and counts it as fresh if it had not been added (one of its bits was not
// set).
func (f *keyFilter) add(ck []byte, gen int) {
	w, x := f.block(ck)
	x = genBits(x, gen)
	fresh := false
	for i := range w {
		if bit := uint32(1) << ((x * keyFilterSalt[i]) >> 27); atomic.LoadUint32(&w[i])&bit == 0 {
			atomic.OrUint32(&w[i], bit)
			fresh = true
		}
	}
	f.added.Add(1)
	if fresh {
		f.fresh.Add(1)
	}
}

// keys estimates the keys in the B-tree (see fresh).
func (f *keyFilter) keys() uint64 {
	n, gone := f.found+f.fresh.Load(), f.gone.Load()
	if gone >= n {
		return 0
	}
	return n - gone
}

// mayContain reports whether ck may have been added for generation 0;
// false means it was not.
func (f *keyFilter) mayContain(ck []byte) bool {
	return f.probe(ck).has(0)
}

func (f *keyFilter) full() bool { return f.added.Load() > f.capacity }

// stale reports whether the keys fell under a quarter of those it was built
// with: it holds more than twice the memory it needs.
func (f *keyFilter) stale(minKeys uint64) bool {
	return f.capacity > minKeys && 4*f.keys() < f.found
}

// keyFilters is a journal's filter state.
type keyFilters struct {
	// mergeMu is held by every merge, from before it writes until it has
	// committed, and by a build while it installs its filter.
	mergeMu  sync.Mutex
	inUse    atomic.Pointer[keyFilter] // nil until the first build ends
	building atomic.Pointer[keyFilter] // nil when no build runs
	running  atomic.Bool               // a build goroutine runs
	done     sync.WaitGroup            // build goroutines, for Close
	skipped  atomic.Uint64             // B-tree reads the filter answered
	builds   atomic.Uint64             // builds completed
	minKeys  uint64                    // keyFilterMinKeys unless a test says otherwise
	chunk    int                       // keyFilterChunk unless a test says otherwise
	churn    bool                      // for tests: build again after every merge
	off      bool                      // Options.NoKeyFilter
}

// startFilters sets up j's key filter from opts and starts its first build,
// sized from the estimate of the keys the file keeps (writeFilterKeys), or
// after counting them if it keeps none.
func (j *journal) startFilters(opts Options) {
	k := &j.filters
	k.minKeys, k.chunk, k.churn, k.off = keyFilterMinKeys, keyFilterChunk, opts.filterChurn, opts.NoKeyFilter
	if opts.filterMin > 0 {
		k.minKeys = uint64(opts.filterMin)
	}
	if opts.filterChunk > 0 {
		k.chunk = opts.filterChunk
	}
	if !k.off {
		// Sized from the last filter's estimate if the file keeps one (a
		// build whose keys fill it outside a quarter to three quarters is
		// redone with the count: see startBuild); counted first if not.
		var est uint64
		_ = j.db.View(func(btx *bolt.Tx) error {
			if meta := btx.Bucket(metaBucket); meta != nil {
				if v := meta.Get(metaFilterKeys); len(v) == 8 {
					est = binary.BigEndian.Uint64(v)
				}
			}
			return nil
		})
		j.startBuild(2 * est)
	}
}

// writeFilterKeys records n, the filter's estimate of the keys, in btx.
func writeFilterKeys(btx *bolt.Tx, n uint64) error {
	meta, err := btx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return err
	}
	return meta.Put(metaFilterKeys, binary.BigEndian.AppendUint64(nil, n))
}

// rebuildIfDue starts a build after a merge, for twice the keys now
// estimated, when the filter is full (as many keys merged since its build,
// new or overwritten, as it can hold beyond those it found) or stale (the
// keys fell under a quarter); and when none is in use (the first build
// failed).
func (j *journal) rebuildIfDue() {
	k := &j.filters
	if k.off {
		return
	}
	switch f := k.inUse.Load(); {
	case f == nil:
		j.startBuild(0)
	case f.full() || f.stale(k.minKeys) || k.churn:
		j.startBuild(2 * f.keys())
	}
}

// merged is called by a merge, under mergeMu, with each key it writes
// (deleted false) into generation gen of its bucket, or deletes from there:
// it adds the written ones to the filters merges must feed, and counts the
// deleted ones for the estimate of the keys.
func (k *keyFilters) merged(ck []byte, gen int, deleted bool) {
	f, b := k.inUse.Load(), k.building.Load()
	if deleted {
		if f != nil {
			f.gone.Add(1)
		}
		return
	}
	if f != nil {
		f.add(ck, gen)
	}
	if b != nil {
		b.add(ck, gen)
	}
}

// forSnapshot returns the filter a snapshot whose B-tree transaction is at
// merged position merged may use, or nil. Called after that transaction
// began.
func (k *keyFilters) forSnapshot(merged uint64) *keyFilter {
	if f := k.inUse.Load(); f != nil && merged >= f.validFrom {
		return f
	}
	return nil
}

// errBuildStopped ends a build when the store closes.
var errBuildStopped = errors.New("store: key filter build stopped")

// startBuild starts a build in the background, unless one runs: for
// capacity keys, or with capacity 0 (at Open, when nothing tells how many
// keys there are) after counting the keys in a first pass.
func (j *journal) startBuild(capacity uint64) {
	k := &j.filters
	select {
	case <-j.quit: // closing: Close has waited for the builds already
		return
	default:
	}
	if !k.running.CompareAndSwap(false, true) {
		return
	}
	k.done.Add(1)
	go func() {
		defer k.done.Done()
		defer k.running.Store(false)
		if capacity == 0 {
			n, err := j.scanKeys(nil)
			if err != nil {
				return
			}
			capacity = 2 * n
		}
		// A filter is sized at twice the keys counted or estimated. It is
		// kept unless the keys it found fill more than three quarters of it
		// (the estimate missed: it would soon be full) or less than a
		// quarter (more than twice the memory it needs); then it is built
		// once more with the count.
		for range 2 {
			found, size, err := j.buildFilter(capacity)
			if err != nil {
				return
			}
			if 4*found <= 3*size && (size <= k.minKeys || size <= 4*found) {
				return
			}
			capacity = 2 * found
		}
	}()
}

// buildFilter builds a filter for capacity keys (see the rules above), puts
// it in use and returns how many keys it found in the B-tree and its
// capacity (at least minKeys).
func (j *journal) buildFilter(capacity uint64) (found, size uint64, err error) {
	k := &j.filters
	f := newKeyFilter(capacity, k.minKeys)
	k.mergeMu.Lock()
	k.building.Store(f)
	k.mergeMu.Unlock()
	defer k.building.CompareAndSwap(f, nil)
	validFrom, err := j.scanKeys(func(ck []byte, gen int) { f.add(ck, gen) })
	if err != nil {
		return 0, 0, err
	}
	f.validFrom = validFrom
	k.mergeMu.Lock()
	// What it holds so far (keys read, and those merges added meanwhile) is
	// what it found; fresh counts from here.
	f.found = f.added.Load()
	f.fresh.Store(0)
	k.inUse.Store(f)
	k.building.Store(nil)
	k.mergeMu.Unlock()
	k.builds.Add(1)
	return f.found, f.capacity, nil
}

// scanKeys calls add (if not nil) with the composite key of every key in
// the B-tree and the generation of its bucket holding it, reading it in chunks of one read transaction each. It returns
// the merged position of the last chunk's transaction, or with add nil the
// number of keys.
func (j *journal) scanKeys(add func(ck []byte, gen int)) (uint64, error) {
	k := &j.filters
	var bucket, after []byte // where the next chunk starts: after key `after` of bucket
	var ck []byte
	var validFrom, count uint64
	for more := true; more; {
		select {
		case <-j.quit:
			return 0, errBuildStopped
		default:
		}
		btx, err := j.db.Begin(false)
		if err != nil {
			return 0, err
		}
		validFrom = mergedFile(btx)
		n := 0
		more = false
		c := btx.Cursor() // the buckets
		name, _ := c.Seek(bucket)
		for ; name != nil && !more; name, _ = c.Next() {
			bk := btx.Bucket(name)
			if bk == nil {
				continue
			}
			kc := bk.Cursor()
			key, v := kc.First()
			if after != nil && bytes.Equal(name, bucket) {
				if key, v = kc.Seek(after); bytes.Equal(key, after) {
					key, v = kc.Next()
				}
			}
			for ; key != nil; key, v = kc.Next() {
				if v == nil {
					continue // a nested bucket: Get answers nil for it anyway
				}
				if add != nil {
					// A generation's keys are its bucket's (generations.go).
					b, gen := splitGenName(name)
					ck = compositeKey(ck[:0], Bucket(b), key)
					add(ck, gen)
				}
				count++
				if n++; n == k.chunk {
					bucket, after, more = append(bucket[:0], name...), append(after[:0], key...), true
					break
				}
			}
		}
		_ = btx.Rollback()
		if err := j.fp("filter.chunk"); err != nil {
			return 0, err
		}
	}
	if add == nil {
		return count, nil
	}
	return validFrom, nil
}

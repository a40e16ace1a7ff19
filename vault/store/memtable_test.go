package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// checkSkiplist checks m's skiplist against want (every key upserted so far):
// each level strictly increasing, each node at every level below its height
// and at none above, level 0 holding exactly want, and nothing pending.
func checkSkiplist(t *testing.T, m *memtable, want map[string]bool) {
	t.Helper()
	if len(m.pending) != 0 {
		t.Fatalf("%d nodes still pending after link", len(m.pending))
	}
	h := int(m.h.Load())
	tall := make([]int, maxHeight) // nodes per level, from the towers
	n := 0
	var last []byte
	for x := m.first(); x != 0; x = m.next(x) {
		k := m.key(x)
		if n > 0 && bytes.Compare(last, k) >= 0 {
			t.Fatalf("level 0 out of order at node %d", n)
		}
		if !want[string(k)] {
			t.Fatalf("level 0 holds a key never upserted")
		}
		if m.find(k) != x {
			t.Fatalf("index and skiplist disagree on a key")
		}
		height := int(m.rec(x).height)
		if height > h {
			t.Fatalf("node of height %d above the list height %d", height, h)
		}
		for i := range height {
			tall[i]++
		}
		last = k
		n++
	}
	if n != len(want) {
		t.Fatalf("level 0 holds %d keys, want %d", n, len(want))
	}
	for level := 1; level < maxHeight; level++ {
		c := 0
		last = nil
		for x := nodeRef(m.nextAt(m.rec(0), level).Load()); x != 0; x = nodeRef(m.nextAt(m.rec(x), level).Load()) {
			k := m.key(x)
			if c > 0 && bytes.Compare(last, k) >= 0 {
				t.Fatalf("level %d out of order", level)
			}
			if int(m.rec(x).height) <= level {
				t.Fatalf("node of height %d linked at level %d", m.rec(x).height, level)
			}
			last = k
			c++
		}
		if c != tall[level] {
			t.Fatalf("level %d links %d nodes, want %d", level, c, tall[level])
		}
	}
}

// Keys upserted in any order, in rounds that each end with a link, make a
// well-formed skiplist: rounds of random keys, of keys already there, of
// ascending and descending runs, and of keys between existing ones.
func TestMemtableLink(t *testing.T) {
	m := newMemtable(1)
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string]bool{}
	add := func(k []byte) {
		n := m.upsert(k)
		if !bytes.Equal(m.key(n), k) {
			t.Fatalf("upsert returned another key's node")
		}
		want[string(k)] = true
	}
	key := func(v uint64) []byte { return binary.BigEndian.AppendUint64([]byte("b\x00"), v) }
	var old [][]byte
	for round := range 30 {
		size := 1 + rng.IntN(600)
		switch round % 5 {
		case 0: // random
			for range size {
				add(key(rng.Uint64()))
			}
		case 1: // ascending from a random point
			v := rng.Uint64() >> 1
			for i := range size {
				add(key(v + uint64(i)*7))
			}
		case 2: // descending
			v := rng.Uint64()>>1 + 1<<40
			for i := range size {
				add(key(v - uint64(i)*3))
			}
		case 3: // keys already linked, and keys right after them
			for range size {
				k := old[rng.IntN(len(old))]
				add(k)
				add(append(bytes.Clone(k), 0))
			}
		case 4: // a key upserted twice in one round
			for range size {
				k := key(rng.Uint64())
				add(k)
				add(k)
			}
		}
		if before := len(m.pending); before == 0 && round%5 != 3 {
			t.Fatalf("round %d: no node pending before link", round)
		}
		m.link()
		old = old[:0]
		for k := range want {
			old = append(old, []byte(k))
		}
		checkSkiplist(t, m, want)
	}
	// Sequence keys (empty user key) sort first in their bucket.
	add([]byte("a\x00"))
	add([]byte("a\x00\x01"))
	m.link()
	checkSkiplist(t, m, want)
}

// Readers walking and seeking the skiplist while the writer links groups
// never see it out of order, and find every key of every group published
// before they looked (the committer links a group before publishing it).
func TestMemtableLinkConcurrentReaders(t *testing.T) {
	m := newMemtable(1)
	var visible atomic.Uint64
	const groups, perGroup = 150, 64
	keyOf := func(g, i int) []byte {
		// spread over the key space, so that groups interleave
		return fmt.Appendf(nil, "b\x00%04d/%04d", (i*7919+g*31)%10000, g)
	}
	stop := make(chan struct{})
	wait := runReaders(t, 4, 9, stop, func(rng *rand.Rand) error {
		at := visible.Load()
		// A whole walk: ordered, and every published key there.
		seen := 0
		var last []byte
		for x := m.first(); x != 0; x = m.next(x) {
			k := m.key(x)
			if last != nil && bytes.Compare(last, k) >= 0 {
				return fmt.Errorf("walk out of order")
			}
			if _, ok := m.visible(x, at); ok {
				seen++
			}
			last = k
		}
		if want := int(at) * perGroup; seen < want {
			return fmt.Errorf("walk at seq %d saw %d visible keys, want at least %d", at, seen, want)
		}
		// Seeks of published keys land on them.
		if at > 0 {
			g := 1 + rng.IntN(int(at))
			k := keyOf(g, rng.IntN(perGroup))
			if n := m.seek(k, nil); n == 0 || !bytes.Equal(m.key(n), k) {
				return fmt.Errorf("seek missed a key published at seq %d (reader at %d)", g, at)
			}
		}
		return nil
	})
	for g := 1; g <= groups; g++ {
		for i := range perGroup {
			n := m.upsert(keyOf(g, i))
			m.push(n, uint64(g), []byte("v"), false)
		}
		m.link()
		visible.Store(uint64(g))
	}
	close(stop)
	wait()
	want := map[string]bool{}
	for g := 1; g <= groups; g++ {
		for i := range perGroup {
			want[string(keyOf(g, i))] = true
		}
	}
	checkSkiplist(t, m, want)
}

// runReaders runs n goroutines calling read, each with its own random
// source, until stop is closed or read fails; wait waits for them and
// reports their errors.
func runReaders(t *testing.T, n int, seed uint64, stop <-chan struct{}, read func(rng *rand.Rand) error) (wait func()) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for r := range n {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), seed))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := read(rng); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	return func() {
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}

// absentSet holds exactly the keys added since its last reset, across
// growth and reuse.
func TestAbsentSet(t *testing.T) {
	var s absentSet
	for round := range 3 {
		n := 100 << (2 * round) // 100, 400, 1600: grows past its first size
		for i := range n {
			s.add(fmt.Appendf(nil, "b\x00%d/%d", round, i))
			s.add(fmt.Appendf(nil, "b\x00%d/%d", round, i/2)) // repeats
		}
		if s.n != n {
			t.Fatalf("round %d: %d keys in the set, want %d", round, s.n, n)
		}
		for i := range n {
			if !s.has(fmt.Appendf(nil, "b\x00%d/%d", round, i)) {
				t.Fatalf("round %d: key %d missing", round, i)
			}
			if s.has(fmt.Appendf(nil, "b\x00%d/%d", round+1, i)) || s.has(fmt.Appendf(nil, "c\x00%d/%d", round, i)) {
				t.Fatalf("round %d: a key never added is in the set", round)
			}
		}
		s.reset()
		if s.has(fmt.Appendf(nil, "b\x00%d/%d", round, 0)) {
			t.Fatalf("round %d: a key survived reset", round)
		}
	}
}

// BenchmarkMemtableGroupInsert: groups of 1000 new keys shaped like the
// vault's record keys (bucket, domain, random token) upserted and linked
// into a memtable already holding 100,000; ns/op is per key.
func BenchmarkMemtableGroupInsert(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	key := func() []byte {
		k := []byte("records\x00default\x00")
		for range 16 {
			k = append(k, byte('0'+rng.IntN(10)))
		}
		return k
	}
	m := newMemtable(1)
	for range 100 {
		for range 1000 {
			m.upsert(key())
		}
		m.link()
	}
	keys := make([][]byte, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i += len(keys) {
		b.StopTimer()
		for j := range keys {
			keys[j] = key()
		}
		b.StartTimer()
		for _, k := range keys {
			m.upsert(k)
		}
		m.link()
	}
}

// pointerPath returns where a value of type t can hold a Go pointer (a
// field path and the type), or "" if it cannot.
func pointerPath(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return ""
	case reflect.Array:
		if p := pointerPath(t.Elem()); p != "" && t.Len() > 0 {
			return "[]" + p
		}
		return ""
	case reflect.Struct:
		for i := range t.NumField() {
			if p := pointerPath(t.Field(i).Type); p != "" {
				return "." + t.Field(i).Name + p
			}
		}
		return ""
	default: // pointers, slices, strings, maps, channels, functions, interfaces
		return " (" + t.String() + ")"
	}
}

// pointee returns T for atomic.Pointer[T] (from its [0]*T field).
func pointee(t *testing.T, p reflect.Type) reflect.Type {
	t.Helper()
	for i := range p.NumField() {
		f := p.Field(i).Type
		if f.Kind() == reflect.Array && f.Len() == 0 && f.Elem().Kind() == reflect.Pointer {
			return f.Elem().Elem()
		}
	}
	t.Fatalf("%v is not an atomic.Pointer", p)
	return nil
}

// The bulk of a memtable's memory holds no Go pointers, so the garbage
// collector does not scan it: the chunks of every arena (found from the
// memtable's chunkDir fields, so a new arena is checked too) and the hash
// index's slots.
func TestMemtableArenasPointerFree(t *testing.T) {
	// The check can fail.
	for _, bad := range []reflect.Type{
		reflect.TypeFor[struct {
			a uint64
			b [2]atomic.Pointer[int]
		}](),
		reflect.TypeFor[[4]struct{ v []byte }](),
		reflect.TypeFor[struct{ s string }](),
	} {
		if pointerPath(bad) == "" {
			t.Fatalf("pointerPath misses the pointer in %v", bad)
		}
	}
	mt := reflect.TypeFor[memtable]()
	arenas := 0
	for i := range mt.NumField() {
		f := mt.Field(i)
		if !strings.HasPrefix(f.Type.Name(), "chunkDir[") {
			continue
		}
		arenas++
		page := pointee(t, f.Type.Field(0).Type.Elem()) // [dirPage]atomic.Pointer[C]
		chunk := pointee(t, page.Elem())
		bulk := chunk
		if chunk.Kind() == reflect.Slice { // a []byte chunk: its array is the bulk
			bulk = chunk.Elem()
		}
		if p := pointerPath(bulk); p != "" {
			t.Errorf("arena %s: chunk type %v holds a pointer at %s", f.Name, chunk, p)
		}
	}
	if arenas != 4 {
		t.Fatalf("found %d arenas in memtable, want 4", arenas)
	}
	it := reflect.TypeFor[hashIndex]()
	for i := range it.NumField() {
		if f := it.Field(i); f.Type.Kind() == reflect.Slice {
			if p := pointerPath(f.Type.Elem()); p != "" {
				t.Errorf("hash index %s holds a pointer at %s", f.Name, p)
			}
		}
	}
}

// Readers walking, seeking and finding keys while the writer upserts,
// pushes, pops and links groups of them (enough to fill many chunks of
// every arena and grow the hash index several times) always see complete
// nodes, in order, and for every key exactly the version its snapshot
// should see: pushed versions rolled back (popped) before their group was
// published never show, nor do versions of later groups.
func TestMemtableConcurrentVersions(t *testing.T) {
	const groups, perGroup = 60, 400 // 24,000 keys
	mix := func(i, g uint64) uint64 {
		x := i*0x9e3779b97f4a7c15 ^ (g+1)*0xc2b2ae3d27d4eb4f
		x ^= x >> 29
		x *= 0xbf58476d1ce4e5b9
		return x ^ x>>32
	}
	keyOf := func(i int) []byte {
		k := fmt.Appendf(nil, "b\x00%016x/%d/", mix(uint64(i), 0), i)
		if i%5 == 0 { // longer than inlineKey: in the byte arena
			k = append(k, bytes.Repeat([]byte("k"), 70)...)
		}
		return k
	}
	junkKey := func(j uint64) []byte { return fmt.Appendf(nil, "b\x00junk/%d", j) }
	born := func(i int) uint64 { return uint64(i/perGroup) + 1 }
	// rewritten reports whether group g (after i's) writes key i again.
	rewritten := func(i int, g uint64) bool { return mix(uint64(i), g)%16 == 0 }
	// value is what group g writes to key i: nil for a delete.
	value := func(i int, g uint64) []byte {
		x := mix(uint64(i), g)
		if g > born(i) && x>>8%4 == 0 {
			return nil
		}
		v := fmt.Appendf(nil, "%d@%d:", i, g)
		if x>>16%499 == 0 {
			return append(v, make([]byte, byteChunk/4+100)...) // a chunk of its own
		}
		return append(v, bytes.Repeat([]byte{'v'}, int(x>>24%90))...)
	}
	// expected is the value of key i as of at, and whether there is one.
	expected := func(i int, at uint64) ([]byte, bool) {
		b := born(i)
		if at < b {
			return nil, false
		}
		for g := at; g > b; g-- {
			if rewritten(i, g) {
				return value(i, g), true
			}
		}
		return value(i, b), true
	}
	// check compares a version read at at with the expected one.
	check := func(i int, at uint64, v []byte, ok bool) error {
		want, wantOK := expected(i, at)
		if ok != wantOK || (v == nil) != (want == nil) || !bytes.Equal(v, want) {
			return fmt.Errorf("key %d at seq %d: got %.20q (found %v), want %.20q (found %v)", i, at, v, ok, want, wantOK)
		}
		return nil
	}
	// parse returns the key number of a node's key, or -1 for a junk key.
	parse := func(k []byte) (int, error) {
		if bytes.HasPrefix(k, []byte("b\x00junk/")) {
			return -1, nil
		}
		f := bytes.Split(k, []byte("/"))
		if len(f) != 3 {
			return 0, fmt.Errorf("malformed key %q", k)
		}
		i, err := strconv.Atoi(string(f[1]))
		if err != nil || !bytes.Equal(k, keyOf(i)) {
			return 0, fmt.Errorf("malformed key %q", k)
		}
		return i, nil
	}

	m := newMemtable(1)
	var visible atomic.Uint64
	stop := make(chan struct{})
	wait := runReaders(t, 2, 11, stop, func(rng *rand.Rand) error {
		at := visible.Load()
		// A walk: ordered, complete nodes, every published key.
		var last []byte
		published := 0
		for x := m.first(); x != 0; x = m.next(x) {
			k := m.key(x)
			if last != nil && bytes.Compare(last, k) >= 0 {
				return fmt.Errorf("walk out of order")
			}
			last = k
			i, err := parse(k)
			if err != nil {
				return err
			}
			v, ok := m.visible(x, at)
			if i < 0 {
				if ok {
					return fmt.Errorf("a popped version of a junk key is visible at seq %d", at)
				}
				continue
			}
			if born(i) <= at {
				published++
			}
			// Every key's version would be slow: a sample, and
			// every node's value must at least be its key's.
			if i%17 == int(at%17) || !ok {
				if err := check(i, at, v, ok); err != nil {
					return err
				}
			} else if v != nil && !bytes.HasPrefix(v, append(strconv.AppendInt(nil, int64(i), 10), '@')) {
				return fmt.Errorf("key %d at seq %d: value %.20q of another key", i, at, v)
			}
		}
		if want := int(at) * perGroup; published != want {
			return fmt.Errorf("walk at seq %d saw %d published keys, want %d", at, published, want)
		}
		if at == 0 {
			return nil
		}
		for range 20 {
			// Point reads and seeks of published keys.
			i := rng.IntN(int(at) * perGroup)
			k := keyOf(i)
			n := m.find(k)
			if n == 0 {
				return fmt.Errorf("find missed key %d published by seq %d", i, born(i))
			}
			v, ok := m.visible(n, at)
			if err := check(i, at, v, ok); err != nil {
				return err
			}
			if s := m.seek(k, nil); s != n {
				return fmt.Errorf("seek of key %d landed elsewhere", i)
			}
			// Keys of later groups: not visible yet, if there.
			i = int(at)*perGroup + rng.IntN(perGroup)
			if n := m.find(keyOf(i)); n != 0 {
				if _, ok := m.visible(n, at); ok {
					return fmt.Errorf("key %d of group %d visible at seq %d", i, born(i), at)
				}
			}
		}
		return nil
	})

	type write struct {
		i int
		v []byte
	}
	for g := uint64(1); g <= groups; g++ {
		var ws []write
		for i := range int(g-1) * perGroup {
			if rewritten(i, g) {
				ws = append(ws, write{i, value(i, g)})
			}
		}
		for i := int(g-1) * perGroup; i < int(g)*perGroup; i++ {
			ws = append(ws, write{i, value(i, g)})
		}
		pushAll := func(ws []write) {
			for _, w := range ws {
				n := m.upsert(keyOf(w.i))
				if mix(uint64(w.i), g)>>40%3 == 0 { // an earlier write of the group
					m.push(n, g, []byte("overwritten"), false)
				}
				m.push(n, g, w.v, w.v == nil)
			}
		}
		half := len(ws) / 2
		pushAll(ws[:half])
		// A failed function: writes to old, new and junk keys, undone.
		var undo []nodeRef
		for j := range uint64(60) {
			var k []byte
			switch j % 3 {
			case 0:
				k = keyOf(int(mix(g, j) % (g * perGroup)))
			case 1:
				k = junkKey(g*1000 + j)
			default:
				k = junkKey(mix(g, j) % 50) // again and again
			}
			n := m.upsert(k)
			m.push(n, g, []byte("rolled back"), j%4 == 0)
			undo = append(undo, n)
		}
		for _, n := range slices.Backward(undo) {
			m.pop(n)
		}
		pushAll(ws[half:])
		m.link()
		visible.Store(g)
	}
	close(stop)
	wait()
	for i := range groups * perGroup {
		n := m.find(keyOf(i))
		v, ok := m.visible(n, groups)
		if err := check(i, groups, v, ok); err != nil {
			t.Fatal(err)
		}
	}
	// The test covered what it is for.
	if c := m.nNodes >> nodeChunkBits; c < 10 {
		t.Errorf("nodes span %d chunks, want at least 10", c)
	}
	if c := m.nVersions >> versionChunkBits; c < 10 {
		t.Errorf("versions span %d chunks, want at least 10", c)
	}
	if c := m.nTower >> towerChunkBits; c < 1 {
		t.Errorf("towers span %d chunks, want at least 2", c+1)
	}
	if m.nChunks < 10 {
		t.Errorf("keys and values span %d byte chunks, want at least 10", m.nChunks)
	}
	if size := len(m.index.Load().hashes); size < 1<<12<<4 {
		t.Errorf("hash index of %d slots: grown fewer than 4 times", size)
	}
}

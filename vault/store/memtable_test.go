package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
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
	for x := m.first(); x != nil; x = x.next[0].Load() {
		if n > 0 && bytes.Compare(last, x.key) >= 0 {
			t.Fatalf("level 0 out of order at node %d", n)
		}
		if !want[string(x.key)] {
			t.Fatalf("level 0 holds a key never upserted")
		}
		if m.find(x.key) != x {
			t.Fatalf("index and skiplist disagree on a key")
		}
		if len(x.next) > h {
			t.Fatalf("node of height %d above the list height %d", len(x.next), h)
		}
		for i := range x.next {
			tall[i]++
		}
		last = x.key
		n++
	}
	if n != len(want) {
		t.Fatalf("level 0 holds %d keys, want %d", n, len(want))
	}
	for level := 1; level < maxHeight; level++ {
		c := 0
		last = nil
		for x := m.head.next[level].Load(); x != nil; x = x.next[level].Load() {
			if c > 0 && bytes.Compare(last, x.key) >= 0 {
				t.Fatalf("level %d out of order", level)
			}
			if len(x.next) <= level {
				t.Fatalf("node of height %d linked at level %d", len(x.next), level)
			}
			last = x.key
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
		if !bytes.Equal(n.key, k) {
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
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for r := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 9))
			for {
				select {
				case <-stop:
					return
				default:
				}
				at := visible.Load()
				// A whole walk: ordered, and every published key there.
				seen := 0
				var last []byte
				for x := m.first(); x != nil; x = x.next[0].Load() {
					if last != nil && bytes.Compare(last, x.key) >= 0 {
						errs <- fmt.Errorf("walk out of order")
						return
					}
					if v := x.visible(at); v != nil {
						seen++
					}
					last = x.key
				}
				if want := int(at) * perGroup; seen < want {
					errs <- fmt.Errorf("walk at seq %d saw %d visible keys, want at least %d", at, seen, want)
					return
				}
				// Seeks of published keys land on them.
				if at > 0 {
					g := 1 + rng.IntN(int(at))
					k := keyOf(g, rng.IntN(perGroup))
					if n := m.seek(k, nil); n == nil || !bytes.Equal(n.key, k) {
						errs <- fmt.Errorf("seek missed a key published at seq %d (reader at %d)", g, at)
						return
					}
				}
			}
		})
	}
	for g := 1; g <= groups; g++ {
		for i := range perGroup {
			n := m.upsert(keyOf(g, i))
			m.push(n, uint64(g), []byte("v"), false)
		}
		m.link()
		visible.Store(uint64(g))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := map[string]bool{}
	for g := 1; g <= groups; g++ {
		for i := range perGroup {
			want[string(keyOf(g, i))] = true
		}
	}
	checkSkiplist(t, m, want)
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

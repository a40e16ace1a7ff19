package store

import (
	"crypto/rand"
	"testing"
)

// A key filter never answers "absent" for a key it was given, and answers
// "maybe" for few keys it was not: at most 5 % at its capacity (about 2.5 %
// expected with 8 bits per key), at most 1 % at half of it.
func TestKeyFilterAnswers(t *testing.T) {
	const capacity = 100_000
	f := newKeyFilter(capacity, 1)
	keys := make([][]byte, capacity)
	for i := range keys {
		keys[i] = compositeKey(nil, "tokens", []byte(rand.Text()))
	}
	falseMaybes := func() float64 {
		n := 0
		const tries = 100_000
		for range tries {
			if f.mayContain(compositeKey(nil, "tokens", []byte(rand.Text()))) {
				n++
			}
		}
		return float64(n) / tries
	}
	for i, k := range keys[:capacity/2] {
		f.add(k, 0)
		if !f.mayContain(k) {
			t.Fatalf("key %d added but answered absent", i)
		}
	}
	r := falseMaybes()
	t.Logf("absent keys answered maybe: %.4f at half capacity", r)
	if r > 0.01 {
		t.Errorf("at half capacity, %.4f of absent keys answered maybe, want ≤ 0.01", r)
	}
	for _, k := range keys[capacity/2:] {
		f.add(k, 0)
	}
	if f.full() {
		t.Error("full at capacity, want full only past it")
	}
	for i, k := range keys {
		if !f.mayContain(k) {
			t.Fatalf("key %d added but answered absent", i)
		}
	}
	r = falseMaybes()
	t.Logf("absent keys answered maybe: %.4f at capacity", r)
	if r > 0.05 {
		t.Errorf("at capacity, %.4f of absent keys answered maybe, want ≤ 0.05", r)
	}
	f.add([]byte("one more"), 0)
	if !f.full() {
		t.Error("not full past its capacity")
	}
}

// A snapshot uses a filter only if its B-tree transaction is at the
// filter's first valid merged position or later.
func TestKeyFilterForSnapshot(t *testing.T) {
	var k keyFilters
	if k.forSnapshot(100) != nil {
		t.Fatal("a filter before any build")
	}
	f := newKeyFilter(1, 1)
	f.validFrom = 7
	k.inUse.Store(f)
	for merged, want := range map[uint64]*keyFilter{6: nil, 7: f, 8: f} {
		if got := k.forSnapshot(merged); got != want {
			t.Errorf("forSnapshot(%d) = %p, want %p", merged, got, want)
		}
	}
}

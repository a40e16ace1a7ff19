package store

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// With a steady number of keys that turn over (new tokens stored, old ones
// erased or pruned, as audit retention does), the key filter's memory stays
// at about 2 bytes per stored key, and 4 while a new one is built (doc.go,
// "The key filter"). A rebuild sized from every key merged (overwrites and
// deletes included) held up to 8.6 bytes per key here, 12.8 during a build.
func TestKeyFilterMemoryUnderTurnover(t *testing.T) {
	o := Options{JournalMemory: 64 << 10, filterMin: 16}
	o.mergeInterval = 5 * time.Millisecond
	var opened atomic.Pointer[Bolt] // for the failpoint, which a build at Open calls
	var peak atomic.Int64           // the most bytes the filters held, seen at the end of a build's chunk
	o.failpoint = func(step string) error {
		if s := opened.Load(); step == "filter.chunk" && s != nil {
			if b := s.Stats().KeyFilterBytes; b > peak.Load() {
				peak.Store(b)
			}
		}
		return nil
	}
	s, err := Open(filepath.Join(t.TempDir(), "vault.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	opened.Store(s)
	defer s.Close()
	const live, step, rounds = 1000, 100, 120
	key := func(i int) []byte { return fmt.Appendf(nil, "key-%08d", i) }
	idle := func() { // merged, and no build runs
		if err := s.j.flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		for s.j.filters.running.Load() {
			time.Sleep(time.Millisecond)
		}
	}
	if err := s.Update(t.Context(), func(tx Tx) error {
		for i := range live {
			if err := tx.Put("tokens", key(i), []byte("v")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	idle()
	var worstInUse, worstPeak float64
	for r := range rounds {
		if err := s.Update(t.Context(), func(tx Tx) error {
			for i := live + r*step; i < live+(r+1)*step; i++ {
				if err := tx.Put("tokens", key(i), []byte("v")); err != nil {
					return err
				}
				if err := tx.Delete("tokens", key(i-live)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for { // sample while merges and builds run
			if f := s.j.filters.inUse.Load(); f != nil {
				worstInUse = max(worstInUse, float64(4*len(f.words))/live)
			}
			if s.Stats().Overlay == 0 && !s.j.filters.running.Load() {
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
		idle()
	}
	worstPeak = float64(peak.Load()) / live
	t.Logf("%d live keys: filter in use up to %.1f bytes per key, in use + being built up to %.1f; %d builds",
		live, worstInUse, worstPeak, s.Stats().KeyFilterBuilds)
	if worstInUse > 3 {
		t.Errorf("the filter in use held %.1f bytes per stored key, want about 2", worstInUse)
	}
	if worstPeak > 6 {
		t.Errorf("the filters held %.1f bytes per stored key at once, want at most about 4", worstPeak)
	}
}

// The filter built at Open holds about 2 bytes per stored key whatever the size of the values:
// Open counts the keys first (a first capacity guessed from the file's size, 1/64 of it, held
// 6 bytes per key here).
func TestKeyFilterSizeAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	o := Options{NoKeyFilter: true}
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	const keys = 4000
	value := make([]byte, 150) // an encrypted record, an audit event
	putKeys(t, s, keys, value)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o = Options{filterMin: 16}
	s, err = Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for s.j.filters.running.Load() || s.j.filters.inUse.Load() == nil {
		time.Sleep(time.Millisecond)
	}
	perKey := float64(s.Stats().KeyFilterBytes) / keys
	t.Logf("%d keys of 150-byte values: the filter built at Open holds %.1f bytes per key", keys, perKey)
	if perKey > 3 {
		t.Errorf("the filter built at Open holds %.1f bytes per key, want about 2", perKey)
	}
}

// putKeys puts keys key-00000000.. key-(n-1) of bucket tokens, each with value, in one Update.
func putKeys(t *testing.T, s *Bolt, n int, value []byte) {
	t.Helper()
	if err := s.Update(t.Context(), func(tx Tx) error {
		for i := range n {
			if err := tx.Put("tokens", fmt.Appendf(nil, "key-%08d", i), value); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// filterChurn returns Options whose journal merges every few milliseconds
// and whose key filter is built again after every merge, in chunks of a few
// keys with a pause between them: every read crosses merges, builds and
// filter swaps, and merges run while builds read.
func filterChurn() store.Options {
	o := smallJournal()
	store.SetKeyFilterSizes(&o, 16, 7)
	store.SetKeyFilterChurn(&o)
	store.SetFailpoint(&o, func(step string) error {
		if step == "filter.chunk" {
			time.Sleep(100 * time.Microsecond)
		}
		return nil
	})
	return o
}

func waitBuilds(t *testing.T, s *store.Bolt, n uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.Stats().KeyFilterBuilds < n {
		if time.Now().After(deadline) {
			t.Fatalf("key filter builds = %d after 20 s, want ≥ %d", s.Stats().KeyFilterBuilds, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wait waits for ch to close, at most 30 s.
func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not reached within 30 s", what)
	}
}

func fkey(i int) []byte { return fmt.Appendf(nil, "key-%06d", i) }
func fval(i int) []byte { return fmt.Appendf(nil, "value-%06d", i) }

// The key filter never hides a key: while one writer inserts keys (and
// deletes some), readers find every key committed before their View began,
// and inserting a key again fails with ErrExists (a filter answering
// "absent" for a stored token would let a second value take it), across
// merges and filter rebuilds racing the reads.
func TestKeyFilterNeverHidesAKey(t *testing.T) {
	t.Run("one-tree", func(t *testing.T) { keyFilterNeverHidesAKey(t, filterChurn()) })
	// Generations of 50 keys: the filter also tells which of 30 may hold a key.
	t.Run("generations", func(t *testing.T) {
		o := filterChurn()
		store.SetGenerationKeys(&o, 50)
		keyFilterNeverHidesAKey(t, o)
	})
}

func keyFilterNeverHidesAKey(t *testing.T, o store.Options) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), o)
	const b, n = store.Bucket("tokens"), 1500
	var committed atomic.Int64 // keys [0, committed) are stored; those i%3 == 0 and i+10 < committed deleted
	committed.Store(0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, misses atomic.Int64
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := int(committed.Load())
				if c == 0 {
					time.Sleep(time.Millisecond)
					continue
				}
				time.Sleep(50 * time.Microsecond) // leave CPU to the writer and to other tests
				var idx []int
				var keys [][]byte
				for range 20 {
					i := rng.IntN(c)
					if i%3 == 0 {
						continue // deleted, or about to be
					}
					idx, keys = append(idx, i), append(keys, fkey(i))
				}
				err := s.View(t.Context(), func(tx store.Tx) error {
					for j, v := range tx.GetMany(b, keys) {
						reads.Add(1)
						if string(v) != string(fval(idx[j])) {
							misses.Add(1)
							return fmt.Errorf("key %d (committed before the View) read as %q", idx[j], v)
						}
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := range n {
		err := s.Update(t.Context(), func(tx store.Tx) error {
			if err := tx.Insert(b, fkey(i), fval(i)); err != nil {
				return err
			}
			if i >= 10 && (i-10)%3 == 0 {
				if err := tx.Delete(b, fkey(i-10)); err != nil {
					return err
				}
			}
			if i >= 5 && (i-5)%3 != 0 {
				if err := tx.Insert(b, fkey(i-5), []byte("a second value")); !errors.Is(err, store.ErrExists) {
					return fmt.Errorf("insert of stored key %d again: %v, want ErrExists", i-5, err)
				}
			}
			return nil
		})
		if err != nil {
			t.Error(err)
			break
		}
		committed.Store(int64(i + 1))
	}
	close(stop)
	wg.Wait()
	st := s.Stats()
	t.Logf("reads %d, misses %d, merges %d, filter builds %d, reads the filter answered %d", reads.Load(), misses.Load(), st.Merges, st.KeyFilterBuilds, st.KeyFilterSkips)
	if st.KeyFilterBuilds < 5 || st.KeyFilterSkips == 0 {
		t.Errorf("filter builds %d and reads it answered %d: the test did not exercise the filter", st.KeyFilterBuilds, st.KeyFilterSkips)
	}
}

// A store opened on a file with keys builds its filter from them: each is
// found, absent keys are answered by the filter, and with NoKeyFilter no
// filter is built or used.
func TestKeyFilterBuiltAtOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	o := store.Options{}
	store.SetKeyFilterSizes(&o, 16, 100) // a build in many chunks
	s, err := store.Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	const b = store.Bucket("tokens")
	for from := 0; from < 2000; from += 500 {
		if err := s.Update(t.Context(), func(tx store.Tx) error {
			for i := from; i < from+500; i++ {
				if err := tx.Put(b, fkey(i), fval(i)); err != nil {
					return err
				}
			}
			return tx.Put("other", []byte("x"), []byte("y"))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil { // merges the journal into the B-tree
		t.Fatal(err)
	}
	for _, off := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoKeyFilter=%v", off), func(t *testing.T) {
			o := o
			o.NoKeyFilter = off
			s := mustOpen(t, path, o)
			if !off {
				waitBuilds(t, s, 1)
			}
			before := s.Stats()
			err := s.View(t.Context(), func(tx store.Tx) error {
				for i := range 4000 {
					v := tx.Get(b, fkey(i))
					if want := fval(i); i < 2000 && string(v) != string(want) || i >= 2000 && v != nil {
						return fmt.Errorf("key %d read as %q", i, v)
					}
				}
				if v := tx.Get("other", []byte("x")); string(v) != "y" {
					return fmt.Errorf("other/x read as %q", v)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			skips := st.KeyFilterSkips - before.KeyFilterSkips
			if off {
				if st.KeyFilterBuilds != 0 || skips != 0 || st.KeyFilterBytes != 0 {
					t.Errorf("NoKeyFilter: builds %d, reads answered %d, %d bytes; want none", st.KeyFilterBuilds, skips, st.KeyFilterBytes)
				}
				return
			}
			// 2000 absent keys: the filter answers nearly all of them.
			if skips < 1900 || skips > 2000 {
				t.Errorf("the filter answered %d of 2000 reads of absent keys, want 1900–2000", skips)
			}
			if st.KeyFilterBytes <= 0 {
				t.Errorf("KeyFilterBytes = %d, want > 0", st.KeyFilterBytes)
			}
		})
	}
}

// A snapshot that began before a key was deleted still reads it, even
// when a filter built after the deletion (which lacks the key) is put in
// use between the moment its B-tree transaction began and the moment it
// looked for a filter, and even when that build's first chunk was read
// before the snapshot began.
func TestKeyFilterSnapshotBeforeDelete(t *testing.T) {
	const b = store.Bucket("tokens")
	o := smallJournal()
	store.SetKeyFilterSizes(&o, 16, 7)
	store.SetKeyFilterChurn(&o)
	var holdBuild, holdSnapshot atomic.Bool
	buildHeld, snapshotHeld := make(chan struct{}), make(chan struct{})
	releaseBuild, releaseSnapshot := make(chan struct{}), make(chan struct{})
	store.SetFailpoint(&o, func(step string) error {
		switch {
		case step == "filter.chunk" && holdBuild.CompareAndSwap(true, false):
			close(buildHeld)
			<-releaseBuild
		case step == "snapshot.begun" && holdSnapshot.CompareAndSwap(true, false):
			close(snapshotHeld)
			<-releaseSnapshot
		}
		return nil
	})
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), o)
	put := func(k string) {
		t.Helper()
		if err := s.Update(t.Context(), func(tx store.Tx) error { return tx.Put(b, []byte(k), []byte("v-"+k)) }); err != nil {
			t.Fatal(err)
		}
	}
	// settle waits until what is committed is merged and no build runs
	// (the build count stays the same for 100 ms).
	settle := func() {
		t.Helper()
		for s.Stats().Overlay > 0 {
			time.Sleep(time.Millisecond)
		}
		for n := s.Stats().KeyFilterBuilds; ; {
			time.Sleep(100 * time.Millisecond)
			m := s.Stats().KeyFilterBuilds
			if m == n {
				return
			}
			n = m
		}
	}
	for i := range 50 {
		put(fmt.Sprintf("a-%02d", i)) // keys read in the build's first chunks
	}
	put("zz-deleted") // read in its last chunk
	settle()

	holdBuild.Store(true)
	put("b-trigger") // its merge starts a build, held after its first chunk
	wait(t, buildHeld, "the build started by a merge")
	put("b-later") // merged while the build is held: the snapshot begins after it
	for s.Stats().Overlay > 0 {
		time.Sleep(time.Millisecond)
	}
	holdSnapshot.Store(true)
	got := make(chan []byte, 1)
	go func() {
		var v []byte
		err := s.View(t.Context(), func(tx store.Tx) error {
			v = tx.Get(b, []byte("zz-deleted"))
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		got <- v
	}()
	wait(t, snapshotHeld, "the View's snapshot") // its B-tree transaction holds the key
	if err := s.Update(t.Context(), func(tx store.Tx) error { return tx.Delete(b, []byte("zz-deleted")) }); err != nil {
		t.Fatal(err)
	}
	for s.Stats().Overlay > 0 { // the delete is merged
		time.Sleep(time.Millisecond)
	}
	builds := s.Stats().KeyFilterBuilds
	close(releaseBuild) // the build reads the last chunk without the key, and is put in use
	waitBuilds(t, s, builds+1)
	close(releaseSnapshot)
	var v []byte
	select {
	case v = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the View did not end within 30 s")
	}
	if string(v) != "v-zz-deleted" {
		t.Errorf("a snapshot begun before the delete read %q, want the value", v)
	}
}

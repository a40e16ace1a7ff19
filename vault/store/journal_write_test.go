package store_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// inOneGroup runs fns as Update calls queued, in this order, behind a
// blocked commit, so that the journaled committer runs them as one group. It
// returns each call's error.
func inOneGroup(t *testing.T, s *store.Bolt, fns ...func(store.Tx) error) []error {
	t.Helper()
	release := blockCommitter(t, s)
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() { errs[i] = s.Update(t.Context(), fn) })
		waitQueued(t, s, i+1)
	}
	release()
	wg.Wait()
	return errs
}

// layeredStore opens a journaled store whose key "bolt" is in the bbolt file
// and key "frozen" in a frozen memtable that cannot be merged (merges fail
// until the test ends), and whose active memtable holds "active".
func layeredStore(t *testing.T) *store.Bolt {
	t.Helper()
	var failMerge atomic.Bool
	o := store.Options{}
	store.SetMergeInterval(&o, 20*time.Millisecond)
	store.SetFailpoint(&o, func(step string) error {
		if step == "merge.writing" && failMerge.Load() {
			return errors.New("merge held back by the test")
		}
		return nil
	})
	path := filepath.Join(t.TempDir(), "vault.db")
	s := mustOpen(t, path, o)
	t.Cleanup(func() { failMerge.Store(false) }) // before mustOpen's Close
	put(t, s, "b", "bolt", "v-bolt")
	if _, err := s.Snapshot(t.Context(), io.Discard); err != nil { // merges everything
		t.Fatal(err)
	}
	failMerge.Store(true)
	put(t, s, "b", "frozen", "v-frozen")
	deadline := time.Now().Add(10 * time.Second)
	for len(store.JournalFiles(path)) < 2 { // frozen, its merge failing
		if time.Now().After(deadline) {
			t.Fatal("no memtable frozen in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	put(t, s, "b", "active", "v-active")
	return s
}

func put(t *testing.T, s store.Store, b store.Bucket, k, v string) {
	t.Helper()
	if err := s.Update(t.Context(), func(tx store.Tx) error { return tx.Put(b, []byte(k), []byte(v)) }); err != nil {
		t.Fatal(err)
	}
}

func keysOf(ks ...string) [][]byte {
	out := make([][]byte, len(ks))
	for i, k := range ks {
		out[i] = []byte(k)
	}
	return out
}

// A create-only Insert of a key that a read of the same group found absent
// still fails with ErrExists once the key is there: written earlier by the
// same function or by another function of the group after that read; and an
// Insert of a key in bbolt, a frozen memtable or the active one fails too.
func TestJournalInsertAfterAbsentRead(t *testing.T) {
	s := layeredStore(t)
	insert := func(tx store.Tx, k string) error { return tx.Insert("b", []byte(k), []byte("new-"+k)) }
	wantIns := func(what string, got, want error) {
		t.Helper()
		if !errors.Is(got, want) || (want == nil) != (got == nil) {
			t.Errorf("%s: Insert = %v, want %v", what, got, want)
		}
	}
	errs := inOneGroup(t, s,
		func(tx store.Tx) error { // reads, then inserts (the Tokenize pattern)
			got := tx.GetMany("b", keysOf("bolt", "frozen", "active", "n1", "n2", "n3", "n4"))
			for i, want := range []string{"v-bolt", "v-frozen", "v-active", "", "", "", ""} {
				if string(got[i]) != want || (want == "") != (got[i] == nil) {
					t.Errorf("GetMany[%d] = %q, want %q", i, got[i], want)
				}
			}
			for _, k := range []string{"bolt", "frozen", "active"} {
				wantIns("fn1 "+k, insert(tx, k), store.ErrExists)
			}
			wantIns("fn1 n1", insert(tx, "n1"), nil)
			wantIns("fn1 n1 again", insert(tx, "n1"), store.ErrExists)
			return nil
		},
		func(tx store.Tx) error { // finds n2..n4 absent, writes nothing
			for i, v := range tx.GetMany("b", keysOf("n2", "n3", "n4")) {
				if v != nil {
					t.Errorf("fn2 GetMany[%d] = %q, want absent", i, v)
				}
			}
			if tx.Get("b", []byte("n5")) != nil {
				t.Error("fn2: n5 present")
			}
			return nil
		},
		func(tx store.Tx) error { // writes n2 after fn2 found it absent
			wantIns("fn3 n2", insert(tx, "n2"), nil)
			return nil
		},
		func(tx store.Tx) error { // writes n4, then fails: n4 is undone
			wantIns("fn4 n4", insert(tx, "n4"), nil)
			return errors.New("fn4 fails")
		},
		func(tx store.Tx) error {
			for _, k := range []string{"bolt", "frozen", "active", "n1", "n2"} {
				wantIns("fn5 "+k, insert(tx, k), store.ErrExists)
			}
			wantIns("fn5 n3", insert(tx, "n3"), nil)
			wantIns("fn5 n4 (undone by fn4)", insert(tx, "n4"), nil)
			wantIns("fn5 n5", insert(tx, "n5"), nil)
			wantIns("fn5 n5 again", insert(tx, "n5"), store.ErrExists)
			return nil
		},
	)
	for i, err := range errs {
		if (err != nil) != (i == 3) {
			t.Errorf("Update %d: %v", i+1, err)
		}
	}
	// A later group, with another snapshot, sees every insert.
	errs = inOneGroup(t, s, func(tx store.Tx) error {
		for _, k := range []string{"n1", "n2", "n3", "n4", "n5"} {
			if got := tx.Get("b", []byte(k)); string(got) != "new-"+k {
				t.Errorf("%s = %q, want %q", k, got, "new-"+k)
			}
			wantIns("later "+k, insert(tx, k), store.ErrExists)
		}
		return nil
	})
	if errs[0] != nil {
		t.Error(errs[0])
	}
}

// Scan and Buckets inside an Update see, in key order, the writes of the
// functions before it in the group and its own, made in any order, merged
// with every layer (bbolt, frozen and active memtables); not those of a
// function that failed.
func TestJournalScanSeesGroupWrites(t *testing.T) {
	s := layeredStore(t)
	want := map[string]string{"bolt": "v-bolt", "frozen": "v-frozen", "active": "v-active"}
	rng := rand.New(rand.NewPCG(3, 4))
	keys := rng.Perm(200)
	check := func(what string, tx store.Tx, want map[string]string) {
		t.Helper()
		var got []string
		if err := tx.Scan("b", nil, nil, func(k, v []byte) error {
			if want[string(k)] != string(v) {
				t.Errorf("%s: %s = %q, want %q", what, k, v, want[string(k)])
			}
			got = append(got, string(k))
			return nil
		}); err != nil {
			t.Errorf("%s: Scan: %v", what, err)
		}
		if !slices.IsSorted(got) || len(got) != len(want) {
			t.Errorf("%s: Scan gave %d keys (sorted: %v), want %d", what, len(got), slices.IsSorted(got), len(want))
		}
		// With a prefix and a start: the keys of "k1" from "k15" on.
		var sub, wantSub []string
		if err := tx.Scan("b", []byte("k1"), []byte("k15"), func(k, _ []byte) error {
			sub = append(sub, string(k))
			return nil
		}); err != nil {
			t.Errorf("%s: Scan: %v", what, err)
		}
		for k := range want {
			if len(k) >= 2 && k[:2] == "k1" && k >= "k15" {
				wantSub = append(wantSub, k)
			}
		}
		slices.Sort(wantSub)
		if !slices.Equal(sub, wantSub) {
			t.Errorf("%s: prefix Scan = %q, want %q", what, sub, wantSub)
		}
	}
	errs := inOneGroup(t, s,
		func(tx store.Tx) error { // writes in random order, and deletes
			for _, i := range keys[:100] {
				k := fmt.Sprint("k", i)
				want[k] = "v" + k
				if err := tx.Put("b", []byte(k), []byte("v"+k)); err != nil {
					return err
				}
			}
			for _, k := range []string{"bolt", "frozen"} {
				delete(want, k)
				if err := tx.Delete("b", []byte(k)); err != nil {
					return err
				}
			}
			if err := tx.Put("nb", []byte("x"), []byte("y")); err != nil {
				return err
			}
			check("fn1", tx, want)
			return nil
		},
		func(tx store.Tx) error { // writes, then fails
			for _, i := range keys[100:150] {
				if err := tx.Put("b", fmt.Append(nil, "k", i), []byte("undone")); err != nil {
					return err
				}
			}
			if err := tx.Put("nb2", []byte("x"), []byte("y")); err != nil {
				return err
			}
			return errors.New("fn2 fails")
		},
		func(tx store.Tx) error { // sees fn1's writes, and adds its own
			bs, err := tx.Buckets()
			if err != nil {
				return err
			}
			if !slices.Equal(bs, []store.Bucket{"b", "blocker", "nb"}) {
				t.Errorf("fn3: Buckets = %q, want [b blocker nb]", bs)
			}
			check("fn3 before its writes", tx, want)
			for _, i := range keys[150:] {
				k := fmt.Sprint("k", i)
				want[k] = "v" + k
				if err := tx.Put("b", []byte(k), []byte("v"+k)); err != nil {
					return err
				}
			}
			check("fn3", tx, want)
			return nil
		},
	)
	for i, err := range errs {
		if (err != nil) != (i == 1) {
			t.Errorf("Update %d: %v", i+1, err)
		}
	}
	if err := s.View(t.Context(), func(tx store.Tx) error {
		check("View after the group", tx, want)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

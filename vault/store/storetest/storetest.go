// Package storetest is the conformance suite of store.Store: every backend
// (bbolt now, PostgreSQL later) runs RunConformance from its own tests.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// RunConformance runs the conformance tests of the store.Store contract as
// subtests of t.
//
// open(t) must return an open Store. For a given t (each subtest has its
// own) the first call must return a Store over fresh, empty storage, and
// later calls the same storage again: the suite closes a Store and calls
// open(t) again to check that committed data persists. open should register
// a t.Cleanup that closes the Store (and may check its storage); Close must
// therefore accept being called more than once.
func RunConformance(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) store.Store)
	}{
		{"Empty", testEmpty},
		{"PutGet", testPutGet},
		{"GetMany", testGetMany},
		{"GetManyIn", testGetManyIn},
		{"Insert", testInsert},
		{"Delete", testDelete},
		{"Validation", testValidation},
		{"ReadOnlyView", testReadOnlyView},
		{"TxDone", testTxDone},
		{"Scan", testScan},
		{"ScanStop", testScanStop},
		{"ScanMutation", testScanMutation},
		{"NextSequence", testNextSequence},
		{"Buckets", testBuckets},
		{"Copy", testCopy},
		{"ValuesCopiedOut", testValuesCopiedOut},
		{"ErrorRollback", testErrorRollback},
		{"ErrorIsolation", testErrorIsolation},
		{"Panic", testPanic},
		{"Context", testContext},
		{"ConcurrentUpdates", testConcurrentUpdates},
		{"ConcurrentCounter", testConcurrentCounter},
		{"Snapshot", testSnapshot},
		{"Reopen", testReopen},
		{"Closed", testClosed},
		{"CloseDrains", testCloseDrains},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

const (
	bkt  store.Bucket = "conformance"
	bkt2 store.Bucket = "conformance.other"
)

var errBoom = errors.New("boom")

func update(t *testing.T, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.Update(t.Context(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.View(t.Context(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// get returns a copy of the value of key in b, read in a View.
func get(t *testing.T, s store.Store, b store.Bucket, key string) []byte {
	t.Helper()
	var v []byte
	view(t, s, func(tx store.Tx) error {
		v = bytes.Clone(tx.Get(b, []byte(key)))
		return nil
	})
	return v
}

func put(t *testing.T, s store.Store, b store.Bucket, kv ...string) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for i := 0; i+1 < len(kv); i += 2 {
			if err := tx.Put(b, []byte(kv[i]), []byte(kv[i+1])); err != nil {
				return err
			}
		}
		return nil
	})
}

type kv struct{ k, v string }

// scan returns the pairs that tx.Scan passes to its callback, copied.
func scan(t *testing.T, s store.Store, b store.Bucket, prefix, start []byte) []kv {
	t.Helper()
	var got []kv
	view(t, s, func(tx store.Tx) error {
		got = got[:0]
		return tx.Scan(b, prefix, start, func(k, v []byte) error {
			got = append(got, kv{string(k), string(v)})
			return nil
		})
	})
	return got
}

func wantErr(t *testing.T, what string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Errorf("%s: got error %v, want %v", what, got, want)
	}
}

func testEmpty(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	view(t, s, func(tx store.Tx) error {
		if v := tx.Get(bkt, []byte("k")); v != nil {
			t.Errorf("Get on missing bucket = %q, want nil", v)
		}
		err := tx.Scan(bkt, nil, nil, func(k, v []byte) error {
			t.Errorf("Scan on missing bucket called fn(%q)", k)
			return nil
		})
		if err != nil {
			t.Errorf("Scan on missing bucket: %v", err)
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		if err := tx.Delete(bkt, []byte("k")); err != nil {
			t.Errorf("Delete in missing bucket: %v", err)
		}
		if v := tx.Get(bkt, []byte("k")); v != nil {
			t.Errorf("Get on missing bucket in Update = %q, want nil", v)
		}
		return nil
	})
}

func testPutGet(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	bin := []byte{0, 1, 0xfe, 0xff, 0}
	update(t, s, func(tx store.Tx) error {
		for _, p := range []struct {
			k, v []byte
		}{
			{[]byte("k1"), []byte("v1")},
			{[]byte("empty"), []byte{}},
			{[]byte("nil"), nil},
			{bin, bin},
		} {
			if err := tx.Put(bkt, p.k, p.v); err != nil {
				return err
			}
		}
		// Read your own writes, before commit.
		if got := tx.Get(bkt, []byte("k1")); string(got) != "v1" {
			t.Errorf("Get before commit = %q, want v1", got)
		}
		return nil
	})
	if got := get(t, s, bkt, "k1"); string(got) != "v1" {
		t.Errorf("Get k1 = %q, want v1", got)
	}
	if got := get(t, s, bkt, string(bin)); !bytes.Equal(got, bin) {
		t.Errorf("Get binary key = %x, want %x", got, bin)
	}
	if got := get(t, s, bkt, "absent"); got != nil {
		t.Errorf("Get absent = %q, want nil", got)
	}
	if got := get(t, s, bkt2, "k1"); got != nil {
		t.Errorf("Get k1 in other bucket = %q, want nil", got)
	}
	view(t, s, func(tx store.Tx) error {
		for _, k := range []string{"empty", "nil"} {
			if v := tx.Get(bkt, []byte(k)); v == nil || len(v) != 0 {
				t.Errorf("Get %s = %#v, want non-nil empty slice", k, v)
			}
		}
		return nil
	})
	put(t, s, bkt, "k1", "v1b")
	if got := get(t, s, bkt, "k1"); string(got) != "v1b" {
		t.Errorf("Get k1 after overwrite = %q, want v1b", got)
	}
}

// getManyWant compares a GetMany result with the values Get returns for the same keys.
func getManyWant(t *testing.T, what string, tx store.Tx, b store.Bucket, keys [][]byte) {
	t.Helper()
	got := tx.GetMany(b, keys)
	if len(got) != len(keys) {
		t.Fatalf("%s: GetMany returned %d values for %d keys", what, len(got), len(keys))
	}
	for i, k := range keys {
		want := tx.Get(b, k)
		if (got[i] == nil) != (want == nil) || !bytes.Equal(got[i], want) {
			t.Errorf("%s: GetMany value %d = %#v, Get says %#v", what, i, got[i], want)
		}
	}
}

// testGetManyIn: store.GetManyIn answers, read by read, exactly what GetMany answers: reads of
// different keys in three buckets, an invalid and a missing bucket, a read of no keys, the same
// bucket twice; in a View and inside an Update that wrote some of the keys.
func testGetManyIn(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	const bkt3 store.Bucket = "conformance.third"
	bin := []byte{0, 1, 0xfe, 0xff, 0}
	put(t, s, bkt, "a", "1", "b", "2", "empty", "", string(bin), "bin")
	put(t, s, bkt2, "x", "10", "a", "other", "c", "3", "empty", "")
	put(t, s, bkt3, "z", "26")
	long := bytes.Repeat([]byte("k"), store.MaxKeySize+1)
	// The same keys in two buckets (as a detokenize reads records and canary marks), and in a
	// missing one.
	same := [][]byte{[]byte("b"), []byte("absent"), []byte("a"), nil, []byte("empty"), bin, long, []byte("a"), []byte("c")}
	reads := []store.Read{
		{Bucket: bkt, Keys: [][]byte{[]byte("b"), []byte("absent"), []byte("a"), nil, []byte("empty"), long, []byte("a")}},
		{Bucket: bkt2, Keys: [][]byte{[]byte("x"), []byte("b"), []byte("a")}},
		{Bucket: "bad/bucket", Keys: [][]byte{[]byte("a")}},
		{Bucket: bkt3, Keys: nil},
		{Bucket: bkt3, Keys: [][]byte{[]byte("z"), []byte("y")}},
		{Bucket: "missing", Keys: [][]byte{[]byte("a")}},
		{Bucket: bkt, Keys: [][]byte{[]byte("empty")}},
	}
	pairs := [][]store.Read{
		{{Bucket: bkt, Keys: same}, {Bucket: bkt2, Keys: same}},
		{{Bucket: bkt, Keys: same}, {Bucket: "missing", Keys: same}},
	}
	check := func(what string, tx store.Tx, reads []store.Read) {
		t.Helper()
		got := store.GetManyIn(tx, reads)
		if len(got) != len(reads) {
			t.Fatalf("%s: GetManyIn gave %d results for %d reads", what, len(got), len(reads))
		}
		for i, r := range reads {
			want := tx.GetMany(r.Bucket, r.Keys)
			if len(got[i]) != len(want) {
				t.Errorf("%s: read %d: %d values, GetMany gives %d", what, i, len(got[i]), len(want))
				continue
			}
			for n := range want {
				if (got[i][n] == nil) != (want[n] == nil) || !bytes.Equal(got[i][n], want[n]) {
					t.Errorf("%s: read %d value %d = %#v, GetMany says %#v", what, i, n, got[i][n], want[n])
				}
			}
		}
	}
	checkAll := func(what string, tx store.Tx) {
		t.Helper()
		check(what, tx, reads)
		for n, p := range pairs {
			check(fmt.Sprintf("%s, same keys %d", what, n), tx, p)
		}
	}
	view(t, s, func(tx store.Tx) error {
		if got := store.GetManyIn(tx, nil); len(got) != 0 {
			t.Errorf("GetManyIn(no reads) = %q", got)
		}
		if got := store.GetManyIn(tx, []store.Read{{Bucket: bkt}, {Bucket: bkt2}}); len(got) != 2 || len(got[0]) != 0 || len(got[1]) != 0 {
			t.Errorf("GetManyIn(reads of no keys) = %q, want empty", got)
		}
		checkAll("View", tx)
		return nil
	})
	// Inside an Update that wrote some of the keys in either bucket.
	update(t, s, func(tx store.Tx) error {
		if err := tx.Put(bkt, []byte("absent"), []byte("new")); err != nil {
			return err
		}
		if err := tx.Put(bkt2, []byte("b"), []byte("new")); err != nil {
			return err
		}
		if err := tx.Delete(bkt2, []byte("c")); err != nil {
			return err
		}
		if err := tx.Delete(bkt3, []byte("z")); err != nil {
			return err
		}
		checkAll("Update", tx)
		return nil
	})
}

func testGetMany(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	bin := []byte{0, 1, 0xfe, 0xff, 0}
	put(t, s, bkt, "a", "1", "b", "2", "empty", "", string(bin), "bin")
	put(t, s, bkt2, "a", "other")
	long := bytes.Repeat([]byte("k"), store.MaxKeySize+1)
	keys := [][]byte{[]byte("b"), []byte("absent"), []byte("a"), nil, []byte("empty"), bin, long, []byte("a")}
	view(t, s, func(tx store.Tx) error {
		if got := tx.GetMany(bkt, nil); len(got) != 0 {
			t.Errorf("GetMany(no keys) = %q, want empty", got)
		}
		got := tx.GetMany(bkt, keys)
		want := []string{"2", "", "1", "", "", "bin", "", "1"}
		present := []bool{true, false, true, false, true, true, false, true}
		for i := range keys {
			if (got[i] != nil) != present[i] || string(got[i]) != want[i] {
				t.Errorf("GetMany value %d = %#v, want %q (present %v)", i, got[i], want[i], present[i])
			}
		}
		if v := tx.GetMany("bad/bucket", keys); len(v) != len(keys) || slices.ContainsFunc(v, func(b []byte) bool { return b != nil }) {
			t.Errorf("GetMany on an invalid bucket = %q, want %d absent values", v, len(keys))
		}
		if v := tx.GetMany("missing", keys[:2]); len(v) != 2 || v[0] != nil || v[1] != nil {
			t.Errorf("GetMany on a missing bucket = %q, want absent", v)
		}
		getManyWant(t, "View", tx, bkt2, keys)
		return nil
	})
	// Inside Update, GetMany sees the function's own puts and deletes.
	update(t, s, func(tx store.Tx) error {
		if err := tx.Put(bkt, []byte("absent"), []byte("new")); err != nil {
			return err
		}
		if err := tx.Put(bkt, []byte("a"), []byte("1b")); err != nil {
			return err
		}
		if err := tx.Delete(bkt, []byte("b")); err != nil {
			return err
		}
		got := tx.GetMany(bkt, keys)
		if string(got[1]) != "new" || string(got[2]) != "1b" || string(got[7]) != "1b" || got[0] != nil {
			t.Errorf("GetMany after writes in the same Update = %q, want new, 1b and b deleted", got)
		}
		getManyWant(t, "Update", tx, bkt, keys)
		return nil
	})
	// A large batch: every key found, in order.
	var many [][]byte
	update(t, s, func(tx store.Tx) error {
		many = many[:0]
		for i := range 500 {
			k := []byte(fmt.Sprintf("many%04d", i))
			many = append(many, k)
			if err := tx.Put(bkt, k, k); err != nil {
				return err
			}
		}
		return nil
	})
	slices.Reverse(many)
	view(t, s, func(tx store.Tx) error {
		for i, v := range tx.GetMany(bkt, many) {
			if !bytes.Equal(v, many[i]) {
				t.Fatalf("GetMany of 500 keys: value %d = %q, want %q", i, v, many[i])
			}
		}
		return nil
	})
	// Batches over a sparse bucket, the present keys at the ends of the batch's key range or
	// none inside it (as a backend that skipped the lookups of a range holding no key would
	// have to get right): repeats and empty values, in View and in Update with pending writes.
	sparse := store.Bucket("sparse")
	put(t, s, sparse, "a", "before", "m0", "", "m9", "last", "z", "after")
	var batch [][]byte
	for i := range 10 {
		batch = append(batch, []byte(fmt.Sprintf("m%d", i)))
	}
	batch = append(batch, []byte("m5"), []byte("m0"))
	wantSparse := func(what string, tx store.Tx, keys [][]byte, want map[string]string) {
		t.Helper()
		for i, v := range tx.GetMany(sparse, keys) {
			w, ok := want[string(keys[i])]
			if (v != nil) != ok || string(v) != w {
				t.Errorf("%s: GetMany value %d (%q) = %#v, want %q (present %v)", what, i, keys[i], v, w, ok)
			}
		}
	}
	view(t, s, func(tx store.Tx) error {
		wantSparse("ends present", tx, batch, map[string]string{"m0": "", "m9": "last"})
		wantSparse("low end present", tx, batch[:9], map[string]string{"m0": ""})
		wantSparse("high end present", tx, batch[1:10], map[string]string{"m9": "last"})
		wantSparse("none in range", tx, batch[1:9], nil)
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		if err := tx.Put(sparse, []byte("m4"), []byte("new")); err != nil {
			return err
		}
		if err := tx.Delete(sparse, []byte("m9")); err != nil {
			return err
		}
		wantSparse("Update", tx, batch, map[string]string{"m0": "", "m4": "new"})
		wantSparse("Update, none stored in range", tx, batch[1:9], map[string]string{"m4": "new"})
		return nil
	})
	// After the function returned, GetMany reports every key absent.
	var leaked store.Tx
	view(t, s, func(tx store.Tx) error { leaked = tx; return nil })
	if v := leaked.GetMany(bkt, keys[:1]); len(v) != 1 || v[0] != nil {
		t.Errorf("GetMany after the function returned = %q, want absent", v)
	}
}

func testInsert(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	put(t, s, bkt, "old", "1")
	update(t, s, func(tx store.Tx) error {
		if err := tx.Insert(bkt, []byte("new"), []byte("2")); err != nil {
			t.Errorf("Insert of an absent key: %v", err)
		}
		if got := tx.Get(bkt, []byte("new")); string(got) != "2" {
			t.Errorf("Get after Insert = %q, want 2", got)
		}
		wantErr(t, "Insert of a key inserted in the same transaction", tx.Insert(bkt, []byte("new"), []byte("3")), store.ErrExists)
		if err := tx.Put(bkt, []byte("put"), []byte("4")); err != nil {
			return err
		}
		wantErr(t, "Insert of a key put in the same transaction", tx.Insert(bkt, []byte("put"), []byte("5")), store.ErrExists)
		if err := tx.Insert(bkt, []byte("empty"), nil); err != nil {
			t.Errorf("Insert of a nil value: %v", err)
		}
		wantErr(t, "Insert with an invalid bucket", tx.Insert("bad/name", []byte("k"), nil), store.ErrBucketName)
		wantErr(t, "Insert with an empty key", tx.Insert(bkt, nil, nil), store.ErrKeyEmpty)
		return nil
	})
	if got := get(t, s, bkt, "new"); string(got) != "2" {
		t.Errorf("after commit: %q, want 2", got)
	}
	if got := get(t, s, bkt, "empty"); got == nil || len(got) != 0 {
		t.Errorf("inserted nil value = %#v, want a non-nil empty slice", got)
	}
	view(t, s, func(tx store.Tx) error {
		wantErr(t, "Insert in View", tx.Insert(bkt, []byte("v"), nil), store.ErrReadOnly)
		return nil
	})
	// A key stored before: Insert never overwrites it. (Bolt says ErrExists at once; pgstore
	// fails the commit, re-runs the function, and gives up: either way Update fails.)
	if err := s.Update(t.Context(), func(tx store.Tx) error { return tx.Insert(bkt, []byte("old"), []byte("X")) }); err == nil {
		t.Error("Update that Inserts over a stored key succeeded")
	}
	if got := get(t, s, bkt, "old"); string(got) != "1" {
		t.Errorf("a stored key after Insert over it = %q, want 1", got)
	}
	// Deleting then inserting again in one transaction replaces the value.
	update(t, s, func(tx store.Tx) error {
		if err := tx.Delete(bkt, []byte("old")); err != nil {
			return err
		}
		return tx.Insert(bkt, []byte("old"), []byte("1b"))
	})
	if got := get(t, s, bkt, "old"); string(got) != "1b" {
		t.Errorf("Delete then Insert = %q, want 1b", got)
	}
	// Racing creators: each reads, and inserts only if absent. Exactly one value is stored
	// and every caller ends up with it (the losers re-run and read the winner's).
	const n = 8
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := fmt.Sprintf("v%d", i)
			err := s.Update(t.Context(), func(tx store.Tx) error {
				if v := tx.Get(bkt, []byte("race")); v != nil {
					got[i] = string(v)
					return nil
				}
				got[i] = mine
				return tx.Insert(bkt, []byte("race"), []byte(mine))
			})
			if err != nil {
				t.Errorf("racing Insert %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	stored := string(get(t, s, bkt, "race"))
	for i, g := range got {
		if g != stored {
			t.Errorf("racing creator %d ended with %q, the store holds %q", i, g, stored)
		}
	}
}

func testDelete(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	put(t, s, bkt, "a", "1", "b", "2", "c", "3")
	update(t, s, func(tx store.Tx) error {
		if err := tx.Delete(bkt, []byte("b")); err != nil {
			return err
		}
		if v := tx.Get(bkt, []byte("b")); v != nil {
			t.Errorf("Get after Delete in same tx = %q, want nil", v)
		}
		return tx.Delete(bkt, []byte("absent"))
	})
	if got, want := scan(t, s, bkt, nil, nil), []kv{{"a", "1"}, {"c", "3"}}; !slices.Equal(got, want) {
		t.Errorf("after Delete: Scan = %q, want %q", got, want)
	}
}

func testValidation(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	long := strings.Repeat("b", store.MaxBucketNameSize)
	update(t, s, func(tx store.Tx) error {
		for _, b := range []store.Bucket{"", "a/b", "a b", "é", "a\x00", store.Bucket(long + "x")} {
			wantErr(t, fmt.Sprintf("Put(bucket %q)", b), tx.Put(b, []byte("k"), []byte("v")), store.ErrBucketName)
			wantErr(t, fmt.Sprintf("Delete(bucket %q)", b), tx.Delete(b, []byte("k")), store.ErrBucketName)
			wantErr(t, fmt.Sprintf("Scan(bucket %q)", b), tx.Scan(b, nil, nil, func(k, v []byte) error { return nil }), store.ErrBucketName)
			_, err := tx.NextSequence(b)
			wantErr(t, fmt.Sprintf("NextSequence(bucket %q)", b), err, store.ErrBucketName)
			if v := tx.Get(b, []byte("k")); v != nil {
				t.Errorf("Get(bucket %q) = %q, want nil", b, v)
			}
			if b.Validate() == nil {
				t.Errorf("Bucket(%q).Validate() = nil, want error", b)
			}
		}
		for _, b := range []store.Bucket{store.Bucket(long), "a", "A-z_0.9"} {
			if err := tx.Put(b, []byte("k"), []byte("v")); err != nil {
				t.Errorf("Put(bucket %q): %v", b, err)
			}
		}
		wantErr(t, "Put(empty key)", tx.Put(bkt, nil, []byte("v")), store.ErrKeyEmpty)
		wantErr(t, "Put(empty key)", tx.Put(bkt, []byte{}, []byte("v")), store.ErrKeyEmpty)
		wantErr(t, "Delete(empty key)", tx.Delete(bkt, nil), store.ErrKeyEmpty)
		big := bytes.Repeat([]byte("k"), store.MaxKeySize+1)
		wantErr(t, "Put(key too large)", tx.Put(bkt, big, []byte("v")), store.ErrKeyTooLarge)
		wantErr(t, "Delete(key too large)", tx.Delete(bkt, big), store.ErrKeyTooLarge)
		if v := tx.Get(bkt, big); v != nil {
			t.Errorf("Get(key too large) = %q, want nil", v)
		}
		if err := tx.Put(bkt, big[:store.MaxKeySize], []byte("max key")); err != nil {
			t.Errorf("Put(key of MaxKeySize): %v", err)
		}
		wantErr(t, "Put(value too large)", tx.Put(bkt, []byte("k"), make([]byte, store.MaxValueSize+1)), store.ErrValueTooLarge)
		return nil
	})
	maxValue := bytes.Repeat([]byte{0xa5}, store.MaxValueSize)
	put(t, s, bkt, "max value", string(maxValue))
	if got := get(t, s, bkt, "max value"); !bytes.Equal(got, maxValue) {
		t.Errorf("value of MaxValueSize: got %d bytes, want %d equal bytes", len(got), len(maxValue))
	}
	if got := get(t, s, bkt, strings.Repeat("k", store.MaxKeySize)); string(got) != "max key" {
		t.Errorf("key of MaxKeySize: got %q, want %q", got, "max key")
	}
	if got := get(t, s, bkt, "k"); got != nil {
		t.Errorf("rejected Put stored %d bytes", len(got))
	}
}

func testReadOnlyView(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	put(t, s, bkt, "k", "v")
	view(t, s, func(tx store.Tx) error {
		wantErr(t, "Put in View", tx.Put(bkt, []byte("k"), []byte("w")), store.ErrReadOnly)
		wantErr(t, "Delete in View", tx.Delete(bkt, []byte("k")), store.ErrReadOnly)
		_, err := tx.NextSequence(bkt)
		wantErr(t, "NextSequence in View", err, store.ErrReadOnly)
		return nil
	})
	if got := get(t, s, bkt, "k"); string(got) != "v" {
		t.Errorf("after rejected writes in View: Get = %q, want v", got)
	}
}

func testTxDone(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	put(t, s, bkt, "k", "v")
	check := func(what string, tx store.Tx) {
		if v := tx.Get(bkt, []byte("k")); v != nil {
			t.Errorf("%s: Get after fn returned = %q, want nil", what, v)
		}
		wantErr(t, what+": Put after fn returned", tx.Put(bkt, []byte("k"), []byte("w")), store.ErrTxDone)
		wantErr(t, what+": Delete after fn returned", tx.Delete(bkt, []byte("k")), store.ErrTxDone)
		wantErr(t, what+": Scan after fn returned", tx.Scan(bkt, nil, nil, func(k, v []byte) error { return nil }), store.ErrTxDone)
		_, err := tx.NextSequence(bkt)
		wantErr(t, what+": NextSequence after fn returned", err, store.ErrTxDone)
	}
	var kept store.Tx
	update(t, s, func(tx store.Tx) error { kept = tx; return nil })
	check("Update", kept)
	view(t, s, func(tx store.Tx) error { kept = tx; return nil })
	check("View", kept)
	if got := get(t, s, bkt, "k"); string(got) != "v" {
		t.Errorf("Get = %q, want v", got)
	}
}

func testScan(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	keys := []string{"a", "ab", "abc", "abd", "ac", "b", "b\x00", "\xff", "\xff\xff"}
	update(t, s, func(tx store.Tx) error {
		// Insert out of order; values are "v"+key.
		for _, i := range []int{5, 0, 8, 2, 7, 1, 4, 6, 3} {
			if err := tx.Put(bkt, []byte(keys[i]), []byte("v"+keys[i])); err != nil {
				return err
			}
		}
		return tx.Put(bkt2, []byte("abc"), []byte("other bucket"))
	})
	pairs := func(ks ...string) []kv {
		var out []kv
		for _, k := range ks {
			out = append(out, kv{k, "v" + k})
		}
		return out
	}
	b := func(s string) []byte { return []byte(s) }
	for _, tc := range []struct {
		prefix, start []byte
		want          []kv
	}{
		{nil, nil, pairs(keys...)},
		{b(""), b(""), pairs(keys...)},
		{b("ab"), nil, pairs("ab", "abc", "abd")},
		{b("ab"), b("abc"), pairs("abc", "abd")},
		{b("ab"), b("abcc"), pairs("abd")},
		{b("ab"), b("a"), pairs("ab", "abc", "abd")},
		{b("ab"), b("b"), nil},
		{b("abc"), nil, pairs("abc")},
		{b("abcd"), nil, nil},
		{b("zz"), nil, nil},
		{b("b"), nil, pairs("b", "b\x00")},
		{nil, b("b"), pairs("b", "b\x00", "\xff", "\xff\xff")},
		{nil, b("aa"), pairs("ab", "abc", "abd", "ac", "b", "b\x00", "\xff", "\xff\xff")},
		{b("\xff"), nil, pairs("\xff", "\xff\xff")},
		{b("\xff"), b("\xff\x00"), pairs("\xff\xff")},
	} {
		if got := scan(t, s, bkt, tc.prefix, tc.start); !slices.Equal(got, tc.want) {
			t.Errorf("Scan(prefix %q, start %q) = %q, want %q", tc.prefix, tc.start, got, tc.want)
		}
	}
	// Scan in Update sees the function's own writes, in order.
	update(t, s, func(tx store.Tx) error {
		if err := tx.Put(bkt, []byte("aa"), []byte("vaa")); err != nil {
			return err
		}
		if err := tx.Delete(bkt, []byte("ab")); err != nil {
			return err
		}
		var got []kv
		err := tx.Scan(bkt, []byte("a"), nil, func(k, v []byte) error {
			got = append(got, kv{string(k), string(v)})
			return nil
		})
		if want := pairs("a", "aa", "abc", "abd", "ac"); !slices.Equal(got, want) {
			t.Errorf("Scan in Update = %q, want %q", got, want)
		}
		return err
	})
	// Many keys, across pages.
	const n = 5000
	update(t, s, func(tx store.Tx) error {
		for i := range n {
			if err := tx.Put(bkt2, fmt.Appendf(nil, "many/%06d", i), fmt.Appendf(nil, "%d", i)); err != nil {
				return err
			}
		}
		return nil
	})
	got := scan(t, s, bkt2, []byte("many/"), []byte("many/001000"))
	if len(got) != n-1000 {
		t.Fatalf("Scan of %d keys from 1000: got %d keys", n, len(got))
	}
	for i, p := range got {
		if want := fmt.Sprintf("many/%06d", i+1000); p.k != want || p.v != fmt.Sprint(i+1000) {
			t.Fatalf("Scan of many keys: #%d = %q, want key %q", i, p, want)
		}
	}
}

func testScanStop(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	put(t, s, bkt, "1", "a", "2", "b", "3", "c", "4", "d")
	view(t, s, func(tx store.Tx) error {
		var seen []string
		err := tx.Scan(bkt, nil, nil, func(k, v []byte) error {
			seen = append(seen, string(k))
			if len(seen) == 2 {
				return store.ErrStopScan
			}
			return nil
		})
		if err != nil || !slices.Equal(seen, []string{"1", "2"}) {
			t.Errorf("Scan stopped with ErrStopScan: err %v, seen %q; want nil, [1 2]", err, seen)
		}
		seen = nil
		err = tx.Scan(bkt, nil, []byte("3"), func(k, v []byte) error {
			seen = append(seen, string(k))
			return fmt.Errorf("wrapped: %w", store.ErrStopScan)
		})
		if err != nil || !slices.Equal(seen, []string{"3"}) {
			t.Errorf("Scan stopped with wrapped ErrStopScan: err %v, seen %q; want nil, [3]", err, seen)
		}
		seen = nil
		err = tx.Scan(bkt, nil, nil, func(k, v []byte) error {
			seen = append(seen, string(k))
			if len(seen) == 3 {
				return errBoom
			}
			return nil
		})
		if !errors.Is(err, errBoom) || len(seen) != 3 {
			t.Errorf("Scan stopped with an error: err %v after %d keys; want %v after 3", err, len(seen), errBoom)
		}
		return nil
	})
}

func testScanMutation(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	put(t, s, bkt, "a", "1", "b", "2")
	update(t, s, func(tx store.Tx) error {
		err := tx.Scan(bkt, nil, nil, func(k, v []byte) error {
			wantErr(t, "Put on scanned bucket", tx.Put(bkt, []byte("c"), []byte("3")), store.ErrScanMutation)
			wantErr(t, "Delete on scanned bucket", tx.Delete(bkt, k), store.ErrScanMutation)
			// Reads of the scanned bucket and writes elsewhere are fine.
			if got := tx.Get(bkt, k); !bytes.Equal(got, v) {
				t.Errorf("Get(%q) inside Scan = %q, want %q", k, got, v)
			}
			return tx.Put(bkt2, k, v)
		})
		if err != nil {
			return err
		}
		// After Scan returns, the bucket can be written again.
		return tx.Delete(bkt, []byte("a"))
	})
	if got, want := scan(t, s, bkt, nil, nil), []kv{{"b", "2"}}; !slices.Equal(got, want) {
		t.Errorf("scanned bucket = %q, want %q", got, want)
	}
	if got, want := scan(t, s, bkt2, nil, nil), []kv{{"a", "1"}, {"b", "2"}}; !slices.Equal(got, want) {
		t.Errorf("copied bucket = %q, want %q", got, want)
	}
}

// nextSequence returns the next sequence number of bucket b, taken in an Update of its own.
func testBuckets(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	view(t, s, func(tx store.Tx) error {
		if bs, err := tx.Buckets(); err != nil || len(bs) != 0 {
			t.Errorf("Buckets of an empty store = %q, %v; want none", bs, err)
		}
		if n, err := tx.Sequence(bkt); err != nil || n != 0 {
			t.Errorf("Sequence of a missing bucket = %d, %v; want 0", n, err)
		}
		wantErr(t, "AdvanceSequence in View", tx.AdvanceSequence(bkt, 1), store.ErrReadOnly)
		_, err := tx.Sequence("bad/name")
		wantErr(t, "Sequence of an invalid bucket", err, store.ErrBucketName)
		return nil
	})
	put(t, s, bkt2, "k", "v")
	update(t, s, func(tx store.Tx) error {
		if _, err := tx.NextSequence(bkt); err != nil {
			return err
		}
		if _, err := tx.NextSequence(bkt); err != nil {
			return err
		}
		if err := tx.Put("conformance.b", []byte("k"), nil); err != nil {
			return err
		}
		// The function's own writes are listed.
		if bs, err := tx.Buckets(); err != nil || !slices.Equal(bs, []store.Bucket{bkt, "conformance.b", bkt2}) {
			t.Errorf("Buckets in Update = %q, %v", bs, err)
		}
		wantErr(t, "AdvanceSequence of an invalid bucket", tx.AdvanceSequence("bad/name", 1), store.ErrBucketName)
		if err := tx.AdvanceSequence("conformance.seq", 41); err != nil {
			return err
		}
		// Never back: not below 41, and not below what NextSequence handed out (bkt: 2).
		if err := tx.AdvanceSequence("conformance.seq", 7); err != nil {
			return err
		}
		return tx.AdvanceSequence(bkt, 1)
	})
	view(t, s, func(tx store.Tx) error {
		bs, err := tx.Buckets()
		if want := []store.Bucket{bkt, "conformance.b", bkt2, "conformance.seq"}; err != nil || !slices.Equal(bs, want) {
			t.Errorf("Buckets = %q, %v; want %q", bs, err, want)
		}
		for b, want := range map[store.Bucket]uint64{bkt: 2, bkt2: 0, "conformance.seq": 41} {
			if n, err := tx.Sequence(b); err != nil || n != want {
				t.Errorf("Sequence(%s) = %d, %v; want %d", b, n, err, want)
			}
		}
		return nil
	})
	if n := nextSequence(t, s, "conformance.seq"); n != 42 {
		t.Errorf("NextSequence after AdvanceSequence(41) then (7) = %d, want 42", n)
	}
	var leaked store.Tx
	view(t, s, func(tx store.Tx) error { leaked = tx; return nil })
	_, err := leaked.Buckets()
	wantErr(t, "Buckets after the function returned", err, store.ErrTxDone)
	_, err = leaked.Sequence(bkt)
	wantErr(t, "Sequence after the function returned", err, store.ErrTxDone)
}

// testCopy copies the store into a bbolt file (store.Copy) and through a snapshot
// (store.SnapshotOf, then store.RestoreFile), and checks that both hold the same keys,
// values and sequences.
func testCopy(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	bin := []byte{0, 0xff, 1}
	put(t, s, bkt, "a", "1", "b", "", string(bin), "bin")
	update(t, s, func(tx store.Tx) error {
		for i := range 2500 { // several chunks
			k := []byte(fmt.Sprintf("k%05d", i))
			if err := tx.Put(bkt2, k, k); err != nil {
				return err
			}
		}
		_, err := tx.NextSequence(bkt2)
		return err
	})
	want, err := store.Counts(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	if wantCounts := []store.BucketCount{{Bucket: bkt, Keys: 3}, {Bucket: bkt2, Keys: 2500, Sequence: 1}}; !slices.Equal(want, wantCounts) {
		t.Fatalf("Counts = %+v, want %+v", want, wantCounts)
	}
	check := func(what string, dst store.Store) {
		t.Helper()
		if _, err := store.VerifyCopy(t.Context(), want, dst); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		for _, b := range []store.Bucket{bkt, bkt2} {
			if got, src := scan(t, dst, b, nil, nil), scan(t, s, b, nil, nil); !slices.Equal(got, src) {
				t.Errorf("%s: bucket %s differs from the source (%d keys, want %d)", what, b, len(got), len(src))
			}
		}
		if v := get(t, dst, bkt, "b"); v == nil || len(v) != 0 {
			t.Errorf("%s: empty value = %#v, want a non-nil empty slice", what, v)
		}
	}
	dir := t.TempDir()
	dst, err := store.Open(dir+"/copy.db", store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	got, err := store.Copy(t.Context(), dst, s)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Copy = %+v, %v; want %+v", got, err, want)
	}
	check("Copy", dst)
	if _, err := store.Copy(t.Context(), dst, s); !errors.Is(err, store.ErrNotEmpty) {
		t.Errorf("Copy into a non-empty store: %v, want ErrNotEmpty", err)
	}
	var buf bytes.Buffer
	if _, err := store.SnapshotOf(t.Context(), s, &buf, dir); err != nil {
		t.Fatalf("SnapshotOf: %v", err)
	}
	if _, err := store.RestoreFile(&buf, dir+"/restored.db"); err != nil {
		t.Fatalf("RestoreFile of SnapshotOf: %v", err)
	}
	restored, err := store.Open(dir+"/restored.db", store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	check("SnapshotOf", restored)
}

func nextSequence(t *testing.T, s store.Store, b store.Bucket) uint64 {
	t.Helper()
	var n uint64
	update(t, s, func(tx store.Tx) error {
		var err error
		n, err = tx.NextSequence(b)
		return err
	})
	return n
}

func testNextSequence(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	var seqs []uint64
	update(t, s, func(tx store.Tx) error {
		seqs = seqs[:0]
		for range 3 {
			n, err := tx.NextSequence(bkt)
			if err != nil {
				return err
			}
			seqs = append(seqs, n)
		}
		return nil
	})
	if !slices.Equal(seqs, []uint64{1, 2, 3}) {
		t.Errorf("first sequence values = %v, want [1 2 3]", seqs)
	}
	if other := nextSequence(t, s, bkt2); other != 1 {
		t.Errorf("first sequence value of another bucket = %d, want 1", other)
	}
	// The sequence is not a key.
	if got := scan(t, s, bkt, nil, nil); len(got) != 0 {
		t.Errorf("Scan of a bucket with only a sequence = %q, want none", got)
	}
	// A failed Update does not move the committed sequence backwards.
	err := s.Update(t.Context(), func(tx store.Tx) error {
		if _, err := tx.NextSequence(bkt); err != nil {
			return err
		}
		return errBoom
	})
	wantErr(t, "failed Update", err, errBoom)
	last := seqs[len(seqs)-1]
	for range 5 {
		n := nextSequence(t, s, bkt)
		if n <= last {
			t.Errorf("NextSequence = %d after %d, want increasing", n, last)
		}
		last = n
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = open(t)
	if n := nextSequence(t, s, bkt); n <= last {
		t.Errorf("NextSequence after reopen = %d, want > %d", n, last)
	}
}

func testValuesCopiedOut(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	key := []byte("key")
	buf := []byte("original value")
	update(t, s, func(tx store.Tx) error { return tx.Put(bkt, key, buf) })
	// After Update returns, the caller may reuse its buffers.
	copy(buf, "XXXXXXXXXXXXXX")
	copy(key, "zzz")
	if got := get(t, s, bkt, "key"); string(got) != "original value" {
		t.Errorf("after reusing the Put buffers: Get = %q, want %q", got, "original value")
	}
	// A copy taken in View stays correct after later writes, including
	// overwrites of the same key and enough data to move pages around.
	saved := get(t, s, bkt, "key")
	for i := range 50 {
		update(t, s, func(tx store.Tx) error {
			if err := tx.Put(bkt, []byte("key"), fmt.Appendf(nil, "new value %d", i)); err != nil {
				return err
			}
			for j := range 100 {
				if err := tx.Put(bkt2, fmt.Appendf(nil, "%d/%d", i, j), bytes.Repeat([]byte{byte(j)}, 200)); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if string(saved) != "original value" {
		t.Errorf("copied value changed to %q", saved)
	}
	if got := get(t, s, bkt, "key"); string(got) != "new value 49" {
		t.Errorf("Get = %q, want %q", got, "new value 49")
	}
}

func testErrorRollback(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	put(t, s, bkt, "keep", "1")
	err := s.Update(t.Context(), func(tx store.Tx) error {
		for _, k := range []string{"x", "y", "keep"} {
			if err := tx.Put(bkt, []byte(k), []byte("discarded")); err != nil {
				return err
			}
		}
		if err := tx.Delete(bkt, []byte("keep")); err != nil {
			return err
		}
		if err := tx.Put(bkt2, []byte("new bucket"), []byte("discarded")); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	wantErr(t, "Update returning an error", err, errBoom)
	if got, want := scan(t, s, bkt, nil, nil), []kv{{"keep", "1"}}; !slices.Equal(got, want) {
		t.Errorf("after failed Update: Scan = %q, want %q", got, want)
	}
	if got := scan(t, s, bkt2, nil, nil); len(got) != 0 {
		t.Errorf("after failed Update: bucket created by it holds %q", got)
	}
	// Errors without writes are returned too.
	err = s.Update(t.Context(), func(tx store.Tx) error {
		if tx.Get(bkt, []byte("keep")) != nil {
			return errBoom
		}
		return nil
	})
	wantErr(t, "Update failing after a read", err, errBoom)
}

// testErrorIsolation runs concurrent Updates, some failing before or after
// writing, and checks that each caller gets its own result and only the
// successful ones are kept, whatever grouping the backend does.
func testErrorIsolation(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	const rounds, callers = 10, 48
	for round := range rounds {
		var wg sync.WaitGroup
		errs := make([]error, callers)
		results := make([]string, callers)
		for i := range callers {
			wg.Go(func() {
				key := fmt.Appendf(nil, "%02d/%02d", round, i)
				errs[i] = s.Update(t.Context(), func(tx store.Tx) error {
					results[i] = ""
					if i%3 == 1 {
						return fmt.Errorf("caller %d: before writing: %w", i, errBoom)
					}
					if err := tx.Put(bkt, key, key); err != nil {
						return err
					}
					if _, err := tx.NextSequence(bkt2); err != nil {
						return err
					}
					if i%3 == 0 {
						return fmt.Errorf("caller %d: after writing: %w", i, errBoom)
					}
					results[i] = string(tx.Get(bkt, key))
					return nil
				})
			})
		}
		wg.Wait()
		for i, err := range errs {
			if i%3 == 2 {
				if err != nil {
					t.Errorf("round %d caller %d: %v, want nil", round, i, err)
				} else if want := fmt.Sprintf("%02d/%02d", round, i); results[i] != want {
					t.Errorf("round %d caller %d: result variable %q, want %q", round, i, results[i], want)
				}
				continue
			}
			if !errors.Is(err, errBoom) || !strings.HasPrefix(err.Error(), fmt.Sprintf("caller %d:", i)) {
				t.Errorf("round %d caller %d: got error %v, want its own error", round, i, err)
			}
		}
		var got []string
		view(t, s, func(tx store.Tx) error {
			return tx.Scan(bkt, fmt.Appendf(nil, "%02d/", round), nil, func(k, v []byte) error {
				got = append(got, string(k))
				return nil
			})
		})
		var want []string
		for i := 2; i < callers; i += 3 {
			want = append(want, fmt.Sprintf("%02d/%02d", round, i))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: keys kept = %q, want %q", round, got, want)
		}
	}
}

func testPanic(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	err := s.Update(t.Context(), func(tx store.Tx) error {
		if err := tx.Put(bkt, []byte("panicked"), []byte("x")); err != nil {
			return err
		}
		panic("kaboom")
	})
	wantErr(t, "Update that panics", err, store.ErrPanic)
	if err == nil || !strings.Contains(err.Error(), "kaboom") {
		t.Errorf("panic error %q does not mention the panic value", err)
	}
	err = s.Update(t.Context(), func(tx store.Tx) error { panic(errBoom) })
	wantErr(t, "Update that panics with an error", err, store.ErrPanic)
	wantErr(t, "Update that panics with an error", err, errBoom)

	// Concurrent panics do not disturb the other callers.
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.Update(t.Context(), func(tx store.Tx) error {
				if err := tx.Put(bkt, fmt.Appendf(nil, "c%02d", i), []byte("v")); err != nil {
					return err
				}
				if i%4 == 0 {
					var m map[string]int
					m["nil map"]++
				}
				return nil
			})
		})
	}
	wg.Wait()
	var want []kv
	for i, err := range errs {
		if i%4 == 0 {
			wantErr(t, fmt.Sprintf("panicking caller %d", i), err, store.ErrPanic)
			continue
		}
		if err != nil {
			t.Errorf("caller %d: %v", i, err)
		}
		want = append(want, kv{fmt.Sprintf("c%02d", i), "v"})
	}
	if got := scan(t, s, bkt, nil, nil); !slices.Equal(got, want) {
		t.Errorf("after panics: Scan = %q, want %q", got, want)
	}
	put(t, s, bkt, "after", "ok")
	if got := get(t, s, bkt, "after"); string(got) != "ok" {
		t.Errorf("Update after panics: Get = %q, want ok", got)
	}
}

func testContext(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ran := false
	err := s.Update(ctx, func(tx store.Tx) error { ran = true; return tx.Put(bkt, []byte("k"), []byte("v")) })
	if !errors.Is(err, context.Canceled) || ran {
		t.Errorf("Update with a canceled context: err %v, fn ran %v; want %v, not run", err, ran, context.Canceled)
	}
	err = s.View(ctx, func(tx store.Tx) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Errorf("View with a canceled context: err %v, fn ran %v; want %v, not run", err, ran, context.Canceled)
	}
	dctx, dcancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer dcancel()
	err = s.Update(dctx, func(tx store.Tx) error { ran = true; return nil })
	if !errors.Is(err, context.DeadlineExceeded) || ran {
		t.Errorf("Update past its deadline: err %v, fn ran %v; want %v, not run", err, ran, context.DeadlineExceeded)
	}
	if got := get(t, s, bkt, "k"); got != nil {
		t.Errorf("Update with a canceled context wrote %q", got)
	}

	// A context canceled while the call waits: either the call is abandoned
	// (ctx error, nothing written) or its result stands (nil, written).
	release := make(chan struct{})
	blocking := make(chan error, 1)
	entered := make(chan struct{})
	go func() {
		var once sync.Once
		blocking <- s.Update(t.Context(), func(tx store.Tx) error {
			once.Do(func() { close(entered) })
			<-release
			return tx.Put(bkt, []byte("blocker"), []byte("v"))
		})
	}()
	<-entered
	ctx, cancel = context.WithCancel(t.Context())
	waiting := make(chan error, 1)
	go func() {
		waiting <- s.Update(ctx, func(tx store.Tx) error { return tx.Put(bkt, []byte("waiter"), []byte("v")) })
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	var werr error
	select {
	case werr = <-waiting:
	case <-time.After(100 * time.Millisecond):
		// The backend may not abandon calls it has started; let them finish.
		close(release)
		release = nil
		werr = <-waiting
	}
	if release != nil {
		close(release)
	}
	if err := <-blocking; err != nil {
		t.Errorf("blocking Update: %v", err)
	}
	got := get(t, s, bkt, "waiter")
	switch {
	case errors.Is(werr, store.ErrCommitUnknown):
		// Canceled while its COMMIT was in flight (a backend that lets ctx bound the commit):
		// written or not, both are allowed.
		t.Logf("Update canceled while waiting: %v (written: %v)", werr, got != nil)
	case werr == nil && string(got) != "v":
		t.Errorf("Update canceled while waiting returned nil but wrote %q", got)
	case errors.Is(werr, context.Canceled) && got != nil:
		t.Errorf("Update canceled while waiting returned %v but wrote %q", werr, got)
	case werr != nil && !errors.Is(werr, context.Canceled):
		t.Errorf("Update canceled while waiting: %v", werr)
	}
}

// testConcurrentUpdates runs 32 goroutines × 500 Updates, with concurrent
// Views, and checks that every write is there, also after reopening.
func testConcurrentUpdates(t *testing.T, open func(t *testing.T) store.Store) {
	const goroutines, perG = 32, 500
	s := open(t)
	seqs := make([][]uint64, goroutines)
	var wg sync.WaitGroup
	stopViews := make(chan struct{})
	var views atomic.Int64
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stopViews:
					return
				default:
				}
				err := s.View(t.Context(), func(tx store.Tx) error {
					n := 0
					err := tx.Scan(bkt, []byte("g00/"), nil, func(k, v []byte) error { n++; return nil })
					if n > perG {
						t.Errorf("View saw %d keys, want <= %d", n, perG)
					}
					return err
				})
				if err != nil {
					t.Errorf("concurrent View: %v", err)
					return
				}
				views.Add(1)
				time.Sleep(time.Millisecond)
			}
		})
	}
	var writers sync.WaitGroup
	for g := range goroutines {
		writers.Go(func() {
			for i := range perG {
				key := fmt.Appendf(nil, "g%02d/%04d", g, i)
				var seq uint64
				err := s.Update(t.Context(), func(tx store.Tx) error {
					var err error
					if seq, err = tx.NextSequence(bkt2); err != nil {
						return err
					}
					return tx.Put(bkt, key, fmt.Appendf(nil, "%d", seq))
				})
				if err != nil {
					t.Errorf("Update %s: %v", key, err)
					return
				}
				seqs[g] = append(seqs[g], seq)
			}
		})
	}
	writers.Wait()
	close(stopViews)
	wg.Wait()
	t.Logf("%d Updates, %d concurrent Views", goroutines*perG, views.Load())

	verify := func(s store.Store) {
		t.Helper()
		seen := make(map[uint64]bool)
		for g := range goroutines {
			for i, seq := range seqs[g] {
				if seen[seq] {
					t.Fatalf("sequence value %d handed out twice", seq)
				}
				seen[seq] = true
				if i > 0 && seq <= seqs[g][i-1] {
					t.Errorf("goroutine %d: sequence %d after %d, want increasing", g, seq, seqs[g][i-1])
				}
			}
		}
		n := 0
		view(t, s, func(tx store.Tx) error {
			return tx.Scan(bkt, nil, nil, func(k, v []byte) error {
				var g, i int
				if _, err := fmt.Sscanf(string(k), "g%02d/%04d", &g, &i); err != nil {
					return fmt.Errorf("unexpected key %q", k)
				}
				if want := fmt.Sprint(seqs[g][i]); string(v) != want {
					return fmt.Errorf("key %q = %q, want %q", k, v, want)
				}
				n++
				return nil
			})
		})
		if n != goroutines*perG {
			t.Errorf("found %d keys, want %d", n, goroutines*perG)
		}
	}
	verify(s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	verify(open(t))
}

// testConcurrentCounter increments one counter from many goroutines, mixed
// with Updates that write and then fail, so that a grouping backend must
// re-run functions: the final count must be exact.
func testConcurrentCounter(t *testing.T, open func(t *testing.T) store.Store) {
	const goroutines, perG = 16, 40
	s := open(t)
	key := []byte("counter")
	var wg sync.WaitGroup
	var ok atomic.Int64
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				fail := (g+i)%5 == 0
				var seen uint64
				err := s.Update(t.Context(), func(tx store.Tx) error {
					var n uint64
					if v := tx.Get(bkt, key); v != nil {
						if _, err := fmt.Sscan(string(v), &n); err != nil {
							return err
						}
					}
					seen = n + 1
					if err := tx.Put(bkt, key, fmt.Append(nil, n+1)); err != nil {
						return err
					}
					if fail {
						return errBoom
					}
					return nil
				})
				switch {
				case fail && !errors.Is(err, errBoom):
					t.Errorf("failing Update: %v, want %v", err, errBoom)
				case !fail && err != nil:
					t.Errorf("Update: %v", err)
				case !fail:
					ok.Add(1)
					if seen == 0 {
						t.Errorf("result variable not set")
					}
				}
			}
		})
	}
	wg.Wait()
	if got, want := string(get(t, s, bkt, "counter")), fmt.Sprint(ok.Load()); got != want {
		t.Errorf("counter = %s, want %s", got, want)
	}
}

// testSnapshot checks that a View does not see writes committed after it
// started.
func testSnapshot(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	put(t, s, bkt, "k", "old")
	view(t, s, func(tx store.Tx) error {
		if got := tx.Get(bkt, []byte("k")); string(got) != "old" {
			t.Errorf("Get = %q, want old", got)
		}
		done := make(chan error, 1)
		go func() {
			done <- s.Update(context.Background(), func(tx store.Tx) error {
				return tx.Put(bkt, []byte("k"), []byte("new"))
			})
		}()
		// A backend may hold the write back while a View is open (bbolt may
		// have to grow its memory map): do not wait for it forever.
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Update during View: %v", err)
			}
		case <-time.After(time.Second):
		}
		if got := tx.Get(bkt, []byte("k")); string(got) != "old" {
			t.Errorf("Get after a concurrent Update = %q, want old (snapshot)", got)
		}
		return nil
	})
	deadline := time.Now().Add(10 * time.Second)
	for string(get(t, s, bkt, "k")) != "new" {
		if time.Now().After(deadline) {
			t.Fatal("Update made during a View never became visible")
		}
		time.Sleep(time.Millisecond)
	}
}

func testReopen(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	put(t, s, bkt, "a", "1", "b", "2")
	put(t, s, bkt2, "c", "3")
	update(t, s, func(tx store.Tx) error { return tx.Delete(bkt, []byte("a")) })
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = open(t)
	if got, want := scan(t, s, bkt, nil, nil), []kv{{"b", "2"}}; !slices.Equal(got, want) {
		t.Errorf("after reopen: %s = %q, want %q", bkt, got, want)
	}
	if got, want := scan(t, s, bkt2, nil, nil), []kv{{"c", "3"}}; !slices.Equal(got, want) {
		t.Errorf("after reopen: %s = %q, want %q", bkt2, got, want)
	}
	put(t, s, bkt, "d", "4")
	if got := get(t, s, bkt, "d"); string(got) != "4" {
		t.Errorf("write after reopen: Get = %q, want 4", got)
	}
}

func testClosed(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	put(t, s, bkt, "k", "v")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ran := false
	wantErr(t, "Update after Close", s.Update(t.Context(), func(store.Tx) error { ran = true; return nil }), store.ErrClosed)
	wantErr(t, "View after Close", s.View(t.Context(), func(store.Tx) error { ran = true; return nil }), store.ErrClosed)
	if ran {
		t.Error("function ran after Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// testCloseDrains closes the store while Updates are in flight: each one
// either commits durably (nil) or is refused (ErrClosed).
func testCloseDrains(t *testing.T, open func(t *testing.T) store.Store) {
	s := open(t)
	const goroutines, perG = 16, 200
	errs := make([][]error, goroutines)
	var wg sync.WaitGroup
	started := make(chan struct{}, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			started <- struct{}{}
			for i := range perG {
				err := s.Update(t.Context(), func(tx store.Tx) error {
					return tx.Put(bkt, fmt.Appendf(nil, "%02d/%03d", g, i), []byte("v"))
				})
				errs[g] = append(errs[g], err)
			}
		})
	}
	for range goroutines {
		<-started
	}
	time.Sleep(5 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	s = open(t)
	var committed, refused int
	view(t, s, func(tx store.Tx) error {
		for g := range goroutines {
			for i, err := range errs[g] {
				v := tx.Get(bkt, fmt.Appendf(nil, "%02d/%03d", g, i))
				switch {
				case err == nil && v == nil:
					t.Errorf("%02d/%03d: Update returned nil but the write is lost", g, i)
				case errors.Is(err, store.ErrClosed) && v != nil:
					t.Errorf("%02d/%03d: Update returned ErrClosed but the write is there", g, i)
				case err != nil && !errors.Is(err, store.ErrClosed):
					t.Errorf("%02d/%03d: %v", g, i, err)
				case err == nil:
					committed++
				default:
					refused++
				}
			}
		}
		return nil
	})
	t.Logf("%d committed before Close, %d refused after", committed, refused)
}

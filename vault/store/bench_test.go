package store_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/store/storetest"
)

// callers is the parallelism of the concurrent benchmarks.
const callers = storetest.BenchCallers

func reportGroups(b *testing.B, s *store.Bolt) {
	st := s.Stats()
	if st.Commits > 0 {
		b.ReportMetric(float64(st.Committed)/float64(st.Commits), "updates/commit")
	}
}

// benchModes are the write paths the benchmarks compare: the journal (the
// default) and plain bbolt (Options.NoJournal).
var benchModes = []struct {
	name string
	opts store.Options
}{
	{"journal", store.Options{}},
	{"plain", store.Options{NoJournal: true}},
}

// BenchmarkUpdateRandomKeys: 16 concurrent callers, each Update inserting
// 100 random 16-byte keys with 100-byte values, fsync on every commit; with
// the journal, the time includes merging everything into the B-tree (Close).
func BenchmarkUpdateRandomKeys(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) { benchUpdateRandomKeys(b, m.opts) })
	}
}

// BenchmarkUpdateInsertRandomKeys is BenchmarkUpdateRandomKeys the way the
// vault's Tokenize writes: each Update first reads its 100 new keys with one
// GetMany (all absent), then writes them with create-only Inserts.
func BenchmarkUpdateInsertRandomKeys(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) { benchUpdateRandomKeysWith(b, m.opts, true) })
	}
}

func benchUpdateRandomKeys(b *testing.B, opts store.Options) {
	benchUpdateRandomKeysWith(b, opts, false)
}

// insertAfterRead returns w's next function, reading every key before
// inserting it (create-only).
func insertAfterRead(w *storetest.Workload) func(store.Tx) error {
	w.Refill()
	keys := make([][]byte, storetest.ItemsPerUpdate)
	return func(tx store.Tx) error {
		for i := range keys {
			keys[i], _ = w.Item(i)
		}
		for _, v := range tx.GetMany(storetest.BenchBucket, keys) {
			if v != nil {
				return store.ErrExists
			}
		}
		for i := range keys {
			k, v := w.Item(i)
			if err := tx.Insert(storetest.BenchBucket, k, v); err != nil {
				return err
			}
		}
		return nil
	}
}

func benchUpdateRandomKeysWith(b *testing.B, opts store.Options, insert bool) {
	seeds := &storetest.Seeds{}
	s, err := store.Open(filepath.Join(b.TempDir(), "bench.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := seeds.NewWorkload()
		for pb.Next() {
			var fn func(store.Tx) error
			if insert {
				fn = insertAfterRead(w)
			} else {
				fn = w.Next()
			}
			if err := s.Update(ctx, fn); err != nil {
				b.Error(err)
				return
			}
		}
	})
	st := s.Stats()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	storetest.ReportItems(b)
	if st.Commits > 0 {
		b.ReportMetric(float64(st.Committed)/float64(st.Commits), "updates/commit")
	}
	if st.Merges > 0 {
		b.ReportMetric(float64(st.MergedKeys)/float64(st.Merges), "keys/merge")
	}
}

// BenchmarkUpdateRandomKeysSingle is the same workload from a single caller:
// one commit (and fsync) per Update.
func BenchmarkUpdateRandomKeysSingle(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) { benchUpdateRandomKeysSingle(b, m.opts) })
	}
}

func benchUpdateRandomKeysSingle(b *testing.B, opts store.Options) {
	seeds := &storetest.Seeds{}
	s := mustOpen(b, filepath.Join(b.TempDir(), "bench.db"), opts)
	ctx := context.Background()
	w := seeds.NewWorkload()
	for b.Loop() {
		if err := s.Update(ctx, w.Next()); err != nil {
			b.Fatal(err)
		}
	}
	storetest.ReportItems(b)
	reportGroups(b, s)
}

// BenchmarkBoltBatchRandomKeys is the baseline that the group commit
// replaces: bbolt's DB.Batch, same workload and callers.
func BenchmarkBoltBatchRandomKeys(b *testing.B) {
	seeds := &storetest.Seeds{}
	for _, c := range []struct {
		name     string
		parallel bool
	}{{"16callers", true}, {"single", false}} {
		b.Run(c.name, func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), 0o600, &bolt.Options{
				FreelistType:    bolt.FreelistMapType,
				InitialMmapSize: store.DefaultInitialMmapSize,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			batch := func(w *storetest.Workload) error {
				w.Refill()
				return db.Batch(func(tx *bolt.Tx) error {
					bk, err := tx.CreateBucketIfNotExists([]byte("bench"))
					if err != nil {
						return err
					}
					for i := range storetest.ItemsPerUpdate {
						if err := bk.Put(w.Item(i)); err != nil {
							return err
						}
					}
					return nil
				})
			}
			b.ResetTimer()
			if c.parallel {
				b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
				b.RunParallel(func(pb *testing.PB) {
					w := seeds.NewWorkload()
					for pb.Next() {
						if err := batch(w); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				w := seeds.NewWorkload()
				for range b.N {
					if err := batch(w); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			storetest.ReportItems(b)
		})
	}
}

// BenchmarkViewGetMany: a View reading 100 random keys (half of them
// present) with one GetMany from a merged store of 100,000 keys; ns/op is
// per View.
func BenchmarkViewGetMany(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.db")
	s := mustOpen(b, path, store.Options{NoSync: true})
	seeds := &storetest.Seeds{}
	w := seeds.NewWorkload()
	var present [][]byte
	for range 1000 {
		if err := s.Update(context.Background(), w.Next()); err != nil {
			b.Fatal(err)
		}
		k, _ := w.Item(0)
		present = append(present, bytes.Clone(k))
	}
	if _, err := s.Snapshot(context.Background(), io.Discard); err != nil { // merges the journal
		b.Fatal(err)
	}
	keys := make([][]byte, storetest.ItemsPerUpdate)
	for i := range keys {
		if i%2 == 0 {
			keys[i] = present[i*7%len(present)]
		} else {
			keys[i] = []byte(fmt.Sprintf("absent-%016d", i))
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if err := s.View(context.Background(), func(tx store.Tx) error {
			n := 0
			for _, v := range tx.GetMany(storetest.BenchBucket, keys) {
				if v != nil {
					n++
				}
			}
			if n != len(keys)/2 {
				return fmt.Errorf("%d keys found, want %d", n, len(keys)/2)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

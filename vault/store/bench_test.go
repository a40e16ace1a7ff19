package store_test

import (
	"context"
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

// BenchmarkUpdateRandomKeys: 16 concurrent callers, each Update inserting
// 100 random 16-byte keys with 100-byte values, fsync on every commit.
func BenchmarkUpdateRandomKeys(b *testing.B) {
	seeds := &storetest.Seeds{}
	s := mustOpen(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	ctx := context.Background()
	b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := seeds.NewWorkload()
		for pb.Next() {
			if err := s.Update(ctx, w.Next()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	storetest.ReportItems(b)
	reportGroups(b, s)
}

// BenchmarkUpdateRandomKeysSingle is the same workload from a single caller:
// one commit (and fsync) per Update.
func BenchmarkUpdateRandomKeysSingle(b *testing.B) {
	seeds := &storetest.Seeds{}
	s := mustOpen(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
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

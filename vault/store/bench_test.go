package store_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/tokenvault/tokenvault/vault/store"
)

// The write workload of the benchmarks: each Update inserts itemsPerUpdate
// random keys of keySize bytes with valueSize-byte values.
const (
	itemsPerUpdate = 100
	keySize        = 16
	valueSize      = 100
	callers        = 16
)

var benchSeed atomic.Uint64

// workload holds one caller's keys and values. Put does not copy them, so
// they are refilled only between Updates, never while one is running.
type workload struct {
	rng    *rand.Rand
	keys   []byte
	values []byte
}

func newWorkload() *workload {
	w := &workload{
		rng:    rand.New(rand.NewPCG(benchSeed.Add(1), 0x7a6b)),
		keys:   make([]byte, itemsPerUpdate*keySize),
		values: make([]byte, itemsPerUpdate*valueSize),
	}
	fill(w.rng, w.values)
	return w
}

func fill(rng *rand.Rand, b []byte) {
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

// next draws new random keys and returns the function that inserts them.
func (w *workload) next() func(tx store.Tx) error {
	fill(w.rng, w.keys)
	return w.insert
}

func (w *workload) insert(tx store.Tx) error {
	for i := range itemsPerUpdate {
		k := w.keys[i*keySize : (i+1)*keySize]
		v := w.values[i*valueSize : (i+1)*valueSize]
		if err := tx.Put("bench", k, v); err != nil {
			return err
		}
	}
	return nil
}

func reportItems(b *testing.B) {
	b.ReportMetric(float64(b.N*itemsPerUpdate)/b.Elapsed().Seconds(), "items/s")
}

func reportGroups(b *testing.B, s *store.Bolt) {
	st := s.Stats()
	if st.Commits > 0 {
		b.ReportMetric(float64(st.Committed)/float64(st.Commits), "updates/commit")
	}
}

// BenchmarkUpdateRandomKeys: 16 concurrent callers, each Update inserting
// 100 random 16-byte keys with 100-byte values, fsync on every commit.
func BenchmarkUpdateRandomKeys(b *testing.B) {
	s := mustOpen(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	ctx := context.Background()
	b.SetParallelism((callers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := newWorkload()
		for pb.Next() {
			if err := s.Update(ctx, w.next()); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportItems(b)
	reportGroups(b, s)
}

// BenchmarkUpdateRandomKeysSingle is the same workload from a single caller:
// one commit (and fsync) per Update.
func BenchmarkUpdateRandomKeysSingle(b *testing.B) {
	s := mustOpen(b, filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	ctx := context.Background()
	w := newWorkload()
	for b.Loop() {
		if err := s.Update(ctx, w.next()); err != nil {
			b.Fatal(err)
		}
	}
	reportItems(b)
	reportGroups(b, s)
}

// BenchmarkBoltBatchRandomKeys is the baseline that the group commit
// replaces: bbolt's DB.Batch, same workload and callers.
func BenchmarkBoltBatchRandomKeys(b *testing.B) {
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
			batch := func(w *workload) error {
				fill(w.rng, w.keys)
				return db.Batch(func(tx *bolt.Tx) error {
					bk, err := tx.CreateBucketIfNotExists([]byte("bench"))
					if err != nil {
						return err
					}
					for i := range itemsPerUpdate {
						if err := bk.Put(w.keys[i*keySize:(i+1)*keySize], w.values[i*valueSize:(i+1)*valueSize]); err != nil {
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
					w := newWorkload()
					for pb.Next() {
						if err := batch(w); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				w := newWorkload()
				for range b.N {
					if err := batch(w); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.StopTimer()
			reportItems(b)
		})
	}
}

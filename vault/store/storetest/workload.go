package storetest

import (
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/tokenvault/tokenvault/vault/store"
)

// The write workload of the store benchmarks, the same for every backend:
// each Update inserts ItemsPerUpdate random keys of KeySize bytes with
// ValueSize-byte values into bucket BenchBucket, from BenchCallers
// concurrent callers (or one).
const (
	ItemsPerUpdate = 100
	KeySize        = 16
	ValueSize      = 100
	BenchCallers   = 16

	BenchBucket store.Bucket = "bench"
)

// Workload is one caller's keys and values. Put does not copy them, so they
// are refilled only between Updates, never while one is running.
type Workload struct {
	rng    *rand.Rand
	keys   []byte
	values []byte
}

// Seeds hands out distinct workload seeds to the callers of one benchmark.
type Seeds struct{ n atomic.Uint64 }

// NewWorkload returns a caller's workload, seeded from seeds.
func (s *Seeds) NewWorkload() *Workload {
	w := &Workload{
		rng:    rand.New(rand.NewPCG(s.n.Add(1), 0x7a6b)),
		keys:   make([]byte, ItemsPerUpdate*KeySize),
		values: make([]byte, ItemsPerUpdate*ValueSize),
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

// Refill draws new random keys.
func (w *Workload) Refill() { fill(w.rng, w.keys) }

// Item returns the key and value of item i (0 <= i < ItemsPerUpdate).
func (w *Workload) Item(i int) (key, value []byte) {
	return w.keys[i*KeySize : (i+1)*KeySize], w.values[i*ValueSize : (i+1)*ValueSize]
}

// Next draws new random keys and returns the function that inserts them.
func (w *Workload) Next() func(tx store.Tx) error {
	w.Refill()
	return w.insert
}

func (w *Workload) insert(tx store.Tx) error {
	for i := range ItemsPerUpdate {
		k, v := w.Item(i)
		if err := tx.Put(BenchBucket, k, v); err != nil {
			return err
		}
	}
	return nil
}

// ReportItems reports the items inserted per second.
func ReportItems(b *testing.B) {
	b.ReportMetric(float64(b.N*ItemsPerUpdate)/b.Elapsed().Seconds(), "items/s")
}

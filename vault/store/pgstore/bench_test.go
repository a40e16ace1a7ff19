package pgstore_test

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/tokenvault/tokenvault/internal/testpg"
	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/store/pgstore"
	"github.com/tokenvault/tokenvault/vault/store/storetest"
)

// The same workload as the Bolt benchmarks of package store (storetest's):
// Updates of 100 random 16-byte keys with 100-byte values, fsync on, on a
// cluster started by the benchmark on this machine.

// BenchmarkUpdateRandomKeys: 16 concurrent callers.
func BenchmarkUpdateRandomKeys(b *testing.B) {
	s := open(b, testpg.Start(b).CreateDB(b, "bench"), pgstore.Options{})
	seeds := &storetest.Seeds{}
	ctx := context.Background()
	b.SetParallelism((storetest.BenchCallers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
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
}

// BenchmarkUpdateRandomKeysSingle: one caller, one commit per Update.
func BenchmarkUpdateRandomKeysSingle(b *testing.B) {
	s := open(b, testpg.Start(b).CreateDB(b, "bench"), pgstore.Options{})
	w := (&storetest.Seeds{}).NewWorkload()
	ctx := context.Background()
	for b.Loop() {
		if err := s.Update(ctx, w.Next()); err != nil {
			b.Fatal(err)
		}
	}
	storetest.ReportItems(b)
}

// BenchmarkCreateKeys compares, on one cluster, the two ways of creating 100 keys that might
// exist (a tokenize's candidate records): GetMany then Insert of the absent ones (sent at
// COMMIT), and one store.CreateMany; for new keys (new values: all absent) and for keys all
// present (values tokenized before); and, for new keys, the floor: Insert alone, no read. 16 callers, REPEATABLE READ (store.WithSnapshotIsolation,
// as tokenize), random 16-byte keys and 120-byte values, a bucket filled with 200,000 keys
// first; three rounds, the shapes alternating. Besides items/s it reports PostgreSQL's CPU per
// item (pg-µs/item: utime+stime of the postmaster and its children, reaped ones included, from
// /proc; Linux, with the benchmark on the database's host).
func BenchmarkCreateKeys(b *testing.B) {
	c := testpg.Start(b)
	s := open(b, c.CreateDB(b, "bench"), pgstore.Options{})
	ctx := store.WithSnapshotIsolation(context.Background())
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	var stored [][]byte
	kv := func(n int, present bool) (keys, values [][]byte) {
		mu.Lock()
		defer mu.Unlock()
		for range n {
			k, v := make([]byte, 16), make([]byte, 120)
			if present {
				k = stored[rng.IntN(len(stored))]
			} else {
				for i := range k {
					k[i] = byte(rng.Uint32())
				}
			}
			keys, values = append(keys, k), append(values, v)
		}
		return keys, values
	}
	for range 200 {
		keys, values := kv(1000, false)
		stored = append(stored, keys...)
		if err := s.Update(ctx, func(tx store.Tx) error {
			for i := range keys {
				if err := tx.Put("records", keys[i], values[i]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	shapes := []struct {
		name   string
		create func(tx store.Tx, keys, values [][]byte) error
	}{
		{"read+insert", func(tx store.Tx, keys, values [][]byte) error {
			for i, v := range tx.GetMany("records", keys) {
				if v == nil {
					if err := tx.Insert("records", keys[i], values[i]); err != nil {
						return err
					}
				}
			}
			return nil
		}},
		{"createmany", func(tx store.Tx, keys, values [][]byte) error {
			_, err := store.CreateMany(tx, "records", keys, values)
			return err
		}},
		// The floor for new keys: a plain INSERT with no read (it fails on a present key).
		{"insert", func(tx store.Tx, keys, values [][]byte) error {
			for i := range keys {
				if err := tx.Insert("records", keys[i], values[i]); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for round := range 3 {
		for _, present := range []bool{false, true} {
			for k := range shapes {
				sh := shapes[(k+round)%len(shapes)]
				if present && sh.name == "insert" {
					continue
				}
				name := "new/" + sh.name
				if present {
					name = "present/" + sh.name
				}
				b.Run(name, func(b *testing.B) {
					b.SetParallelism((storetest.BenchCallers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
					cpu0 := c.CPU(b)
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							keys, values := kv(storetest.ItemsPerUpdate, present)
							if err := s.Update(ctx, func(tx store.Tx) error { return sh.create(tx, keys, values) }); err != nil {
								b.Error(err)
								return
							}
						}
					})
					b.StopTimer()
					storetest.ReportItems(b)
					b.ReportMetric((c.CPU(b)-cpu0).Seconds()*1e6/float64(b.N*storetest.ItemsPerUpdate), "pg-µs/item")
				})
			}
		}
	}
}

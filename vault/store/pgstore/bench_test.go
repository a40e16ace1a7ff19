package pgstore_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/tokenvault/tokenvault/internal/testpg"
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

package vault

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/tokenvault/tokenvault/internal/testpg"
	"github.com/tokenvault/tokenvault/vault/store"
)

// BenchmarkTokenizeBatch100 tokenizes batches of 100 unique card numbers with durable
// commits, from GOMAXPROCS×4 concurrent callers; it reports items/s.
func BenchmarkTokenizeBatch100(b *testing.B) {
	for _, tmpl := range []string{"pan", "opaque"} {
		b.Run(tmpl, func(b *testing.B) {
			v, _ := openTest(b, withStoreOptions(store.Options{NoSync: os.Getenv("BENCH_NOSYNC") != ""}))
			benchTokenize(b, v, 100, func(n int64) TokenizeItem { return TokenizeItem{Value: benchPAN(n), Template: tmpl} })
		})
	}
}

// benchTokenize tokenizes batches of batch items (item(n) for n = 1, 2, …, each once) from
// GOMAXPROCS×4 concurrent callers, and reports items/s.
func benchTokenize(b *testing.B, v *Vault, batch int, item func(n int64) TokenizeItem) {
	var seq atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		items := make([]TokenizeItem, batch)
		for pb.Next() {
			for i := range items {
				items[i] = item(seq.Add(1))
			}
			if _, err := v.Tokenize(context.Background(), items); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "items/s")
}

// benchPAN is the n-th of the card numbers the benchmarks tokenize, all distinct.
func benchPAN(n int64) string { return fmt.Sprintf("4%015d", n*7919%1e15) }

// BenchmarkTokenizeOne tokenizes one card number per call, the commonest request, with
// durable commits, from GOMAXPROCS×4 concurrent callers; with -benchmem, the bytes a call
// allocates (what the GC pays for per request).
func BenchmarkTokenizeOne(b *testing.B) {
	v, _ := openTest(b)
	b.ReportAllocs()
	benchTokenize(b, v, 1, func(n int64) TokenizeItem { return TokenizeItem{Value: benchPAN(n), Template: "pan"} })
}

// BenchmarkDetokenizeBatch100 reveals batches of 100 tokens (audit on) from concurrent callers.
func BenchmarkDetokenizeBatch100(b *testing.B) {
	v, _ := openTest(b)
	benchDetokenize(b, v)
}

// BenchmarkDetokenizeBatch100Postgres is BenchmarkDetokenizeBatch100 on one replica over
// PostgreSQL (a cluster the benchmark starts): the replica's own CPU, without HTTP, is what a
// profile of it shows (-cpuprofile).
func BenchmarkDetokenizeBatch100Postgres(b *testing.B) {
	c := testpg.Start(b)
	v, err := Open(context.Background(), Config{Store: openPG(b, c.CreateDB(b, "detok")), KEK: newKEK(b), ReplicaID: "r1"})
	if err != nil {
		b.Fatal(err)
	}
	benchDetokenize(b, v)
}

func benchDetokenize(b *testing.B, v *Vault) {
	ctx := context.Background()
	var pool []TokenRef
	for n := 0; n < 100; n++ {
		items := make([]TokenizeItem, 100)
		for i := range items {
			items[i] = TokenizeItem{Value: fmt.Sprintf("4%015d", n*100+i), Template: "pan"}
		}
		res, err := v.Tokenize(ctx, items)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			pool = append(pool, TokenRef{Token: r.Token})
		}
	}
	var seq atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := int(seq.Add(100)) % (len(pool) - 100)
			if _, err := v.Detokenize(ctx, "bench", pool[start:start+100]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "items/s")
}

// BenchmarkTokenizeSubjectsPostgres tokenizes batches of 100 new card numbers, each with one
// of 1,000 data subjects, on one replica over PostgreSQL: the subject keys are read for share
// together with their erasing marks (readSubjectKeys), the statement whose cost the erasing
// marks changed. It reports items/s; the replica's CPU is the process's (-cpuprofile).
func BenchmarkTokenizeSubjectsPostgres(b *testing.B) {
	c := testpg.Start(b)
	v, err := Open(context.Background(), Config{Store: openPG(b, c.CreateDB(b, "subj")), KEK: newKEK(b), ReplicaID: "r1"})
	if err != nil {
		b.Fatal(err)
	}
	benchTokenize(b, v, 100, func(n int64) TokenizeItem {
		return TokenizeItem{Value: benchPAN(n), Template: "pan", Subject: fmt.Sprintf("subject-%d", n%1000)}
	})
}

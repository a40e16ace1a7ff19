package store

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// BenchmarkMemtableHeap builds a memtable of 500,000 keys shaped like the
// vault's record keys (bucket, domain, 16-digit token), each with one
// 64-byte value, in groups of 1,000, and reports its heap bytes per key
// (heap-B/key), its own estimate per key (est-B/key, what JournalMemory
// counts) and, as ns/op, the time of a full garbage collection while it is
// live: the mark work a memtable costs every GC cycle.
func BenchmarkMemtableHeap(b *testing.B) {
	const keys = 500_000
	rng := rand.New(rand.NewPCG(5, 6))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := newMemtable(1)
	value := make([]byte, 64)
	for g := range keys / 1000 {
		for range 1000 {
			k := []byte("records\x00default\x00")
			for range 16 {
				k = append(k, byte('0'+rng.IntN(10)))
			}
			m.push(m.upsert(k), uint64(g+1), value, false)
		}
		m.link()
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ResetTimer()
	for range b.N {
		runtime.GC()
	}
	b.StopTimer()
	runtime.KeepAlive(m)
	// After the loop: ResetTimer drops reported metrics.
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/keys, "heap-B/key")
	b.ReportMetric(float64(m.bytes.Load())/keys, "est-B/key")
}

package template

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkItemCPU compares the two ways of doing a tokenize item's template work
// (itemDirect: Check, FreeSpaceOf and Candidate; itemPrepared: Prepare, FreeSpace and
// Candidate), timed by the CPU clock of the benchmark's thread rather than the wall clock
// (on a shared machine with more runnable threads than cores, wall-clock time includes waits
// for a core), in alternating slices of itemSlice items. Read direct-cpu-ns/item and
// prepared-cpu-ns/item (ns/op is the wall time of one slice of each).
func BenchmarkItemCPU(b *testing.B) {
	const itemSlice = 64
	for _, c := range benchCases {
		tm := mustBuiltin(c.tmpl)
		k := newKeys("bench", c.tmpl)
		b.Run(c.name, func(b *testing.B) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			now := func() time.Duration {
				var ts unix.Timespec
				if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
					b.Fatal(err)
				}
				return time.Duration(ts.Nano())
			}
			var direct, prepared time.Duration
			n := 0
			for b.Loop() {
				t0 := now()
				for range itemSlice {
					if err := itemDirect(tm, k, c.value); err != nil {
						b.Fatal(err)
					}
				}
				t1 := now()
				for range itemSlice {
					if err := itemPrepared(tm, k, c.value); err != nil {
						b.Fatal(err)
					}
				}
				direct, prepared, n = direct+t1-t0, prepared+now()-t1, n+itemSlice
			}
			b.ReportMetric(float64(direct.Nanoseconds())/float64(n), "direct-cpu-ns/item")
			b.ReportMetric(float64(prepared.Nanoseconds())/float64(n), "prepared-cpu-ns/item")
		})
	}
}

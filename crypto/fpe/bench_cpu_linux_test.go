package fpe

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkFF1Encrypt16DigitsInAESBlocksCPU is BenchmarkFF1Encrypt16DigitsInAESBlocks timed
// by the CPU time of the benchmark's thread instead of the wall clock: on a shared machine
// whose load exceeds its cores, wall-clock slices include the time the thread waited for a
// core, which the CPU clock does not. Slices of about 100µs; read aes-blocks/op.
func BenchmarkFF1Encrypt16DigitsInAESBlocksCPU(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	benchmarkInAESBlocks(b, 256, func() time.Duration {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ts.Nano())
	})
}

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
	benchmarkInAESBlocksCPU(b, 16)
}

// BenchmarkFF1Encrypt16DigitsAES256InAESBlocksCPU is the same with AES-256 on both sides (the
// vault derives 32-byte FF1 keys): FF1 with a 32-byte key against one AES-256 block.
func BenchmarkFF1Encrypt16DigitsAES256InAESBlocksCPU(b *testing.B) {
	benchmarkInAESBlocksCPU(b, 32)
}

func benchmarkInAESBlocksCPU(b *testing.B, keyLen int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	benchmarkInAESBlocks(b, keyLen, 256, func() time.Duration {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ts.Nano())
	})
}

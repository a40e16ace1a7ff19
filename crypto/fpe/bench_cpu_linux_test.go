package fpe

import (
	"crypto/aes"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// threadCPU returns the CPU time of the calling OS thread.
func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// BenchmarkFF1Encrypt16DigitsInAESBlocksCPU is BenchmarkFF1Encrypt16DigitsInAESBlocks timed
// by the CPU time of the benchmark's thread instead of the wall clock: on a shared machine
// whose load exceeds its cores, wall-clock slices include the time the thread waited for a
// core, which the CPU clock does not. Slices of about 100µs; read aes-blocks/op.
func BenchmarkFF1Encrypt16DigitsInAESBlocksCPU(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f, err := NewFF1(make([]byte, 16), 10)
	if err != nil {
		b.Fatal(err)
	}
	block, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		b.Fatal(err)
	}
	tweak, x := []byte("acme:pn"), "4111111111111111"
	var buf [16]byte
	var ffTime, aesTime time.Duration
	const ffChunk, aesChunk = 256, 256 * 20
	for b.Loop() {
		start := threadCPU(b)
		for range ffChunk {
			if _, err := f.Encrypt(tweak, x); err != nil {
				b.Fatal(err)
			}
		}
		mid := threadCPU(b)
		for range aesChunk {
			block.Encrypt(buf[:], buf[:])
		}
		end := threadCPU(b)
		ffTime += mid - start
		aesTime += end - mid
	}
	b.ReportMetric(float64(ffTime)/float64(aesTime)*aesChunk/ffChunk, "aes-blocks/op")
	b.ReportMetric(float64(ffTime)/float64(b.N*ffChunk), "ff1-cpu-ns/op")
	b.ReportMetric(float64(aesTime)/float64(b.N*aesChunk), "aes-cpu-ns/op")
}

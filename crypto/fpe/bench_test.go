package fpe

import (
	"crypto/aes"
	"strings"
	"testing"
	"time"
)

// BenchmarkAES128Block is the unit of cost: one cipher.Block.Encrypt of one
// 16-byte block with crypto/aes, in place, so that each call waits for the
// previous one as FF1's rounds do. Compare BenchmarkFF1Encrypt16Digits with
// it: FF1 of 16 digits with a 7-byte tweak makes 10 such calls (one per
// round; CIPH(P) is cached per length) and one more on the first call for a
// length.
func BenchmarkAES128Block(b *testing.B) {
	block, err := aes.NewCipher(make([]byte, 16))
	if err != nil {
		b.Fatal(err)
	}
	var buf [16]byte
	b.SetBytes(16)
	for b.Loop() {
		block.Encrypt(buf[:], buf[:])
	}
}

func benchmarkEncrypt(b *testing.B, keyLen int, alphabet, x string, tweak []byte) {
	f, err := NewFF1WithAlphabet(make([]byte, keyLen), alphabet)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Encrypt(tweak, x); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFF1Encrypt16Digits: radix 10, 16 digits, 7-byte tweak, AES-128.
func BenchmarkFF1Encrypt16Digits(b *testing.B) {
	benchmarkEncrypt(b, 16, digits36[:10], "4111111111111111", []byte("acme:pn"))
}

// BenchmarkFF1Encrypt16DigitsInAESBlocks reports the cost of
// BenchmarkFF1Encrypt16Digits in units of BenchmarkAES128Block, measuring
// both in alternating slices of about 20µs so that a noisy, shared machine
// slows both alike. Its ns/op mixes the two and is not meaningful; read the
// aes-blocks/op metric.
func BenchmarkFF1Encrypt16DigitsInAESBlocks(b *testing.B) {
	start := time.Now()
	benchmarkInAESBlocks(b, 16, 64, func() time.Duration { return time.Since(start) })
}

// benchmarkInAESBlocks alternates slices of ffChunk FF1 encryptions and 20 times as many AES
// blocks, both with keys of keyLen bytes, timed by clock, and reports their ratio as
// aes-blocks/op.
func benchmarkInAESBlocks(b *testing.B, keyLen, ffChunk int, clock func() time.Duration) {
	f, err := NewFF1(make([]byte, keyLen), 10)
	if err != nil {
		b.Fatal(err)
	}
	block, err := aes.NewCipher(make([]byte, keyLen))
	if err != nil {
		b.Fatal(err)
	}
	tweak, x := []byte("acme:pn"), "4111111111111111"
	var buf [16]byte
	var ffTime, aesTime time.Duration
	aesChunk := ffChunk * 20
	for b.Loop() {
		start := clock()
		for range ffChunk {
			if _, err := f.Encrypt(tweak, x); err != nil {
				b.Fatal(err)
			}
		}
		mid := clock()
		for range aesChunk {
			block.Encrypt(buf[:], buf[:])
		}
		ffTime += mid - start
		aesTime += clock() - mid
	}
	b.ReportMetric(float64(ffTime)/float64(aesTime)*float64(aesChunk)/float64(ffChunk), "aes-blocks/op")
	b.ReportMetric(float64(ffTime)/float64(b.N*ffChunk), "ff1-ns/op")
	b.ReportMetric(float64(aesTime)/float64(b.N*aesChunk), "aes-ns/op")
}

func BenchmarkFF1Decrypt16Digits(b *testing.B) {
	f, err := NewFF1(make([]byte, 16), 10)
	if err != nil {
		b.Fatal(err)
	}
	tweak := []byte("acme:pn")
	ct, err := f.Encrypt(tweak, "4111111111111111")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Decrypt(tweak, ct); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFF1Encrypt16DigitsAES256: as above with a 32-byte key.
func BenchmarkFF1Encrypt16DigitsAES256(b *testing.B) {
	benchmarkEncrypt(b, 32, digits36[:10], "4111111111111111", []byte("acme:pn"))
}

// BenchmarkFF1Encrypt16Alnum62: 16 characters of [0-9a-zA-Z].
func BenchmarkFF1Encrypt16Alnum62(b *testing.B) {
	benchmarkEncrypt(b, 16, alnum62, "Tok3nVaultAbcXyz", []byte("acme:pn"))
}

// BenchmarkFF1Encrypt40Digits takes the math/big path (10^20 > 2^64).
func BenchmarkFF1Encrypt40Digits(b *testing.B) {
	benchmarkEncrypt(b, 16, digits36[:10], strings.Repeat("0123456789", 4), []byte("acme:pn"))
}

package fpe

import (
	"bytes"
	"crypto/aes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// bothPaths returns the cipher for key and alphabet as NewFF1WithAlphabet makes it and, when
// this machine runs the AES-NI path, the same cipher forced onto the pure Go rounds: tests
// that loop over it check both paths in one run.
func bothPaths(t testing.TB, key []byte, alphabet string) []*FF1 {
	t.Helper()
	f, err := NewFF1WithAlphabet(key, alphabet)
	if err != nil {
		t.Fatal(err)
	}
	if !f.ni {
		return []*FF1{f}
	}
	g, err := NewFF1WithAlphabet(key, alphabet)
	if err != nil {
		t.Fatal(err)
	}
	g.ni = false
	return []*FF1{f, g}
}

// The AES-NI path is taken wherever the CPU allows it, and never otherwise.
func TestNIPathSelected(t *testing.T) {
	f, err := NewFF1(make([]byte, 16), 10)
	if err != nil {
		t.Fatal(err)
	}
	if f.ni != hasAESNI() {
		t.Fatalf("ni = %v, hasAESNI() = %v", f.ni, hasAESNI())
	}
	t.Logf("AES-NI path: %v", f.ni)
}

// expandKey against FIPS-197 Appendix A (the last word of each expanded key) and the S-box
// against a few of its entries.
func TestExpandKeyFIPS197(t *testing.T) {
	for _, c := range []struct {
		key  string
		last uint32
	}{
		{"2b7e151628aed2a6abf7158809cf4f3c", 0xb6630ca6},
		{"8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", 0x01002202},
		{"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", 0x706c631e},
	} {
		key := mustHex(t, c.key)
		ks, nr := expandKey(key)
		if nr != len(key)/4+6 {
			t.Fatalf("AES-%d: nr = %d", 8*len(key), nr)
		}
		if !bytes.Equal(ks[:len(key)], key) {
			t.Errorf("AES-%d: the schedule does not start with the key", 8*len(key))
		}
		if got := binary.BigEndian.Uint32(ks[16*nr+12:]); got != c.last {
			t.Errorf("AES-%d: w[%d] = %08x, want %08x", 8*len(key), 4*nr+3, got, c.last)
		}
	}
	for x, want := range map[byte]byte{0x00: 0x63, 0x01: 0x7c, 0x53: 0xed, 0xff: 0x16, 0x10: 0xca, 0xc9: 0xdd} {
		if got := subByte(x); got != want {
			t.Errorf("subByte(%#02x) = %#02x, want %#02x", x, got, want)
		}
	}
}

// encryptBlockAsm with expandKey's schedule encrypts exactly as crypto/aes: the FIPS-197
// Appendix C examples and random keys of each size.
func TestEncryptBlockAsmMatchesCryptoAES(t *testing.T) {
	if !hasAESNI() {
		t.Skip("no AES-NI path on this machine or build")
	}
	pt := mustHex(t, "00112233445566778899aabbccddeeff")
	for _, c := range []struct{ key, ct string }{
		{"000102030405060708090a0b0c0d0e0f", "69c4e0d86a7b0430d8cdb78070b4c55a"},
		{"000102030405060708090a0b0c0d0e0f1011121314151617", "dda97ca4864cdfe06eaf70a0ec0d7191"},
		{"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "8ea2b7ca516745bfeafc49904b496089"},
	} {
		ks, nr := expandKey(mustHex(t, c.key))
		var x [16]byte
		copy(x[:], pt)
		encryptBlockAsm(&ks, nr, &x)
		if want := mustHex(t, c.ct); !bytes.Equal(x[:], want) {
			t.Errorf("key %s: %x, want %x", c.key, x, want)
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, keyLen := range []int{16, 24, 32} {
		for range 2000 {
			key := make([]byte, keyLen)
			for i := range key {
				key[i] = byte(rng.Uint32())
			}
			block, err := aes.NewCipher(key)
			if err != nil {
				t.Fatal(err)
			}
			ks, nr := expandKey(key)
			var x, want [16]byte
			binary.LittleEndian.PutUint64(x[0:8], rng.Uint64())
			binary.LittleEndian.PutUint64(x[8:16], rng.Uint64())
			block.Encrypt(want[:], x[:])
			encryptBlockAsm(&ks, nr, &x)
			if x != want {
				t.Fatalf("AES-%d key %x: %x, crypto/aes %x", 8*keyLen, key, x, want)
			}
		}
	}
}

// The AES-NI rounds give what the Go rounds give on random inputs, tweaks (0..47 bytes,
// across the 16-byte blocks of Q), key sizes, radices and every length of the uint64 path:
// b = 1..8 bytes (8 goes to the Go rounds), d = 8 and 12, y's high word above and below m.
func TestNIMatchesGoRounds(t *testing.T) {
	if !hasAESNI() {
		t.Skip("no AES-NI path on this machine or build")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	iters := 40
	if testing.Short() || raceEnabled {
		iters = 4
	}
	for _, alphabet := range []string{digits36[:2], digits36[:3], digits36[:10], digits36[:16], digits36, alnum62, accented, bigAlphabet(300), bigAlphabet(65536)} {
		runes := []rune(alphabet)
		for _, keyLen := range []int{16, 24, 32} {
			key := make([]byte, keyLen)
			for i := range key {
				key[i] = byte(rng.Uint32())
			}
			paths := bothPaths(t, key, alphabet)
			ni, goRounds := paths[0], paths[1]
			for n := ni.MinLen(); n <= 2*ni.fastV; n++ {
				for range iters {
					tweak := make([]byte, rng.IntN(48))
					for i := range tweak {
						tweak[i] = byte(rng.Uint32())
					}
					x := randomString(rng, runes, n)
					for _, decrypt := range []bool{false, true} {
						got, err := ni.crypt(tweak, x, decrypt)
						want, werr := goRounds.crypt(tweak, x, decrypt)
						if err != nil || werr != nil || got != want {
							t.Fatalf("radix %d AES-%d n=%d t=%d decrypt=%v: %q: AES-NI %q, %v; Go %q, %v",
								len(runes), 8*keyLen, n, len(tweak), decrypt, x, got, err, want, werr)
						}
					}
				}
			}
		}
	}
}

package fpe

import (
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzFF1RoundTrip feeds arbitrary strings and tweaks to Encrypt and
// Decrypt over several alphabets: they must never panic, must refuse
// invalid input with one of the documented errors, and must round-trip
// valid input to a string of the same length and alphabet, and give the
// same results on the AES-NI and pure Go paths.
func FuzzFF1RoundTrip(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	// ciphers[k] on the default path (AES-NI where the CPU has it), goRounds[k]
	// the same cipher on the pure Go rounds: they must agree.
	var ciphers, goRounds []*FF1
	for _, a := range []string{digits36[:2], digits36[:10], digits36, alnum62, accented, bigAlphabet(300)} {
		c, err := NewFF1WithAlphabet(key, a)
		if err != nil {
			f.Fatal(err)
		}
		g, err := NewFF1WithAlphabet(key, a)
		if err != nil {
			f.Fatal(err)
		}
		g.ni = false
		ciphers, goRounds = append(ciphers, c), append(goRounds, g)
	}
	f.Add(uint8(1), []byte(""), "0123456789")
	f.Add(uint8(1), []byte("9876543210"), "4111111111111111")
	f.Add(uint8(1), []byte("tw"), "-12345678")
	f.Add(uint8(1), []byte{}, "1234567890123456789012345678901234567890")
	f.Add(uint8(0), []byte("x"), "01010101010101010101")
	f.Add(uint8(2), []byte("7777pqr777"), "0123456789abcdefghi")
	f.Add(uint8(3), []byte("t"), "Tok3nVaultAbcXyz")
	f.Add(uint8(4), []byte("t"), "àâäçéèêëîïôöùûüÿæœ")
	f.Add(uint8(4), []byte("t"), "abc\xe9def")
	f.Add(uint8(5), []byte("t"), "ĀāĂăĄą")
	f.Fuzz(func(t *testing.T, which uint8, tweak []byte, x string) {
		c, g := ciphers[int(which)%len(ciphers)], goRounds[int(which)%len(ciphers)]
		ct, err := c.Encrypt(tweak, x)
		if gct, gerr := g.Encrypt(tweak, x); gct != ct || (gerr == nil) != (err == nil) {
			t.Fatalf("Encrypt(%q): %q, %v; on the Go rounds %q, %v", x, ct, err, gct, gerr)
		}
		if d, err := c.Decrypt(tweak, x); err == nil {
			if gd, gerr := g.Decrypt(tweak, x); gerr != nil || gd != d {
				t.Fatalf("Decrypt(%q): %q; on the Go rounds %q, %v", x, d, gd, gerr)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrNumeral) && !errors.Is(err, ErrDomainTooSmall) &&
				!errors.Is(err, ErrLength) && !errors.Is(err, ErrTweak) {
				t.Fatalf("Encrypt(%q): undocumented error %v", x, err)
			}
			if _, derr := c.Decrypt(tweak, x); derr == nil {
				t.Fatalf("Encrypt(%q) failed with %v but Decrypt succeeded", x, err)
			}
			return
		}
		if utf8.RuneCountInString(ct) != utf8.RuneCountInString(x) {
			t.Fatalf("Encrypt(%q) = %q: length changed", x, ct)
		}
		pt, err := c.Decrypt(tweak, ct)
		if err != nil || pt != x {
			t.Fatalf("Decrypt(%q) = %q, %v, want %q", ct, pt, err, x)
		}
		// Decrypt is a permutation too: Encrypt(Decrypt(x)) = x.
		d, err := c.Decrypt(tweak, x)
		if err != nil {
			t.Fatalf("Decrypt(%q): %v", x, err)
		}
		if e, err := c.Encrypt(tweak, d); err != nil || e != x {
			t.Fatalf("Encrypt(%q) = %q, %v, want %q", d, e, err, x)
		}
	})
}

package fpe

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// The decimal fast path (8-digit halves at once) gives exactly what the general ASCII path
// gives, for valid inputs and for every kind of invalid character at every position.
func TestDecimalPathMatchesGeneral(t *testing.T) {
	fast, err := NewFF1([]byte("0123456789abcdef"), 10)
	if err != nil {
		t.Fatal(err)
	}
	if !fast.decimal {
		t.Fatal("radix 10 did not take the decimal path")
	}
	ref, err := NewFF1([]byte("0123456789abcdef"), 10)
	if err != nil {
		t.Fatal(err)
	}
	ref.decimal = false
	rng := rand.New(rand.NewPCG(1, 2))
	tweak := []byte("acme:pn")
	for i := range 20000 {
		n := 16 + i%2
		var sb strings.Builder
		for range n {
			sb.WriteByte('0' + byte(rng.IntN(10)))
		}
		x := sb.String()
		if i%3 == 0 { // an invalid byte somewhere
			b := []byte(x)
			bad := []byte{'/', ':', 'a', ' ', 0, 0x39 + 7, 0xFA, 0xFF, 0x80, '0' - 1}
			b[rng.IntN(n)] = bad[rng.IntN(len(bad))]
			x = string(b)
		}
		for _, dec := range []bool{false, true} {
			got, gerr := fast.crypt(tweak, x, dec)
			want, werr := ref.crypt(tweak, x, dec)
			if got != want || !errors.Is(gerr, werr) && gerr != werr {
				t.Fatalf("%q decrypt=%v: fast %q, %v; general %q, %v", x, dec, got, gerr, want, werr)
			}
		}
	}
}

// putDecimal8 and decimal8 are inverses on every 8-digit value near the lane boundaries and
// on random ones.
func TestPutDecimal8(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(x uint64) {
		var buf [8]byte
		putDecimal8(buf[:], x)
		if want := fmt.Sprintf("%08d", x); string(buf[:]) != want {
			t.Fatalf("putDecimal8(%d) = %q, want %q", x, buf[:], want)
		}
		if y, ok := decimal8(string(buf[:])); !ok || y != x {
			t.Fatalf("decimal8(%q) = %d, %v, want %d", buf[:], y, ok, x)
		}
	}
	for _, x := range []uint64{0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 10001, 99999999, 12345678, 99990000, 10009999} {
		check(x)
	}
	for range 200000 {
		check(rng.Uint64N(100000000))
	}
}

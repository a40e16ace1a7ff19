package fpe

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

type nistVector struct {
	KeyHex     string `json:"key_hex"`
	Radix      int    `json:"radix"`
	TweakHex   string `json:"tweak_hex"`
	Plaintext  string `json:"plaintext"`
	Ciphertext string `json:"ciphertext"`
}

func loadNISTVectors(t *testing.T) []nistVector {
	t.Helper()
	data, err := os.ReadFile("testdata/nist_ff1_vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var vs []nistVector
	if err := json.Unmarshal(data, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != 9 {
		t.Fatalf("got %d NIST vectors, want 9", len(vs))
	}
	return vs
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNISTVectors(t *testing.T) {
	for i, v := range loadNISTVectors(t) {
		key, tweak := mustHex(t, v.KeyHex), mustHex(t, v.TweakHex)
		t.Run(fmt.Sprintf("sample%d/AES-%d/radix%d", i+1, 8*len(key), v.Radix), func(t *testing.T) {
			for _, f := range bothPaths(t, key, digits36[:v.Radix]) {
				if got, err := f.Encrypt(tweak, v.Plaintext); err != nil || got != v.Ciphertext {
					t.Errorf("ni=%v: Encrypt(%q) = %q, %v, want %q", f.ni, v.Plaintext, got, err, v.Ciphertext)
				}
				if got, err := f.Decrypt(tweak, v.Ciphertext); err != nil || got != v.Plaintext {
					t.Errorf("ni=%v: Decrypt(%q) = %q, %v, want %q", f.ni, v.Ciphertext, got, err, v.Plaintext)
				}
			}
			// The reference implementation must agree too, or the
			// comparisons against it below prove nothing.
			if got := refFF1(key, v.Radix, tweak, toNumerals(t, digits36, v.Plaintext), false); fromNumerals(digits36, got) != v.Ciphertext {
				t.Errorf("refFF1(%q) = %q, want %q", v.Plaintext, fromNumerals(digits36, got), v.Ciphertext)
			}
		})
	}
}

// refFF1 is a literal transcription of Algorithms 7 and 8 of SP 800-38G with
// math/big and crypto/cipher's CBC mode, converting numerals every round:
// slow, but independent of the optimized code.
func refFF1(key []byte, radix int, T []byte, X []int, decrypt bool) []int {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	num := func(X []int) *big.Int {
		x, r := new(big.Int), big.NewInt(int64(radix))
		for _, d := range X {
			x.Mul(x, r)
			x.Add(x, big.NewInt(int64(d)))
		}
		return x
	}
	str := func(m int, x *big.Int) []int {
		out := make([]int, m)
		x = new(big.Int).Set(x)
		r, d := big.NewInt(int64(radix)), new(big.Int)
		for i := m - 1; i >= 0; i-- {
			x.QuoRem(x, r, d)
			out[i] = int(d.Int64())
		}
		return out
	}
	prf := func(in []byte) []byte {
		out := make([]byte, len(in))
		cipher.NewCBCEncrypter(block, make([]byte, 16)).CryptBlocks(out, in)
		return out[len(out)-16:]
	}
	n, t := len(X), len(T)
	u := n / 2
	v := n - u
	A, B := append([]int(nil), X[:u]...), append([]int(nil), X[u:]...)
	rv := new(big.Int).Exp(big.NewInt(int64(radix)), big.NewInt(int64(v)), nil)
	b := (new(big.Int).Sub(rv, big.NewInt(1)).BitLen() + 7) / 8
	d := 4*((b+3)/4) + 4
	P := []byte{1, 2, 1, byte(radix >> 16), byte(radix >> 8), byte(radix), 10, byte(u),
		byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n),
		byte(t >> 24), byte(t >> 16), byte(t >> 8), byte(t)}
	for r := 0; r < 10; r++ {
		i := r
		if decrypt {
			i = 9 - r
		}
		numIn := B
		if decrypt {
			numIn = A
		}
		Q := append([]byte(nil), T...)
		Q = append(Q, make([]byte, ((-t-b-1)%16+16)%16)...)
		Q = append(Q, byte(i))
		Q = append(Q, num(numIn).FillBytes(make([]byte, b))...)
		R := prf(append(append([]byte(nil), P...), Q...))
		S := append([]byte(nil), R...)
		for j := 1; j < (d+15)/16; j++ {
			blk := make([]byte, 16)
			new(big.Int).Xor(new(big.Int).SetBytes(R), big.NewInt(int64(j))).FillBytes(blk)
			block.Encrypt(blk, blk)
			S = append(S, blk...)
		}
		y := new(big.Int).SetBytes(S[:d])
		m := v
		if i%2 == 0 {
			m = u
		}
		mod := new(big.Int).Exp(big.NewInt(int64(radix)), big.NewInt(int64(m)), nil)
		if !decrypt {
			c := new(big.Int).Add(num(A), y)
			c.Mod(c, mod)
			A, B = B, str(m, c)
		} else {
			c := new(big.Int).Sub(num(B), y)
			c.Mod(c, mod)
			B, A = A, str(m, c)
		}
	}
	return append(A, B...)
}

func toNumerals(t testing.TB, alphabet, s string) []int {
	t.Helper()
	idx := map[rune]int{}
	for i, r := range []rune(alphabet) {
		idx[r] = i
	}
	var out []int
	for _, r := range s {
		d, ok := idx[r]
		if !ok {
			t.Fatalf("toNumerals: character not in alphabet")
		}
		out = append(out, d)
	}
	return out
}

func fromNumerals(alphabet string, X []int) string {
	a := []rune(alphabet)
	var sb strings.Builder
	for _, d := range X {
		sb.WriteRune(a[d])
	}
	return sb.String()
}

func randomString(rng *rand.Rand, alphabet []rune, n int) string {
	var sb strings.Builder
	for range n {
		sb.WriteRune(alphabet[rng.IntN(len(alphabet))])
	}
	return sb.String()
}

const (
	alnum62  = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	accented = "abcdefghijklmnopqrstuvwxyzàâäçéèêëîïôöùûüÿæœ" // multi-byte runes
)

// bigAlphabet returns n distinct runes, most of them non-ASCII.
func bigAlphabet(n int) string {
	rs := make([]rune, n)
	for i := range rs {
		rs[i] = rune(0x100 + i)
		if rs[i] >= 0xD800 { // skip surrogates
			rs[i] += 0x800
		}
	}
	return string(rs)
}

type alphabetCase struct {
	name     string
	alphabet string
	lengths  []int
}

func alphabetCases() []alphabetCase {
	return []alphabetCase{
		{"radix2", digits36[:2], []int{20, 21, 63, 64, 126, 127, 128, 129, 200}},
		{"radix10", digits36[:10], []int{6, 7, 8, 15, 16, 19, 37, 38, 39, 40, 41, 64, 101}},
		{"radix16", digits36[:16], []int{5, 6, 31, 32, 33, 34, 50}},
		{"radix36", digits36, []int{4, 5, 24, 25, 26, 27, 60}},
		{"alnum62", alnum62, []int{4, 5, 20, 21, 22, 23, 45}},
		{"accented", accented, []int{4, 5, 11, 12, 23, 24, 30}},
		{"radix256", bigAlphabet(256), []int{3, 4, 14, 15, 16, 17, 33}},
		{"radix1000", bigAlphabet(1000), []int{2, 3, 12, 13, 14, 30}},
		{"radix65536", bigAlphabet(65536), []int{2, 3, 6, 7, 8, 9, 17}},
	}
}

// TestAgainstReference compares Encrypt and Decrypt with refFF1 across
// alphabets, key sizes, tweak lengths (0..40, around the 16-byte blocks of
// Q) and lengths on both sides of the uint64/math/big boundary.
func TestAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, ac := range alphabetCases() {
		t.Run(ac.name, func(t *testing.T) {
			runes := []rune(ac.alphabet)
			for _, keyLen := range []int{16, 24, 32} {
				key := make([]byte, keyLen)
				for i := range key {
					key[i] = byte(rng.Uint32())
				}
				paths := bothPaths(t, key, ac.alphabet)
				for _, n := range ac.lengths {
					for _, tl := range []int{0, 1, 7, 8, 11, 12, 15, 16, 17, 31, 40} {
						tweak := make([]byte, tl)
						for i := range tweak {
							tweak[i] = byte(rng.Uint32())
						}
						x := randomString(rng, runes, n)
						want := fromNumerals(ac.alphabet, refFF1(key, len(runes), tweak, toNumerals(t, ac.alphabet, x), false))
						wantDec := fromNumerals(ac.alphabet, refFF1(key, len(runes), tweak, toNumerals(t, ac.alphabet, x), true))
						for _, f := range paths {
							got, err := f.Encrypt(tweak, x)
							if err != nil || got != want {
								t.Fatalf("AES-%d ni=%v n=%d t=%d: Encrypt(%q) = %q, %v, want %q", 8*keyLen, f.ni, n, tl, x, got, err, want)
							}
							gotDec, err := f.Decrypt(tweak, x)
							if err != nil || gotDec != wantDec {
								t.Fatalf("AES-%d ni=%v n=%d t=%d: Decrypt(%q) = %q, %v, want %q", 8*keyLen, f.ni, n, tl, x, gotDec, err, wantDec)
							}
						}
					}
				}
			}
		})
	}
}

// TestRoundTrip encrypts and decrypts thousands of random inputs.
func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	iters := 4000
	if testing.Short() {
		iters = 400
	}
	for _, ac := range alphabetCases() {
		t.Run(ac.name, func(t *testing.T) {
			runes := []rune(ac.alphabet)
			key := make([]byte, 16)
			for i := range key {
				key[i] = byte(rng.Uint32())
			}
			f, err := NewFF1WithAlphabet(key, ac.alphabet)
			if err != nil {
				t.Fatal(err)
			}
			maxN := ac.lengths[len(ac.lengths)-1]
			for range iters {
				n := f.MinLen() + rng.IntN(maxN-f.MinLen()+1)
				tweak := make([]byte, rng.IntN(24))
				for i := range tweak {
					tweak[i] = byte(rng.Uint32())
				}
				x := randomString(rng, runes, n)
				ct, err := f.Encrypt(tweak, x)
				if err != nil {
					t.Fatalf("Encrypt(%q): %v", x, err)
				}
				if utf8.RuneCountInString(ct) != n {
					t.Fatalf("Encrypt(%q) = %q: %d characters, want %d", x, ct, utf8.RuneCountInString(ct), n)
				}
				pt, err := f.Decrypt(tweak, ct)
				if err != nil || pt != x {
					t.Fatalf("Decrypt(%q) = %q, %v, want %q", ct, pt, err, x)
				}
			}
		})
	}
}

// TestPermutation checks on a whole small domain (10^6 values of radix 10,
// length 6) that Encrypt is a bijection, so no value ever collides.
func TestPermutation(t *testing.T) {
	if testing.Short() {
		t.Skip("encrypts 10^6 values")
	}
	f, err := NewFF1(make([]byte, 16), 10)
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]bool, 1_000_000)
	for i := range 1_000_000 {
		x := fmt.Sprintf("%06d", i)
		ct, err := f.Encrypt([]byte("tw"), x)
		if err != nil {
			t.Fatalf("Encrypt(%q): %v", x, err)
		}
		var j int
		if _, err := fmt.Sscanf(ct, "%d", &j); err != nil || len(ct) != 6 {
			t.Fatalf("Encrypt(%q) = %q: not 6 digits", x, ct)
		}
		if seen[j] {
			t.Fatalf("Encrypt(%q) = %q: collision", x, ct)
		}
		seen[j] = true
	}
}

func TestStr64(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, radix := range []int{2, 3, 7, 10, 16, 36, 62, 255, 256, 1000, 65535, 65536} {
		f, err := NewFF1WithAlphabet(make([]byte, 16), bigAlphabet(radix))
		if err != nil {
			t.Fatal(err)
		}
		for range 2000 {
			m := 1 + rng.IntN(f.fastV)
			x := rng.Uint64N(f.pow[m])
			if rng.IntN(2) == 0 {
				x = rng.Uint64N(min(f.pow[m], 1<<32))
			}
			dst := make([]uint16, m)
			f.str64(x, dst)
			if got := f.num64(dst); got != x {
				t.Fatalf("radix %d: num64(str64(%d)) = %d", radix, x, got)
			}
		}
	}
}

// TestFastPathBounds checks the limits the package documentation states.
func TestFastPathBounds(t *testing.T) {
	for _, tc := range []struct {
		alphabet string
		maxFast  int
	}{
		{digits36[:10], 38}, {digits36, 24}, {alnum62, 20}, {digits36[:2], 126},
	} {
		f, err := NewFF1WithAlphabet(make([]byte, 16), tc.alphabet)
		if err != nil {
			t.Fatal(err)
		}
		if 2*f.fastV != tc.maxFast {
			t.Errorf("radix %d: uint64 path up to %d characters, want %d", f.Radix(), 2*f.fastV, tc.maxFast)
		}
	}
}

func TestMinLen(t *testing.T) {
	for _, tc := range []struct{ radix, minLen int }{
		{2, 20}, {3, 13}, {10, 6}, {16, 5}, {26, 5}, {36, 4}, {62, 4}, {100, 3}, {999, 3}, {1000, 2}, {65536, 2},
	} {
		f, err := NewFF1WithAlphabet(make([]byte, 16), bigAlphabet(tc.radix))
		if err != nil {
			t.Fatal(err)
		}
		if f.Radix() != tc.radix || f.MinLen() != tc.minLen || f.MaxLen() != 4096 {
			t.Errorf("radix %d: Radix, MinLen, MaxLen = %d, %d, %d, want %d, %d, 4096", tc.radix, f.Radix(), f.MinLen(), f.MaxLen(), tc.radix, tc.minLen)
		}
	}
}

func TestConstructorErrors(t *testing.T) {
	key := make([]byte, 16)
	radix := func(key []byte, r int) func() (*FF1, error) {
		return func() (*FF1, error) { return NewFF1(key, r) }
	}
	alphabet := func(key []byte, a string) func() (*FF1, error) {
		return func() (*FF1, error) { return NewFF1WithAlphabet(key, a) }
	}
	for _, tc := range []struct {
		name string
		new  func() (*FF1, error)
		want error
	}{
		{"key nil", radix(nil, 10), ErrKeySize},
		{"key 15", radix(make([]byte, 15), 10), ErrKeySize},
		{"key 17", radix(make([]byte, 17), 10), ErrKeySize},
		{"key 64", alphabet(make([]byte, 64), "0123456789"), ErrKeySize},
		{"radix 0", radix(key, 0), ErrAlphabet},
		{"radix 1", radix(key, 1), ErrAlphabet},
		{"radix 37", radix(key, 37), ErrAlphabet},
		{"radix -10", radix(key, -10), ErrAlphabet},
		{"empty alphabet", alphabet(key, ""), ErrAlphabet},
		{"one character", alphabet(key, "a"), ErrAlphabet},
		{"one non-ASCII character", alphabet(key, "é"), ErrAlphabet},
		{"duplicate", alphabet(key, "0123456789abca"), ErrAlphabet},
		{"duplicate non-ASCII", alphabet(key, "abcé€é"), ErrAlphabet},
		{"invalid UTF-8", alphabet(key, "abc\xff"), ErrAlphabet},
		{"too many characters", alphabet(key, bigAlphabet(65537)), ErrAlphabet},
	} {
		f, err := tc.new()
		if !errors.Is(err, tc.want) || f != nil {
			t.Errorf("%s: got %v, %v, want nil, %v", tc.name, f, err, tc.want)
		}
	}
	for _, ok := range []string{"01", "ab", accented, alnum62, bigAlphabet(65536), "\uFFFDx"} {
		if _, err := NewFF1WithAlphabet(key, ok); err != nil {
			t.Errorf("NewFF1WithAlphabet(%d runes): %v", utf8.RuneCountInString(ok), err)
		}
	}
}

func TestInputErrors(t *testing.T) {
	key := make([]byte, 16)
	dec, _ := NewFF1(key, 10)
	hex16, _ := NewFF1(key, 16)
	bin, _ := NewFF1(key, 2)
	acc, _ := NewFF1WithAlphabet(key, accented)
	repl, _ := NewFF1WithAlphabet(key, "\uFFFDabcdefghij")
	long := strings.Repeat("1", 4097)
	for _, tc := range []struct {
		name  string
		f     *FF1
		tweak []byte
		x     string
		want  error
	}{
		{"sign", dec, nil, "-12345678", ErrNumeral},
		{"plus", dec, nil, "+12345678", ErrNumeral},
		{"leading space", dec, nil, " 123456", ErrNumeral},
		{"trailing space", dec, nil, "123456 ", ErrNumeral},
		{"letter", dec, nil, "123456789012a", ErrNumeral},
		{"letter", dec, nil, "12a456", ErrNumeral},
		{"space", dec, nil, "123 456", ErrNumeral},
		// Too short and invalid: refused either way, for the length first.
		{"letter short", dec, nil, "12a", ErrDomainTooSmall},
		{"space short", dec, nil, " 123", ErrDomainTooSmall},
		{"upper case", hex16, nil, "DEADBEEF", ErrNumeral},
		{"underscore", dec, nil, "1_000_000", ErrNumeral},
		{"NUL", dec, nil, "123\x00456", ErrNumeral},
		{"non-ASCII digit", dec, nil, "12345٦", ErrNumeral},
		{"long non-ASCII", dec, nil, strings.Repeat("٦", 50), ErrNumeral},
		{"long letter", dec, nil, strings.Repeat("1", 60) + "x", ErrNumeral},
		{"accented unknown", acc, nil, "abcdÉ", ErrNumeral},
		{"invalid UTF-8", acc, nil, "abc\xe9d", ErrNumeral},
		{"invalid UTF-8 vs U+FFFD", repl, nil, "abc\xffdef", ErrNumeral},
		{"empty", dec, nil, "", ErrDomainTooSmall},
		{"5 digits", dec, nil, "12345", ErrDomainTooSmall},
		{"19 bits", bin, nil, "0101010101010101010", ErrDomainTooSmall},
		{"4 accented", acc, nil, "ééé", ErrDomainTooSmall},
		{"too long", dec, nil, long, ErrLength},
		{"too long non-ASCII", acc, nil, strings.Repeat("é", 4097), ErrLength},
		{"far too long non-ASCII", acc, nil, strings.Repeat("é", 20000), ErrLength},
		{"tweak 257", dec, make([]byte, 257), "123456", ErrTweak},
		{"nil FF1", nil, nil, "123456", errNotInitialized},
		{"zero FF1", &FF1{}, nil, "123456", errNotInitialized},
	} {
		for _, op := range []struct {
			name string
			fn   func(*FF1, []byte, string) (string, error)
		}{{"Encrypt", (*FF1).Encrypt}, {"Decrypt", (*FF1).Decrypt}} {
			got, err := op.fn(tc.f, tc.tweak, tc.x)
			if !errors.Is(err, tc.want) || got != "" {
				t.Errorf("%s: %s(%q) = %q, %v, want %v", tc.name, op.name, tc.x, got, err, tc.want)
				continue
			}
			// The input is PII: no error message may repeat it.
			if len(tc.x) >= 3 && strings.Contains(err.Error(), tc.x) {
				t.Errorf("%s: %s error %q contains the input", tc.name, op.name, err)
			}
		}
	}
	// Limits are inclusive.
	if _, err := dec.Encrypt(make([]byte, MaxTweakLen), "123456"); err != nil {
		t.Errorf("Encrypt with a %d-byte tweak: %v", MaxTweakLen, err)
	}
	if _, err := dec.Encrypt(nil, long[:4096]); err != nil {
		t.Errorf("Encrypt of 4096 digits: %v", err)
	}
	if _, err := acc.Encrypt(nil, strings.Repeat("é", 4096)); err != nil {
		t.Errorf("Encrypt of 4096 accented characters: %v", err)
	}
}

// TestConcurrent shares one FF1 between 16 goroutines; run with -race.
func TestConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	f, err := NewFF1WithAlphabet(make([]byte, 32), alnum62)
	if err != nil {
		t.Fatal(err)
	}
	runes := []rune(alnum62)
	type item struct {
		tweak  []byte
		pt, ct string
	}
	items := make([]item, 300)
	for i := range items {
		n := 4 + rng.IntN(40) // both the uint64 and the math/big paths
		items[i].tweak = []byte(fmt.Sprint("tweak", i%7))
		items[i].pt = randomString(rng, runes, n)
		if items[i].ct, err = f.Encrypt(items[i].tweak, items[i].pt); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for g := range 16 {
		wg.Go(func() {
			for k := range 3 * len(items) {
				it := items[(k*7+g)%len(items)]
				if ct, err := f.Encrypt(it.tweak, it.pt); err != nil || ct != it.ct {
					errs <- fmt.Sprintf("goroutine %d: Encrypt(%q) = %q, %v, want %q", g, it.pt, ct, err, it.ct)
					return
				}
				if pt, err := f.Decrypt(it.tweak, it.ct); err != nil || pt != it.pt {
					errs <- fmt.Sprintf("goroutine %d: Decrypt(%q) = %q, %v, want %q", g, it.ct, pt, err, it.pt)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under -cover and -race")
	}
	tweak := []byte("1234567")
	x := "4111111111111111"
	for _, f := range bothPaths(t, make([]byte, 16), digits36[:10]) {
		for _, tweak := range [][]byte{tweak, []byte("a tweak of more than sixteen bytes")} {
			var ct string
			if n := testing.AllocsPerRun(1000, func() { ct, _ = f.Encrypt(tweak, x) }); n > 1 {
				t.Errorf("ni=%v, %d-byte tweak: Encrypt: %v allocations, want at most 1", f.ni, len(tweak), n)
			}
			if n := testing.AllocsPerRun(1000, func() { _, _ = f.Decrypt(tweak, ct) }); n > 1 {
				t.Errorf("ni=%v, %d-byte tweak: Decrypt: %v allocations, want at most 1", f.ni, len(tweak), n)
			}
		}
	}
	g, err := NewFF1WithAlphabet(make([]byte, 16), accented)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { _, _ = g.Encrypt(tweak, "àâäçéèêëîïôöùûüÿ") }); n > 1 {
		t.Errorf("Encrypt (non-ASCII alphabet): %v allocations, want at most 1", n)
	}
}

func TestRem64(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for range 100000 {
		m := rng.Uint64() >> rng.IntN(64)
		if m == 0 {
			m = 1
		}
		x := rng.Uint64() >> rng.IntN(64)
		for _, x := range []uint64{x, ^uint64(0), ^uint64(0) - 1, m - 1, m, m + 1, 0} {
			if got, want := rem64(x, m, ^uint64(0)/m), x%m; got != want {
				t.Fatalf("rem64(%d, %d) = %d, want %d", x, m, got, want)
			}
		}
	}
	for _, m := range []uint64{1, 2, 3, 1 << 32, 1<<63 + 1, ^uint64(0)} {
		for _, x := range []uint64{0, 1, m - 1, m, ^uint64(0), ^uint64(0) - 1} {
			if got, want := rem64(x, m, ^uint64(0)/m), x%m; got != want {
				t.Fatalf("rem64(%d, %d) = %d, want %d", x, m, got, want)
			}
		}
	}
}

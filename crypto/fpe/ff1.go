package fpe

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"math/big"
	"math/bits"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

const (
	// MaxTweakLen is the longest tweak, in bytes, that Encrypt and Decrypt
	// accept (maxTlen in SP 800-38G). Longer tweaks return ErrTweak.
	MaxTweakLen = 256

	// maxLen is the longest input, in numerals (characters); see FF1.MaxLen.
	maxLen = 4096

	// maxRadix is the largest radix SP 800-38G allows (2^16).
	maxRadix = 1 << 16

	// minDomain is the smallest radix^length SP 800-38G Rev. 1 allows.
	minDomain = 1_000_000

	// numRounds is the number of Feistel rounds of FF1.
	numRounds = 10

	// fastMaxLen bounds the inputs of the uint64 path: it needs
	// radix^v < 2^64 with v = ceil(n/2) and radix >= 2, so v <= 63.
	fastMaxLen = 126

	digits36 = "0123456789abcdefghijklmnopqrstuvwxyz"
)

// FF1 is the FF1 format-preserving cipher of NIST SP 800-38G over AES with
// one key and one alphabet. It maps a string of n characters of the
// alphabet to another string of n characters of the same alphabet.
//
// An FF1 is safe for concurrent use by multiple goroutines: its key,
// alphabet and tables do not change after construction, and its one cache
// (of a key-dependent block per input length) is updated atomically. Use
// it through the pointer that NewFF1 returns; do not copy it.
//
// What it protects and what it leaks: see the package documentation.
type FF1 struct {
	block    cipher.Block
	radix    uint64
	alphabet []rune // numeral i is written alphabet[i]
	ascii    bool   // every character of alphabet is ASCII
	decimal  bool   // the alphabet is "0123456789"

	// byteNum[c] is the numeral of the ASCII character c, -1 for bytes that
	// are not in the alphabet; runeNum maps the non-ASCII characters.
	byteNum [256]int32
	runeNum map[rune]int32
	// asciiChars[i] is the character of numeral i, for ASCII alphabets.
	asciiChars [utf8.RuneSelf]byte

	minLen int
	// pow[k] = radix^k for k <= fastV, the largest k with radix^k < 2^64.
	pow   [64]uint64
	fastV int
	// divM = floor((2^64-1)/radix)+1: for x < 2^32, x/radix is the high
	// word of x*divM (Lemire, Kaser, Kurz 2019).
	divM uint64
	// powInv[k] = floor((2^64-1)/pow[k]), for Barrett reduction mod pow[k].
	powInv [64]uint64

	// pCache[n] caches CIPH_K(P) (step 5) for inputs of n characters and
	// one tweak length, saving one AES call per Encrypt or Decrypt.
	pCache [fastMaxLen + 1]atomic.Pointer[pState]

	// ni: the uint64 path runs its rounds with AES-NI (feistelNI) on the
	// expanded key ks of nr rounds, whose round key 0 is k0Hi || k0Lo.
	// Otherwise, and for the math/big path, block (crypto/aes) does the AES.
	ni         bool
	ks         [maxRoundKeys]byte
	nr         int
	k0Hi, k0Lo uint64
}

// pState is an immutable pCache entry: the CBC-MAC state after P for
// tweaks of t bytes.
type pState struct {
	t      int
	hi, lo uint64
}

// NewFF1 returns an FF1 cipher for the given AES key (16, 24 or 32 bytes)
// and radix in 2..36, whose numerals are written with the first radix
// characters of "0123456789abcdefghijklmnopqrstuvwxyz": lower case only.
func NewFF1(key []byte, radix int) (*FF1, error) {
	if radix < 2 || radix > len(digits36) {
		return nil, fmt.Errorf("%w: radix %d, want 2..%d (use NewFF1WithAlphabet for more)", ErrAlphabet, radix, len(digits36))
	}
	return NewFF1WithAlphabet(key, digits36[:radix])
}

// NewFF1WithAlphabet returns an FF1 cipher for the given AES key (16, 24 or
// 32 bytes) whose numerals are the characters (runes, not bytes) of
// alphabet: numeral i is the i-th rune. The radix is the number of runes,
// from 2 to 65,536; runes must be distinct. Characters are compared as
// code points: normalize text (e.g. NFC) before encrypting it if the
// alphabet contains accented letters.
func NewFF1WithAlphabet(key []byte, alphabet string) (*FF1, error) {
	switch len(key) {
	case 16, 24, 32:
	default:
		return nil, fmt.Errorf("%w: got %d bytes", ErrKeySize, len(key))
	}
	if !utf8.ValidString(alphabet) {
		return nil, fmt.Errorf("%w: alphabet is not valid UTF-8", ErrAlphabet)
	}
	runes := []rune(alphabet)
	if len(runes) < 2 || len(runes) > maxRadix {
		return nil, fmt.Errorf("%w: alphabet has %d characters, want 2..%d", ErrAlphabet, len(runes), maxRadix)
	}
	f := &FF1{alphabet: runes, radix: uint64(len(runes)), ascii: true}
	for c := range f.byteNum {
		f.byteNum[c] = -1
	}
	for i, r := range runes {
		if r < utf8.RuneSelf {
			if f.byteNum[r] >= 0 {
				return nil, fmt.Errorf("%w: duplicate character at index %d", ErrAlphabet, i)
			}
			f.byteNum[r] = int32(i)
			continue
		}
		f.ascii = false
		if f.runeNum == nil {
			f.runeNum = make(map[rune]int32)
		}
		if _, dup := f.runeNum[r]; dup {
			return nil, fmt.Errorf("%w: duplicate character at index %d", ErrAlphabet, i)
		}
		f.runeNum[r] = int32(i)
	}
	if f.ascii {
		for i, r := range runes {
			f.asciiChars[i] = byte(r)
		}
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeySize, err)
	}
	f.block = block
	f.decimal = alphabet == digits36[:10]
	if hasAESNI() {
		f.ni = true
		f.ks, f.nr = expandKey(key)
		f.k0Hi = binary.BigEndian.Uint64(f.ks[0:8])
		f.k0Lo = binary.BigEndian.Uint64(f.ks[8:16])
	}

	f.pow[0] = 1
	for k := 1; k < len(f.pow); k++ {
		hi, lo := bits.Mul64(f.pow[k-1], f.radix)
		if hi != 0 {
			break
		}
		f.pow[k] = lo
		f.powInv[k] = ^uint64(0) / lo
		f.fastV = k
	}
	// minlen: the smallest n >= 2 with radix^n >= 10^6. radix >= 2 gives
	// n <= 20, and 2^20 fits in pow.
	f.minLen = 2
	for f.minLen > f.fastV || f.pow[f.minLen] < minDomain {
		f.minLen++
	}
	f.divM = ^uint64(0)/f.radix + 1
	return f, nil
}

// Radix returns the number of characters of the alphabet.
func (f *FF1) Radix() int { return int(f.radix) }

// MinLen returns the shortest input, in characters, that Encrypt and
// Decrypt accept: the smallest n >= 2 with radix^n >= 1,000,000 (6 for
// radix 10, 4 for radix 36 and 62, 20 for radix 2).
func (f *FF1) MinLen() int { return f.minLen }

// MaxLen returns the longest input, in characters, that Encrypt and
// Decrypt accept: 4096. Inputs of up to 2*v characters, where v is the
// largest integer with radix^v < 2^64 (38 digits for radix 10, 20
// characters for radix 62), take a fast path without math/big.
func (f *FF1) MaxLen() int { return maxLen }

// Encrypt returns the FF1 encryption of x under tweak: a string of the same
// number of characters from the same alphabet. x must have MinLen..MaxLen
// characters, all from the alphabet; tweak may be nil and at most
// MaxTweakLen bytes. Equal (tweak, x) give equal results: FF1 is
// deterministic. Errors wrap ErrTweak, ErrLength, ErrDomainTooSmall or
// ErrNumeral and never contain x.
func (f *FF1) Encrypt(tweak []byte, x string) (string, error) {
	return f.crypt(tweak, x, false)
}

// Decrypt inverts Encrypt: Decrypt(tweak, Encrypt(tweak, x)) == x. Like
// every FF1 ciphertext, x carries no integrity check: any string of valid
// length and alphabet decrypts to some plaintext. Input rules and errors
// are those of Encrypt.
func (f *FF1) Decrypt(tweak []byte, x string) (string, error) {
	return f.crypt(tweak, x, true)
}

// scratch holds the AES blocks that cross the cipher.Block interface
// (whose arguments escape); pooling them keeps Encrypt at one allocation.
type scratch struct {
	in, out [aes.BlockSize]byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func (f *FF1) crypt(tweak []byte, x string, decrypt bool) (string, error) {
	if f == nil || f.block == nil {
		return "", errNotInitialized
	}
	if len(tweak) > MaxTweakLen {
		return "", fmt.Errorf("%w: %d bytes, maximum %d", ErrTweak, len(tweak), MaxTweakLen)
	}
	n := len(x)
	if !f.ascii {
		if n > maxLen*utf8.UTFMax {
			return "", fmt.Errorf("%w: over %d characters", ErrLength, maxLen)
		}
		n = utf8.RuneCountInString(x)
	}
	if n > maxLen {
		return "", fmt.Errorf("%w: %d characters, maximum %d", ErrLength, n, maxLen)
	}
	if n < f.minLen {
		return "", fmt.Errorf("%w: %d characters of radix %d, minimum %d", ErrDomainTooSmall, n, f.radix, f.minLen)
	}
	// Step 1: u = floor(n/2); v = n - u.
	u := n / 2
	if n-u > f.fastV {
		return f.cryptBig(tweak, x, n, u, decrypt)
	}

	// Step 2: A = X[1..u]; B = X[u+1..n], held as the integers NUM_radix(A)
	// and NUM_radix(B) through all rounds: NUM_radix(STR^m_radix(c)) = c,
	// so no round needs the numerals themselves.
	if f.ascii {
		return f.crypt64ASCII(tweak, x[:n], u, decrypt)
	}
	var digits [fastMaxLen]uint16
	if err := f.decode(x, digits[:n]); err != nil {
		return "", err
	}
	a, b := f.num64(digits[:u]), f.num64(digits[u:n])
	a, b = f.feistel(tweak, n, u, a, b, decrypt)
	// Step 7: return A || B = STR^u_radix(A) || STR^v_radix(B).
	f.str64(a, digits[:u])
	f.str64(b, digits[u:n])
	return f.encode(digits[:n]), nil
}

// crypt64ASCII is crypt's uint64 path for an ASCII alphabet; x has n = len(x) characters,
// split at u.
func (f *FF1) crypt64ASCII(tweak []byte, x string, u int, decrypt bool) (string, error) {
	n := len(x)
	var a, b uint64
	if f.decimal && u == 8 {
		// The common case (16- and 17-digit numbers): each 8-digit half at once.
		var okA, okB bool
		a, okA = decimal8(x[0:8])
		b, okB = decimal8(x[8:16])
		if !okA || !okB {
			return "", ErrNumeral
		}
		if n == 17 {
			d := f.byteNum[x[16]]
			if d < 0 {
				return "", ErrNumeral
			}
			b = b*10 + uint64(d)
		}
	} else {
		// Both halves in one loop: two independent multiply chains.
		for i := 0; i < u; i++ {
			da, db := f.byteNum[x[i]], f.byteNum[x[u+i]]
			if da|db < 0 {
				return "", ErrNumeral
			}
			a = a*f.radix + uint64(da)
			b = b*f.radix + uint64(db)
		}
		if n > 2*u { // v = u+1: B has one more numeral
			d := f.byteNum[x[n-1]]
			if d < 0 {
				return "", ErrNumeral
			}
			b = b*f.radix + uint64(d)
		}
	}

	a, b = f.feistel(tweak, n, u, a, b, decrypt)

	// Step 7: return A || B = STR^u_radix(A) || STR^v_radix(B).
	if f.decimal && u == 8 {
		var out [17]byte
		if n == 17 {
			out[16] = '0' + byte(b%10)
			b /= 10
		}
		putDecimal8(out[0:8], a)
		putDecimal8(out[8:16], b)
		return string(out[:n]), nil
	}
	var out [fastMaxLen]byte
	f.str64ASCII(a, b, out[:n], u)
	return string(out[:n]), nil
}

// decimal8 returns the value of s, 8 ASCII decimal digits, and whether they all were digits:
// all eight at once in a uint64 (SWAR).
func decimal8(s string) (uint64, bool) {
	_ = s[7]
	w := uint64(s[0])<<56 | uint64(s[1])<<48 | uint64(s[2])<<40 | uint64(s[3])<<32 |
		uint64(s[4])<<24 | uint64(s[5])<<16 | uint64(s[6])<<8 | uint64(s[7])
	// Every byte is '0'..'9' (0x30..0x39): its high nibble is 3, and adding 6 to it does not
	// carry into the high nibble.
	if w&0xF0F0F0F0F0F0F0F0|(w+0x0606060606060606)&0xF0F0F0F0F0F0F0F0>>4 != 0x3333333333333333 {
		return 0, false
	}
	w -= 0x3030303030303030
	// Pairs, quads, then the eight: each step multiplies the higher half by 10^k and adds.
	w = (w>>8)&0x00FF00FF00FF00FF*10 + w&0x00FF00FF00FF00FF
	w = (w>>16)&0x0000FFFF0000FFFF*100 + w&0x0000FFFF0000FFFF
	w = (w>>32)*10000 + w&0xFFFFFFFF
	return w, true
}

// putDecimal8 writes x < 10^8 as 8 ASCII decimal digits into dst, all at once in a uint64
// (SWAR): two 4-digit lanes, split into four 2-digit lanes, then eight digits, each step
// dividing every lane by a constant with one multiply and shift.
func putDecimal8(dst []byte, x uint64) {
	hi := x / 10000
	v := hi | (x-hi*10000)<<32 // lanes of 32 bits, first digits in the low bytes
	// A lane below 10^4 over 100: (l*5243)>>19; below 100 over 10: (l*103)>>10.
	q := v * 5243 >> 19 & 0x0000007F0000007F
	v = q | (v-q*100)<<16
	q = v * 103 >> 10 & 0x000F000F000F000F
	v = q | (v-q*10)<<8
	binary.LittleEndian.PutUint64(dst, v+0x3030303030303030)
}

// cryptBig is crypt with math/big, for radix^v >= 2^64.
func (f *FF1) cryptBig(tweak []byte, x string, n, u int, decrypt bool) (string, error) {
	digits := make([]uint16, n)
	if err := f.decode(x, digits); err != nil {
		return "", err
	}
	s := scratchPool.Get().(*scratch)
	f.feistelBig(&s.out, tweak, u, digits, decrypt)
	scratchPool.Put(s)
	return f.encode(digits), nil
}

// decode writes the numeral of each character of x to dst, which has one
// element per character.
func (f *FF1) decode(x string, dst []uint16) error {
	if f.ascii {
		for i := 0; i < len(x); i++ {
			d := f.byteNum[x[i]]
			if d < 0 {
				return ErrNumeral
			}
			dst[i] = uint16(d)
		}
		return nil
	}
	for i := 0; len(x) > 0; i++ {
		d := int32(-1)
		if c := x[0]; c < utf8.RuneSelf {
			d = f.byteNum[c]
			x = x[1:]
		} else {
			r, size := utf8.DecodeRuneInString(x)
			if r != utf8.RuneError || size > 1 {
				if e, ok := f.runeNum[r]; ok {
					d = e
				}
			}
			x = x[size:]
		}
		if d < 0 {
			return ErrNumeral
		}
		dst[i] = uint16(d)
	}
	return nil
}

// encode writes the numerals with the alphabet.
func (f *FF1) encode(digits []uint16) string {
	var stack [512]byte
	out := stack[:0]
	if f.ascii {
		for _, d := range digits {
			out = append(out, f.asciiChars[d&(utf8.RuneSelf-1)])
		}
	} else {
		for _, d := range digits {
			out = utf8.AppendRune(out, f.alphabet[d])
		}
	}
	return string(out)
}

// num64 returns NUM_radix(X) for len(X) <= fastV.
func (f *FF1) num64(digits []uint16) uint64 {
	var x uint64
	for _, d := range digits {
		x = x*f.radix + uint64(d)
	}
	return x
}

// str64 writes STR^m_radix(x) to dst, m = len(dst), for x < radix^m.
func (f *FF1) str64(x uint64, dst []uint16) {
	for j := len(dst) - 1; j >= 0; j-- {
		q := f.div64(x)
		dst[j] = uint16(x - q*f.radix)
		x = q
	}
}

// str64ASCII writes STR^u_radix(a) || STR^v_radix(b), v = len(dst)-u, to
// dst with an ASCII alphabet, both halves in one loop.
func (f *FF1) str64ASCII(a, b uint64, dst []byte, u int) {
	n := len(dst)
	if n > 2*u { // v = u+1: the last numeral of B first
		q := f.div64(b)
		dst[n-1] = f.asciiChars[(b-q*f.radix)&(utf8.RuneSelf-1)]
		b = q
	}
	dst = dst[:2*u]
	for k := u - 1; k >= 0; k-- {
		qa, qb := f.div64(a), f.div64(b)
		dst[k] = f.asciiChars[(a-qa*f.radix)&(utf8.RuneSelf-1)]
		dst[u+k] = f.asciiChars[(b-qb*f.radix)&(utf8.RuneSelf-1)]
		a, b = qa, qb
	}
}

// div64 returns x / radix.
func (f *FF1) div64(x uint64) uint64 {
	if x < 1<<32 {
		q, _ := bits.Mul64(x, f.divM)
		return q
	}
	return x / f.radix
}

// macPrefix starts PRF(P || Q), the CBC-MAC of SP 800-38G, with the blocks
// that do not change between rounds: it leaves in x the MAC state after P
// and after the whole 16-byte blocks of Q that hold only tweak and padding
// bytes, and returns the number of those blocks.
func (f *FF1) macPrefix(x *[aes.BlockSize]byte, tweak []byte, n, u, b int) (full int) {
	hi, lo := f.macP(n, u, len(tweak))
	binary.BigEndian.PutUint64(x[0:8], hi)
	binary.BigEndian.PutUint64(x[8:16], lo)
	full = fullTweakBlocks(len(tweak), b)
	for j := range full {
		xorTweakBlock(x, tweak, j)
		f.block.Encrypt(x[:], x[:])
	}
	return full
}

// macP returns CIPH_K(P) (step 5), the CBC-MAC state after P, for inputs of n
// characters split at u and tweaks of t bytes, from the cache when it can.
func (f *FF1) macP(n, u, t int) (hi, lo uint64) {
	if n < len(f.pCache) {
		if e := f.pCache[n].Load(); e != nil && e.t == t {
			return e.hi, e.lo
		}
	}
	return f.computeP(n, u, t)
}

// computeP is macP's cache miss: it computes CIPH_K(P) and caches it.
func (f *FF1) computeP(n, u, t int) (hi, lo uint64) {
	// P = [1]^1 || [2]^1 || [1]^1 || [radix]^3 || [10]^1 || [u mod 256]^1 ||
	// [n]^4 || [t]^4. x goes to the heap (it crosses cipher.Block): one
	// allocation per miss, as the pState it fills is another.
	x := new([aes.BlockSize]byte)
	x[0], x[1], x[2] = 1, 2, 1
	x[3], x[4], x[5] = byte(f.radix>>16), byte(f.radix>>8), byte(f.radix)
	x[6] = 10
	x[7] = byte(u)
	binary.BigEndian.PutUint32(x[8:12], uint32(n))
	binary.BigEndian.PutUint32(x[12:16], uint32(t))
	f.block.Encrypt(x[:], x[:])
	hi, lo = binary.BigEndian.Uint64(x[0:8]), binary.BigEndian.Uint64(x[8:16])
	if n < len(f.pCache) {
		f.pCache[n].Store(&pState{t: t, hi: hi, lo: lo})
	}
	return hi, lo
}

// fullTweakBlocks returns the number of whole 16-byte blocks at the start of
// Q = T || [0]^((-t-b-1) mod 16) || [i]^1 || [NUM(B)]^b (step 6.i) that hold
// only tweak and padding bytes, the same in every round.
func fullTweakBlocks(t, b int) int {
	return (t + pad16(t, b)) / aes.BlockSize
}

// xorTweakBlock xors the tweak bytes of the j-th block of Q into x (the rest
// of a full block is zero padding).
func xorTweakBlock(x *[aes.BlockSize]byte, tweak []byte, j int) {
	lo := j * aes.BlockSize
	hi := min(lo+aes.BlockSize, len(tweak))
	for k := lo; k < hi; k++ {
		x[k-lo] ^= tweak[k]
	}
}

// pad16 returns (-t-b-1) mod 16, the zero padding of Q.
func pad16(t, b int) int {
	return (16 - (t+b+1)%16) % 16
}

// feistel runs steps 3-6 on A and B held as integers, for radix^v < 2^64,
// with AES-NI when the CPU has it, and returns the final A and B.
func (f *FF1) feistel(tweak []byte, n, u int, a, b uint64, decrypt bool) (uint64, uint64) {
	// With b = 8 bytes (radix^v > 2^56, e.g. 33+ digits), [i]^1 falls in
	// the block's first half, which feistelAsm keeps constant: Go rounds.
	if f.ni && f.pow[n-u] <= 1<<56 {
		return f.feistelNI(tweak, n, u, a, b, decrypt)
	}
	return f.feistelGo(tweak, n, u, a, b, decrypt)
}

// feistelGo is feistel64 with its scratch blocks from the pool.
func (f *FF1) feistelGo(tweak []byte, n, u int, a, b uint64, decrypt bool) (uint64, uint64) {
	s := scratchPool.Get().(*scratch)
	a, b = f.feistel64(s, tweak, n, u, a, b, decrypt)
	scratchPool.Put(s)
	return a, b
}

// feistelNI is feistel64 with the rounds in assembly (feistelAsm): the AES
// rounds with AES-NI on round keys held in registers, and each round's
// reduction in general registers, so no call, interface or memory round trip
// sits between one round's AES and the next. Its buffers stay on the stack.
// feistel64 is the reference it is tested against.
func (f *FF1) feistelNI(tweak []byte, n, u int, a, b uint64, decrypt bool) (uint64, uint64) {
	v := n - u
	modU, modV := f.pow[u], f.pow[v]
	// Steps 3-4 as in feistel64: b = 1..7 bytes here, d = 8 or 12.
	blen := (bits.Len64(modV-1) + 7) / 8

	// The MAC state before the last block of Q, in two big-endian halves.
	hi, lo := f.macP(n, u, len(tweak))
	full := fullTweakBlocks(len(tweak), blen)
	if full > 0 {
		var x [aes.BlockSize]byte
		binary.BigEndian.PutUint64(x[0:8], hi)
		binary.BigEndian.PutUint64(x[8:16], lo)
		for j := range full {
			xorTweakBlock(&x, tweak, j)
			encryptBlockAsm(&f.ks, f.nr, &x)
		}
		hi, lo = binary.BigEndian.Uint64(x[0:8]), binary.BigEndian.Uint64(x[8:16])
	}
	// The last block of Q: the remaining (< 16) tweak bytes, zero padding,
	// [i]^1 || [NUM]^b, xored into the state, plus round key 0 (AES's first
	// AddRoundKey, done here once for all rounds). feistelAsm xors in
	// [NUM]^8, which covers [NUM]^b and the zeros before it.
	if len(tweak) > full*aes.BlockSize {
		if tail := tweak[full*aes.BlockSize:]; len(tail) >= 8 {
			hi ^= binary.BigEndian.Uint64(tail)
			lo ^= bePrefix(tail[8:])
		} else {
			hi ^= bePrefix(tail)
		}
	}
	hi, lo = bits.ReverseBytes64(hi^f.k0Hi), bits.ReverseBytes64(lo^f.k0Lo)
	// [i]^1 is byte 7-b of the last 8 bytes: i << iShift little-endian.
	// Encrypt's round r has i = r, decrypt's i = 9-r.
	iShift := 56 - 8*uint(blen)
	iTerm, iStep := uint64(0), uint64(1)<<iShift
	if decrypt {
		iTerm, iStep = (numRounds-1)<<iShift, -iStep
	}
	// Step 6.v: m = u on even i. Decrypt's round r has i = 9-r: odd first.
	mods := [4]uint64{modU, f.powInv[u], modV, f.powInv[v]}
	// Encrypt rounds map (A, B) to (B, A + y); decrypt rounds map (B, A) to
	// (A, B - y): feistelAsm takes (p, q) = (A, B) or (B, A) and maps it to
	// (q, p +- y).
	p, q := a, b
	if decrypt {
		mods = [4]uint64{modV, f.powInv[v], modU, f.powInv[u]}
		p, q = b, a
	}
	p, q = feistelAsm(&f.ks, f.nr, hi, lo, iTerm, iStep, &mods, p, q, blen > 4, decrypt)
	if decrypt {
		return q, p
	}
	return p, q
}

// bePrefix returns b (at most 7 bytes) as the first bytes of a big-endian
// uint64, zero-padded: at most three loads, not a loop.
func bePrefix(b []byte) uint64 {
	var w uint64
	n := uint(len(b))
	if len(b)&4 != 0 {
		w = uint64(binary.BigEndian.Uint32(b))
		b = b[4:]
	}
	if len(b)&2 != 0 {
		w = w<<16 | uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) != 0 {
		w = w<<8 | uint64(b[0])
	}
	return w << (64 - 8*n)
}

// feistel64 runs steps 3-6 on A and B held as integers, for
// radix^v < 2^64, and returns the final A and B.
func (f *FF1) feistel64(s *scratch, tweak []byte, n, u int, a, b uint64, decrypt bool) (uint64, uint64) {
	v := n - u
	modU, modV := f.pow[u], f.pow[v]
	invU, invV := f.powInv[u], f.powInv[v]
	// Step 3: b = ceil(ceil(v*LOG(radix))/8), the byte length of
	// radix^v - 1 (ceil(v*log2 radix) is the least k with 2^k >= radix^v).
	blen := (bits.Len64(modV-1) + 7) / 8 // 1..8
	// Step 4: d = 4*ceil(b/4) + 4, 8 or 12 here.
	d := 4*((blen+3)/4) + 4

	in, out := &s.in, &s.out
	full := f.macPrefix(out, tweak, n, u, blen)
	// With b <= 8 the rest of Q is exactly one block: the last t mod 16 or
	// fewer tweak bytes, zero padding, [i]^1 and [NUM]^b. Fold its constant
	// bytes into the MAC state once.
	if t := len(tweak); t > full*aes.BlockSize {
		for k, c := range tweak[full*aes.BlockSize:] {
			out[k] ^= c
		}
	}
	preHi := binary.BigEndian.Uint64(out[0:8])
	preLo := binary.BigEndian.Uint64(out[8:16])
	// For b < 8 the bytes that change, [i]^1 || [NUM]^b, are all in the
	// second half of the block: write the first half once.
	binary.BigEndian.PutUint64(in[0:8], preHi)
	iShift := 8 * uint(blen) // bit offset of [i]^1 in the block's low half

	// Step 6: ten rounds (Algorithm 7), or the same rounds backwards
	// (Algorithm 8, FF1.Decrypt).
	for r := range numRounds {
		i := uint64(r)
		num := b // Step 6.i of FF1.Encrypt uses NUM_radix(B)...
		if decrypt {
			i = numRounds - 1 - i
			num = a // ...and of FF1.Decrypt, NUM_radix(A).
		}
		// Step 6.i: the last b+1 bytes of Q are [i]^1 || [num]^b.
		// Step 6.ii: R = PRF(P || Q), one AES call after the prefix.
		if blen < 8 {
			binary.BigEndian.PutUint64(in[8:16], preLo^num^i<<iShift)
		} else {
			binary.BigEndian.PutUint64(in[0:8], preHi^i)
			binary.BigEndian.PutUint64(in[8:16], preLo^num)
		}
		f.block.Encrypt(out[:], in[:])
		// Steps 6.iii-iv: d <= 16, so S = the first d bytes of R and
		// y = NUM(S).
		var yHi, yLo uint64
		if d == 8 {
			yLo = binary.BigEndian.Uint64(out[0:8])
		} else {
			yHi = uint64(binary.BigEndian.Uint32(out[0:4]))
			yLo = binary.BigEndian.Uint64(out[4:12])
		}
		// Step 6.v: m = u if i is even, else v.
		mod, inv := modV, invV
		if i%2 == 0 {
			mod, inv = modU, invU
		}
		var y uint64
		if yHi == 0 {
			y = rem64(yLo, mod, inv)
		} else if yHi < mod {
			_, y = bits.Div64(yHi, yLo, mod)
		} else {
			y = bits.Rem64(yHi, yLo, mod)
		}
		if !decrypt {
			// Step 6.vi: c = (NUM_radix(A) + y) mod radix^m; A < radix^m.
			// Computed as A - (radix^m - y) so that A + y cannot overflow
			// and the compiler emits a conditional move, not a branch
			// that would mispredict half the time.
			t := mod - y
			c := a - t
			if a < t {
				c += mod
			}
			// Steps 6.vii-ix: C = STR^m_radix(c); A = B; B = C.
			a, b = b, c
		} else {
			// Step 6.vi: c = (NUM_radix(B) - y) mod radix^m; B < radix^m.
			c := b - y
			if b < y {
				c += mod
			}
			// Steps 6.vii-ix: C = STR^m_radix(c); B = A; A = C.
			a, b = c, a
		}
	}
	return a, b
}

// rem64 returns x mod m given inv = floor((2^64-1)/m), by Barrett
// reduction: with 2^64 - inv*m in [1, m], q = floor(x*inv/2^64) is
// floor(x/m) or one less, so one correction suffices.
func rem64(x, m, inv uint64) uint64 {
	q, _ := bits.Mul64(x, inv)
	r := x - q*m
	if r >= m {
		r -= m
	}
	return r
}

// feistelBig runs steps 2-7 with math/big, for radix^v >= 2^64. digits holds
// the input numerals and receives the output numerals.
func (f *FF1) feistelBig(x *[aes.BlockSize]byte, tweak []byte, u int, digits []uint16, decrypt bool) {
	n := len(digits)
	v := n - u
	var modU, modV, y big.Int
	f.bigPow(&modU, u)
	modV.Mul(&modU, new(big.Int).SetUint64(f.pow[v-u])) // v-u is 0 or 1
	// Step 3: b = ceil(ceil(v*LOG(radix))/8), the byte length of
	// radix^v - 1.
	y.Sub(&modV, big.NewInt(1))
	blen := (y.BitLen() + 7) / 8
	// Step 4: d = 4*ceil(b/4) + 4.
	d := 4*((blen+3)/4) + 4

	full := f.macPrefix(x, tweak, n, u, blen)
	state := *x
	// Step 6.i: tail is Q after its first full blocks: the remaining tweak
	// bytes, zero padding, then [i]^1 || [NUM]^b rewritten every round.
	t := len(tweak)
	tail := make([]byte, t+pad16(t, blen)+1+blen-full*aes.BlockSize)
	if t > full*aes.BlockSize {
		copy(tail, tweak[full*aes.BlockSize:])
	}
	iPos := len(tail) - blen - 1
	sBlocks := (d + aes.BlockSize - 1) / aes.BlockSize
	sBuf := make([]byte, sBlocks*aes.BlockSize)

	// Step 2: A = X[1..u]; B = X[u+1..n], as NUM_radix(A), NUM_radix(B).
	a, b, c := new(big.Int), new(big.Int), new(big.Int)
	var q, sum big.Int // reused by every round
	f.bigNum(a, digits[:u])
	f.bigNum(b, digits[u:])

	// Step 6.
	for r := range numRounds {
		i, num := r, b
		if decrypt {
			i, num = numRounds-1-r, a
		}
		// Step 6.i.
		tail[iPos] = byte(i)
		num.FillBytes(tail[iPos+1:])
		// Step 6.ii: R = PRF(P || Q), continued from the prefix.
		*x = state
		for k := 0; k < len(tail); k += aes.BlockSize {
			for j, q := range tail[k : k+aes.BlockSize] {
				x[j] ^= q
			}
			f.block.Encrypt(x[:], x[:])
		}
		// Step 6.iii: S = R || CIPH(R xor [1]^16) || ... ||
		// CIPH(R xor [ceil(d/16)-1]^16), truncated to d bytes.
		copy(sBuf, x[:])
		for j := 1; j < sBlocks; j++ {
			blk := sBuf[j*aes.BlockSize : (j+1)*aes.BlockSize]
			copy(blk, x[:])
			binary.BigEndian.PutUint64(blk[8:], binary.BigEndian.Uint64(blk[8:])^uint64(j))
			f.block.Encrypt(blk, blk)
		}
		// Step 6.iv: y = NUM(S).
		y.SetBytes(sBuf[:d])
		// Step 6.v: m = u if i is even, else v.
		mod := &modV
		if i%2 == 0 {
			mod = &modU
		}
		if !decrypt {
			// Step 6.vi: c = (NUM_radix(A) + y) mod radix^m.
			sum.Add(a, &y)
			q.QuoRem(&sum, mod, c)
			// Steps 6.vii-ix: A = B; B = C.
			a, b, c = b, c, a
		} else {
			// Step 6.vi: c = (NUM_radix(B) - y) mod radix^m; QuoRem
			// truncates, so a negative remainder needs radix^m added.
			sum.Sub(b, &y)
			q.QuoRem(&sum, mod, c)
			if c.Sign() < 0 {
				c.Add(c, mod)
			}
			// Steps 6.vii-ix: B = A; A = C.
			a, b, c = c, a, b
		}
	}
	// Step 7: A || B, with STR^u_radix and STR^v_radix.
	f.bigStr(a, digits[:u])
	f.bigStr(b, digits[u:])
}

// bigPow sets z = radix^k.
func (f *FF1) bigPow(z *big.Int, k int) {
	z.Exp(new(big.Int).SetUint64(f.radix), big.NewInt(int64(k)), nil)
}

// bigNum sets z = NUM_radix(digits), fastV numerals at a time.
func (f *FF1) bigNum(z *big.Int, digits []uint16) {
	var t big.Int
	z.SetUint64(0)
	for len(digits) > 0 {
		k := min(f.fastV, len(digits))
		z.Mul(z, t.SetUint64(f.pow[k]))
		z.Add(z, t.SetUint64(f.num64(digits[:k])))
		digits = digits[k:]
	}
}

// bigStr writes STR^m_radix(z) to dst, m = len(dst), for z < radix^m,
// fastV numerals at a time. It overwrites z.
func (f *FF1) bigStr(z *big.Int, dst []uint16) {
	var p, rem big.Int
	for end := len(dst); end > 0; {
		k := min(f.fastV, end)
		z.QuoRem(z, p.SetUint64(f.pow[k]), &rem)
		f.str64(rem.Uint64(), dst[end-k:end])
		end -= k
	}
}

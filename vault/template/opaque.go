package template

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/bits"
)

// opaqueT accepts any non-empty valid UTF-8 up to 64 KiB. Its tokens are "tok_" followed by
// 22 base62 characters (131 bits). Deterministic candidates are FF1 (over base62, length
// 22) of the first 128 bits of SHA-256(value); random ones are drawn from rnd.
type opaqueT struct{ common }

const (
	opaquePrefix = "tok_"
	opaqueChars  = 22
	maxOpaque    = 64 << 10
)

func (t *opaqueT) parse(value string) error {
	if value == "" {
		return t.fail("must not be empty")
	}
	return t.pre(value, maxOpaque)
}

// log10Opaque is log10 of 62^22, summed as the domain does.
var log10Opaque = func() float64 {
	s := 0.0
	for range opaqueChars {
		s += log10Radix(len(base62Chars))
	}
	return s
}()

func (t *opaqueT) plan(p *plan, value string) error {
	if err := t.parse(value); err != nil {
		return err
	}
	p.log10 = log10Opaque
	if p.light {
		return nil
	}
	// The symbols: the first 128 bits of SHA-256(value), in base 62 (most significant
	// first; 62^22 > 2^128).
	var h [sha256.Size]byte
	if len(value) <= maxPooled {
		p.buf = append(p.buf[:0], value...) // pooled, cleared on release: no allocation
		h = sha256.Sum256(p.buf)
	} else {
		h = sha256.Sum256([]byte(value))
	}
	hi, lo := binary.BigEndian.Uint64(h[:8]), binary.BigEndian.Uint64(h[8:16])
	in, radix := p.in[:0], p.radix[:0]
	for range opaqueChars {
		in = append(in, 0)
		radix = append(radix, len(base62Chars))
	}
	for i := opaqueChars - 1; i >= 0; i-- {
		var r uint64
		hi, r = bits.Div64(0, hi, uint64(len(base62Chars)))
		lo, r = bits.Div64(r, lo, uint64(len(base62Chars)))
		in[i] = int(r)
	}
	p.in, p.radix, p.alpha = in, radix, base62Chars
	return nil
}

// render writes "tok_" and the base62 characters of out.
func (t *opaqueT) render(p *plan, out []int) {
	tok := append(p.tok[:0], opaquePrefix...)
	for _, s := range out {
		tok = append(tok, base62Chars[s])
	}
	p.tok = tok
}

// Mask reveals nothing: "****".
func (t *opaqueT) Mask(string) string { return "****" }

// FreeSpace ignores length: 62^22.
func (t *opaqueT) FreeSpace(int) (float64, bool) {
	return opaqueChars * math.Log10(62), true
}

package template

import (
	"crypto/sha256"
	"math"
	"math/big"
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

func (t *opaqueT) plan(value string) (*plan, error) {
	if err := t.parse(value); err != nil {
		return nil, err
	}
	d := domain{radix: make([]int, opaqueChars), alpha: base62Chars}
	for i := range d.radix {
		d.radix[i] = len(base62Chars)
	}
	h := sha256.Sum256([]byte(value))
	in := d.split(new(big.Int).SetBytes(h[:16]))
	render := func(out []int) string {
		b := make([]byte, 0, len(opaquePrefix)+opaqueChars)
		b = append(b, opaquePrefix...)
		for _, s := range out {
			b = append(b, base62Chars[s])
		}
		return string(b)
	}
	return &plan{dom: d, in: in, render: render, log10: d.log10()}, nil
}

// Mask reveals nothing: "****".
func (t *opaqueT) Mask(string) string { return "****" }

// FreeSpace ignores length: 62^22.
func (t *opaqueT) FreeSpace(int) (float64, bool) {
	return opaqueChars * math.Log10(62), true
}

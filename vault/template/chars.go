package template

import (
	"math"
)

// charsT is base digits (ASCII digits) or alnum (ASCII letters and digits), 1-64 characters
// (narrowed by MinLength/MaxLength). Tokens keep the length and, for alnum, the class of
// every character (digit, lower, upper) - or, with a custom Alphabet, draw every free
// character from it.
type charsT struct {
	common
	alnum bool
}

func (t *charsT) unit() string {
	if t.alnum {
		return "characters"
	}
	return "digits"
}

func (t *charsT) parse(value string) error {
	if len(value) == 0 || len(value) > t.def.MaxLength {
		return t.fail(lengthRule(t.def.MinLength, t.def.MaxLength, t.unit()))
	}
	if !validUTF8(value) {
		return t.fail("not valid UTF-8")
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		if t.alnum && !isAlnum(c) {
			return t.fail("only ASCII letters and digits are allowed")
		}
		if !t.alnum && !isDigit(c) {
			return t.fail("only digits 0-9 are allowed")
		}
	}
	if len(value) < t.def.MinLength {
		return t.fail(lengthRule(t.def.MinLength, t.def.MaxLength, t.unit()))
	}
	return nil
}

func (t *charsT) plan(p *plan, value string) error {
	if err := t.parse(value); err != nil {
		return err
	}
	p.startSlots(value)
	for i := t.def.KeepPrefix; i < len(value)-t.def.KeepSuffix; i++ {
		c := value[i]
		switch {
		case t.def.Alphabet != "":
			p.add(i, t.def.Alphabet, c)
		case isDigit(c):
			p.add(i, digitChars, c)
		case isLower(c):
			p.add(i, lowerChars, c)
		default:
			p.add(i, upperChars, c)
		}
	}
	p.finishSlots(0)
	return nil
}

// Mask keeps the kept prefix and the last four characters (the kept suffix, if longer; at
// most half of the free characters more than the token): "******7890", "**34".
func (t *charsT) Mask(value string) string {
	if err := t.parse(value); err != nil {
		return "****"
	}
	n := len(value)
	suffix := maskSuffix(4, t.def.KeepSuffix, n-t.def.KeepPrefix-t.def.KeepSuffix)
	return maskBytes(value, func(i int) bool { return i < t.def.KeepPrefix || i >= n-suffix })
}

// FreeSpace counts characters, assuming digits for alnum.
func (t *charsT) FreeSpace(length int) (float64, bool) {
	if length < t.def.MinLength || length > t.def.MaxLength {
		return 0, false
	}
	f := length - t.def.KeepPrefix - t.def.KeepSuffix
	if f <= 0 {
		return math.Inf(-1), true
	}
	r := 10.0
	if t.def.Alphabet != "" {
		r = float64(len(t.def.Alphabet))
	}
	return float64(f) * math.Log10(r), true
}

package template

import (
	"fmt"
	"math"
)

// panT is a payment card number: 12-19 digits (narrowed by MinLength/MaxLength), optionally
// grouped by single spaces or single dashes (one kind per value), kept in place.
type panT struct{ common }

// parse checks value and appends the byte offsets of its digits to digits.
func (t *panT) parse(value string, digits []int) ([]int, error) {
	if err := t.pre(value, 64); err != nil {
		return nil, err
	}
	var sep byte
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case isDigit(c):
			digits = append(digits, i)
		case c == ' ' || c == '-':
			if i == 0 || i == len(value)-1 {
				return nil, t.fail("must start and end with a digit")
			}
			if !isDigit(value[i-1]) {
				return nil, t.fail("separators must be single")
			}
			if sep != 0 && sep != c {
				return nil, t.fail("must not mix spaces and dashes")
			}
			sep = c
		default:
			return nil, t.fail("only digits, with single spaces or dashes between groups, are allowed")
		}
	}
	if n := len(digits); n < t.def.MinLength || n > t.def.MaxLength {
		return nil, t.fail(lengthRule(t.def.MinLength, t.def.MaxLength, "digits"))
	}
	return digits, nil
}

// log10Luhn90 is log10 of the share of numbers that fail the Luhn check.
var log10Luhn90 = math.Log10(0.9)

func (t *panT) plan(p *plan, value string) error {
	digits, err := t.parse(value, p.offs[:0])
	if err != nil {
		return err
	}
	p.offs = digits
	p.startSlots(value)
	for _, i := range digits[t.def.KeepPrefix : len(digits)-t.def.KeepSuffix] {
		p.add(i, digitChars, value[i])
	}
	extra := 0.0
	switch t.def.Luhn {
	case LuhnInvalid:
		extra = log10Luhn90
	case LuhnValid:
		extra = -1
	}
	p.finishSlots(extra)
	return nil
}

func (t *panT) accept(p *plan) bool {
	switch t.def.Luhn {
	case LuhnInvalid:
		return !luhnValid(p.tok)
	case LuhnValid:
		return luhnValid(p.tok)
	}
	return true
}

// Mask keeps the separators, the kept prefix and the last four digits (the kept suffix,
// if longer; at most half of the free digits more than the token): "**** **** **** 1111".
func (t *panT) Mask(value string) string {
	var buf [64]int
	digits, err := t.parse(value, buf[:0])
	if err != nil {
		return "****"
	}
	show := make(map[int]bool)
	suffix := maskSuffix(4, t.def.KeepSuffix, len(digits)-t.def.KeepPrefix-t.def.KeepSuffix)
	for k, i := range digits {
		show[i] = k < t.def.KeepPrefix || k >= len(digits)-suffix
	}
	return maskBytes(value, func(i int) bool { v, isDigit := show[i]; return v || !isDigit })
}

func (t *panT) FreeSpace(length int) (float64, bool) {
	if length < t.def.MinLength || length > t.def.MaxLength {
		return 0, false
	}
	f := length - t.def.KeepPrefix - t.def.KeepSuffix
	if f <= 0 {
		return math.Inf(-1), true
	}
	switch t.def.Luhn {
	case LuhnInvalid:
		return float64(f) + math.Log10(0.9), true
	case LuhnValid:
		return float64(f) - 1, true
	}
	return float64(f), true
}

// luhnValid reports whether the digits of s (other bytes skipped) pass the Luhn check.
func luhnValid[S ~string | ~[]byte](s S) bool {
	sum, double := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// lengthRule is the rule text for a length range.
func lengthRule(minL, maxL int, unit string) string {
	if minL == maxL {
		return fmt.Sprintf("must have %d %s", minL, unit)
	}
	return fmt.Sprintf("must have %d to %d %s", minL, maxL, unit)
}

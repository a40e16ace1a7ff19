package template

import "math"

// phoneT is a telephone number: E.164 with a leading + ("+14155550123", "+44 20 7946 0958")
// or a national format ("(415) 555-0123", "415-555-0123", "020 7946 0958"); 7-15 digits
// (narrowed by MinLength/MaxLength). Spaces, dashes, dots and one pair of parentheses are
// kept in place; so are the + and the country code.
type phoneT struct{ common }

// twoDigitCC are the two-digit ITU country codes; 1 and 7 are one digit, all others three.
var twoDigitCC = map[int]bool{
	20: true, 27: true,
	30: true, 31: true, 32: true, 33: true, 34: true, 36: true, 39: true,
	40: true, 41: true, 43: true, 44: true, 45: true, 46: true, 47: true, 48: true, 49: true,
	51: true, 52: true, 53: true, 54: true, 55: true, 56: true, 57: true, 58: true,
	60: true, 61: true, 62: true, 63: true, 64: true, 65: true, 66: true,
	81: true, 82: true, 84: true, 86: true,
	90: true, 91: true, 92: true, 93: true, 94: true, 95: true, 98: true,
}

// countryCodeLen returns the length of the country code at the start of digits.
func countryCodeLen(d0, d1 byte) int {
	if d0 == '1' || d0 == '7' {
		return 1
	}
	if twoDigitCC[int(d0-'0')*10+int(d1-'0')] {
		return 2
	}
	return 3
}

// parse appends the byte offsets of the digits to digits and returns them with the country
// code length (0 for a national number).
func (t *phoneT) parse(value string, digits []int) (_ []int, cc int, err error) {
	if err := t.pre(value, 32); err != nil {
		return nil, 0, err
	}
	if value == "" {
		return nil, 0, t.fail(lengthRule(t.def.MinLength, t.def.MaxLength, "digits"))
	}
	plus, open := false, false
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case isDigit(c):
			digits = append(digits, i)
		case c == '+':
			if i != 0 {
				return nil, 0, t.fail("+ is allowed only at the start")
			}
			if len(value) < 2 || !isDigit(value[1]) {
				return nil, 0, t.fail("+ must be followed by the country code")
			}
			plus = true
		case c == ' ' || c == '-' || c == '.':
			if i == 0 || value[i-1] == ' ' || value[i-1] == '-' || value[i-1] == '.' || value[i-1] == '+' || value[i-1] == '(' {
				return nil, 0, t.fail("separators must be single and between digits")
			}
		case c == '(':
			if open {
				return nil, 0, t.fail("parentheses must not nest")
			}
			if i+1 >= len(value) || !isDigit(value[i+1]) {
				return nil, 0, t.fail("parentheses must enclose digits")
			}
			open = true
		case c == ')':
			if !open {
				return nil, 0, t.fail("parentheses must be balanced")
			}
			if !isDigit(value[i-1]) {
				return nil, 0, t.fail("parentheses must enclose digits")
			}
			open = false
		default:
			return nil, 0, t.fail("only digits, a leading +, spaces, dashes, dots and parentheses are allowed")
		}
	}
	if open {
		return nil, 0, t.fail("parentheses must be balanced")
	}
	if !isDigit(value[len(value)-1]) {
		return nil, 0, t.fail("must end with a digit")
	}
	if n := len(digits); n < t.def.MinLength || n > t.def.MaxLength {
		return nil, 0, t.fail(lengthRule(t.def.MinLength, t.def.MaxLength, "digits"))
	}
	if plus {
		if value[digits[0]] == '0' {
			return nil, 0, t.fail("country code must not start with 0")
		}
		cc = countryCodeLen(value[digits[0]], value[digits[1]])
	}
	return digits, cc, nil
}

func (t *phoneT) plan(p *plan, value string) error {
	digits, cc, err := t.parse(value, p.offs[:0])
	if err != nil {
		return err
	}
	p.offs = digits
	p.startSlots(value)
	lo, hi := cc+t.def.KeepPrefix, len(digits)-t.def.KeepSuffix
	if lo < hi {
		for _, i := range digits[lo:hi] {
			p.add(i, digitChars, value[i])
		}
	}
	p.finishSlots(0)
	return nil
}

// Mask keeps the +, the country code, the punctuation, the kept prefix and the last two
// digits (the kept suffix, if longer): "+1 (***) ***-**23".
func (t *phoneT) Mask(value string) string {
	var buf [32]int
	digits, cc, err := t.parse(value, buf[:0])
	if err != nil {
		return "****"
	}
	show := map[int]bool{}
	suffix := maskSuffix(2, t.def.KeepSuffix, len(digits)-cc-t.def.KeepPrefix-t.def.KeepSuffix)
	for k, i := range digits {
		show[i] = k < cc+t.def.KeepPrefix || k >= len(digits)-suffix
	}
	return maskBytes(value, func(i int) bool { v, isDigit := show[i]; return v || !isDigit })
}

// FreeSpace counts all digits, assuming a three-digit country code.
func (t *phoneT) FreeSpace(length int) (float64, bool) {
	if length < t.def.MinLength || length > t.def.MaxLength {
		return 0, false
	}
	f := length - 3 - t.def.KeepPrefix - t.def.KeepSuffix
	if f <= 0 {
		return math.Inf(-1), true
	}
	return float64(f), true
}

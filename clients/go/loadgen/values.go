package loadgen

import (
	"math/rand/v2"
	"sort"
)

// A valueGen appends one random value, valid for its template, to dst. It must be cheap:
// it runs on the load generator's hot path when every request carries fresh values.
type valueGen func(dst []byte, r *rand.Rand) []byte

// generators maps each built-in template (and so the base of each custom template) to a
// generator of values it accepts. The "space" comment is the number of distinct values:
// with random draws, a run of n values repeats about n²/(2·space) of them.
var generators = map[string]valueGen{
	// "4" + 14 random digits + a valid Luhn check digit: 16 digits, space 10^14.
	"pan": func(dst []byte, r *rand.Rand) []byte {
		start := len(dst)
		dst = append(dst, '4')
		dst = appendDigits(dst, r.Uint64N(1e14), 14)
		return append(dst, luhnCheckDigit(dst[start:]))
	},
	// NNN-NN-NNNN, any nine digits (the template accepts ITINs and test numbers): 10^9.
	"ssn": func(dst []byte, r *rand.Rand) []byte {
		n := r.Uint64N(1e9)
		dst = appendDigits(dst, n/1e6, 3)
		dst = append(dst, '-')
		dst = appendDigits(dst, n/1e4%100, 2)
		dst = append(dst, '-')
		return appendDigits(dst, n%1e4, 4)
	},
	// 12 characters of [a-z0-9] @example.com: 36^12.
	"email": func(dst []byte, r *rand.Rand) []byte {
		dst = appendChars(dst, r, lowerDigits, 12)
		return append(dst, "@example.com"...)
	},
	// +1 and ten digits, area code not starting with 0 or 1: 8·10^9.
	"phone": func(dst []byte, r *rand.Rand) []byte {
		dst = append(dst, '+', '1', byte('2'+r.IntN(8)))
		return appendDigits(dst, r.Uint64N(1e9), 9)
	},
	// "Xxxxxxx Yyyyyyyyy": 26^14.
	"name": func(dst []byte, r *rand.Rand) []byte {
		dst = append(dst, upper[r.IntN(26)])
		dst = appendChars(dst, r, lower, 6)
		dst = append(dst, ' ', upper[r.IntN(26)])
		return appendChars(dst, r, lower, 8)
	},
	// YYYY-MM-DD in 1900..2099, days 1..28: only 67,200 values, so "unique" values repeat.
	"date": func(dst []byte, r *rand.Rand) []byte {
		dst = appendDigits(dst, uint64(1900+r.IntN(200)), 4)
		dst = append(dst, '-')
		dst = appendDigits(dst, uint64(1+r.IntN(12)), 2)
		dst = append(dst, '-')
		return appendDigits(dst, uint64(1+r.IntN(28)), 2)
	},
	// A German IBAN: DE, valid mod-97 check digits, 18 random digits: 10^18.
	"iban": func(dst []byte, r *rand.Rand) []byte {
		var bban [18]byte
		appendDigits(bban[:0], r.Uint64N(1e18), 18)
		dst = append(dst, 'D', 'E')
		dst = appendDigits(dst, uint64(ibanCheck(bban[:], "DE")), 2)
		return append(dst, bban[:]...)
	},
	// 16 random digits: 10^16.
	"digits": func(dst []byte, r *rand.Rand) []byte {
		dst = appendDigits(dst, r.Uint64N(1e16), 16)
		return dst
	},
	// 16 characters of [A-Za-z0-9]: 62^16.
	"alnum": func(dst []byte, r *rand.Rand) []byte {
		return appendChars(dst, r, base62, 16)
	},
	// "bench-" and 24 hex digits: 16^24.
	"opaque": func(dst []byte, r *rand.Rand) []byte {
		dst = append(dst, "bench-"...)
		return appendChars(dst, r, hexChars, 24)
	},
}

// GeneratedBases lists the templates (built-in names, which are also the bases of custom
// templates) that the load generator can make values for.
func GeneratedBases() []string {
	names := make([]string, 0, len(generators))
	for n := range generators {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

const (
	lower       = "abcdefghijklmnopqrstuvwxyz"
	upper       = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digitChars  = "0123456789"
	lowerDigits = lower + digitChars
	base62      = digitChars + upper + lower
	hexChars    = "0123456789abcdef"
)

// appendDigits appends n as exactly width decimal digits (n < 10^width).
func appendDigits(dst []byte, n uint64, width int) []byte {
	start := len(dst)
	for range width {
		dst = append(dst, 0)
	}
	for i := len(dst) - 1; i >= start; i-- {
		dst[i] = byte('0' + n%10)
		n /= 10
	}
	return dst
}

// appendChars appends n characters drawn uniformly from alphabet (at most 64 long), taking
// six bits of randomness per character from each 64-bit draw.
func appendChars(dst []byte, r *rand.Rand, alphabet string, n int) []byte {
	var bits uint64
	left := 0
	for n > 0 {
		if left < 6 {
			bits, left = r.Uint64(), 64
		}
		i := int(bits & 63)
		bits >>= 6
		left -= 6
		if i < len(alphabet) {
			dst = append(dst, alphabet[i])
			n--
		}
	}
	return dst
}

// luhnCheckDigit returns the digit that, appended to digits, passes the Luhn check.
func luhnCheckDigit(digits []byte) byte {
	sum := 0
	double := true // the rightmost payload digit is doubled
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return byte('0' + (10-sum%10)%10)
}

// ibanCheck returns the ISO 13616 check digits for an all-digit bban in country cc.
func ibanCheck(bban []byte, cc string) int {
	m := 0
	for _, c := range bban {
		m = (m*10 + int(c-'0')) % 97
	}
	for i := 0; i < 2; i++ { // letters count as two digits: A=10 … Z=35
		m = (m*100 + int(cc[i]-'A'+10)) % 97
	}
	m = m * 100 % 97 // the check digits, 00 while computing
	return 98 - m
}

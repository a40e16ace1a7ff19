package template

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Random valid values for each base, for the property and fuzz tests.

func genDigits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// group inserts sep between groups of the given sizes (the last group takes the rest).
func group(s string, sep string, size int) string {
	var parts []string
	for len(s) > size {
		parts = append(parts, s[:size])
		s = s[size:]
	}
	return strings.Join(append(parts, s), sep)
}

func genPAN(r *rand.Rand, minL, maxL int) string {
	d := genDigits(r, minL+r.IntN(maxL-minL+1))
	switch r.IntN(4) {
	case 0:
		return group(d, " ", 4)
	case 1:
		return group(d, "-", 4)
	case 2: // random grouping
		var b strings.Builder
		for i := range len(d) {
			if i > 0 && r.IntN(4) == 0 {
				b.WriteByte(' ')
			}
			b.WriteByte(d[i])
		}
		return b.String()
	}
	return d
}

func genSSN(r *rand.Rand) string {
	d := genDigits(r, 9)
	if r.IntN(2) == 0 {
		return d[:3] + "-" + d[3:5] + "-" + d[5:]
	}
	return d
}

const atext = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~"

func genLabel(r *rand.Rand, n int) string {
	const ldh = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
	b := make([]byte, n)
	for i := range b {
		b[i] = ldh[r.IntN(len(ldh))]
		if (i == 0 || i == n-1) && b[i] == '-' {
			b[i] = 'x'
		}
	}
	return string(b)
}

func genEmail(r *rand.Rand) string {
	n := 1 + r.IntN(64)
	if r.IntN(2) == 0 {
		n = 1 + r.IntN(12)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = atext[r.IntN(len(atext))]
		if i > 0 && i < n-1 && b[i-1] != '.' && r.IntN(8) == 0 {
			b[i] = '.'
		}
	}
	b[r.IntN(n)] = 'q' // at least one letter
	labels := []string{}
	for range 1 + r.IntN(3) {
		labels = append(labels, genLabel(r, 1+r.IntN(15)))
	}
	labels = append(labels, pick(r, []string{"com", "org", "de", "co", "ORG", "xn--p1ai"}))
	return string(b) + "@" + strings.Join(labels, ".")
}

var phoneCCs = []string{"1", "7", "20", "27", "31", "44", "49", "33", "86", "91", "98", "351", "353", "380", "972", "880", "998"}

func genPhone(r *rand.Rand) string {
	if r.IntN(2) == 0 {
		cc := pick(r, phoneCCs)
		n := max(7, len(cc)+4) + r.IntN(16-max(7, len(cc)+4))
		nat := genDigits(r, n-len(cc))
		switch r.IntN(3) {
		case 0:
			return "+" + cc + nat
		case 1:
			return "+" + cc + " " + group(nat, " ", 3)
		default:
			return "+" + cc + "-" + group(nat, "-", 4)
		}
	}
	switch r.IntN(4) {
	case 0:
		d := genDigits(r, 10)
		return "(" + d[:3] + ") " + d[3:6] + "-" + d[6:]
	case 1:
		d := genDigits(r, 10)
		return d[:3] + "." + d[3:6] + "." + d[6:]
	case 2:
		return group(genDigits(r, 7+r.IntN(9)), " ", 4)
	}
	return genDigits(r, 7+r.IntN(9))
}

var nameLetters = []string{"a", "b", "z", "A", "Q", "é", "ø", "ß", "Å", "ç", "ñ", "É", "Ж", "ж", "Ё", "λ", "Σ", "李", "ǅ", "e\u0301"}

func genName(r *rand.Rand) string {
	var b strings.Builder
	parts := 1 + r.IntN(4)
	for p := range parts {
		if p > 0 {
			b.WriteString(pick(r, []string{" ", "-", "'", ". ", "’", " "}))
		}
		for range 1 + r.IntN(10) {
			b.WriteString(pick(r, nameLetters))
		}
	}
	return b.String()
}

func genDate(r *rand.Rand, minY, maxY int) string {
	first := daysFromCivil(minY, 1, 1)
	last := daysFromCivil(maxY, 12, 31)
	return formatDate(first + r.Int64N(last-first+1))
}

var ibanCountries = func() []string {
	var cs []string
	for c := range ibanLengths {
		cs = append(cs, c)
	}
	sort.Strings(cs)
	return cs
}()

// genIBAN returns a valid IBAN of a registry country, BBAN mixing digits and letters.
func genIBAN(r *rand.Rand) string {
	c := pick(r, ibanCountries)
	n := ibanLengths[c]
	b := []byte(c + "00")
	letters := r.IntN(3) == 0
	for len(b) < n {
		if letters && r.IntN(3) == 0 {
			b = append(b, byte('A'+r.IntN(26)))
		} else {
			b = append(b, byte('0'+r.IntN(10)))
		}
	}
	cd := 98 - mod97(b)
	b[2], b[3] = byte('0'+cd/10), byte('0'+cd%10)
	if r.IntN(2) == 0 {
		return group(string(b), " ", 4)
	}
	return string(b)
}

func genAlnum(r *rand.Rand, n int) string {
	const cs = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = cs[r.IntN(len(cs))]
	}
	return string(b)
}

func genOpaque(r *rand.Rand) string {
	var b strings.Builder
	for range 1 + r.IntN(40) {
		switch r.IntN(4) {
		case 0:
			b.WriteRune(rune(0x20 + r.IntN(0x5f)))
		case 1:
			b.WriteRune(pick(r, []rune("é€𝄞\x00\n\t李")))
		default:
			b.WriteByte(byte('a' + r.IntN(26)))
		}
	}
	return b.String()
}

// genFor returns a generator of valid values for t.
func genFor(t Template) func(*rand.Rand) string {
	d := t.Definition()
	switch d.Base {
	case "pan":
		return func(r *rand.Rand) string { return genPAN(r, d.MinLength, d.MaxLength) }
	case "ssn":
		return genSSN
	case "email":
		return genEmail
	case "phone":
		return func(r *rand.Rand) string {
			for {
				v := genPhone(r)
				if t.Check(v) == nil {
					return v
				}
			}
		}
	case "name":
		return genName
	case "date":
		return func(r *rand.Rand) string { return genDate(r, d.MinYear, d.MaxYear) }
	case "iban":
		return genIBAN
	case "digits":
		return func(r *rand.Rand) string { return genDigits(r, d.MinLength+r.IntN(d.MaxLength-d.MinLength+1)) }
	case "alnum":
		return func(r *rand.Rand) string { return genAlnum(r, d.MinLength+r.IntN(d.MaxLength-d.MinLength+1)) }
	case "opaque":
		return genOpaque
	}
	panic("no generator for " + d.Base)
}

// sameFormat reports how token fails to keep value's format under t (nil if it keeps it).
func sameFormat(t Template, value, token string) error {
	d := t.Definition()
	classOf := func(c byte) byte {
		switch {
		case isDigit(c):
			return 'd'
		case isLower(c):
			return 'l'
		case isUpper(c):
			return 'u'
		}
		return c
	}
	sameLen := func() error {
		if len(token) != len(value) {
			return fmt.Errorf("length %d, want %d", len(token), len(value))
		}
		return nil
	}
	// keptBytes checks that the bytes at the given offsets are equal.
	kept := func(offs []int) error {
		for _, i := range offs {
			if token[i] != value[i] {
				return fmt.Errorf("byte %d changed", i)
			}
		}
		return nil
	}
	switch d.Base {
	case "pan", "ssn", "phone", "digits":
		if err := sameLen(); err != nil {
			return err
		}
		var digits []int
		for i := range len(value) {
			if isDigit(value[i]) != isDigit(token[i]) || !isDigit(value[i]) && value[i] != token[i] {
				return fmt.Errorf("byte %d: class or punctuation changed", i)
			}
			if isDigit(value[i]) {
				digits = append(digits, i)
			}
		}
		cc := 0
		if d.Base == "phone" && value[0] == '+' {
			_, cc, _ = t.(*phoneT).parse(value, nil)
		}
		if err := kept(digits[:cc+d.KeepPrefix]); err != nil {
			return err
		}
		if err := kept(digits[len(digits)-d.KeepSuffix:]); err != nil {
			return err
		}
		if d.Base == "pan" {
			switch d.Luhn {
			case LuhnInvalid:
				if luhnValid(token) {
					return fmt.Errorf("token passes Luhn")
				}
			case LuhnValid:
				if !luhnValid(token) {
					return fmt.Errorf("token fails Luhn")
				}
			}
		}
		if d.Base == "ssn" {
			if dd := strings.ReplaceAll(token, "-", ""); d.KeepPrefix == 0 && (dd[:3] == "000" || dd[:3] == "666" || dd[0] == '9') ||
				d.KeepPrefix <= 3 && dd[3:5] == "00" || d.KeepSuffix == 0 && dd[5:] == "0000" {
				return fmt.Errorf("ssn token breaks the issuing rules")
			}
		}
		if d.Base == "digits" && d.Alphabet != "" {
			for i := d.KeepPrefix; i < len(token)-d.KeepSuffix; i++ {
				if !strings.ContainsRune(d.Alphabet, rune(token[i])) {
					return fmt.Errorf("byte %d outside the alphabet", i)
				}
			}
		}
	case "alnum":
		if err := sameLen(); err != nil {
			return err
		}
		for i := range len(value) {
			inKept := i < d.KeepPrefix || i >= len(value)-d.KeepSuffix
			switch {
			case inKept && token[i] != value[i]:
				return fmt.Errorf("kept byte %d changed", i)
			case !inKept && d.Alphabet != "" && !strings.ContainsRune(d.Alphabet, rune(token[i])):
				return fmt.Errorf("byte %d outside the alphabet", i)
			case d.Alphabet == "" && classOf(token[i]) != classOf(value[i]):
				return fmt.Errorf("byte %d: class changed", i)
			}
		}
	case "email":
		if err := sameLen(); err != nil {
			return err
		}
		at := strings.IndexByte(value, '@')
		if strings.IndexByte(token, '@') != at {
			return fmt.Errorf("@ moved")
		}
		for i := range at {
			if keptLocal(value[i]) != keptLocal(token[i]) || keptLocal(value[i]) && value[i] != token[i] {
				return fmt.Errorf("local byte %d: punctuation changed", i)
			}
			if !keptLocal(value[i]) && !isDigit(token[i]) && !isLower(token[i]) {
				return fmt.Errorf("local byte %d not [a-z0-9]", i)
			}
		}
		dot := strings.LastIndexByte(value, '.')
		if !d.TokenizeDomain {
			dot = at
		}
		if token[dot:] != value[dot:] {
			return fmt.Errorf("kept domain changed")
		}
		for i := at + 1; i < dot; i++ {
			switch {
			case value[i] == '-' || value[i] == '.':
				if token[i] != value[i] {
					return fmt.Errorf("domain byte %d: punctuation changed", i)
				}
			case !isDigit(token[i]) && !isLower(token[i]):
				return fmt.Errorf("domain byte %d not [a-z0-9]", i)
			}
		}
	case "name":
		vr, tr := []rune(value), []rune(token)
		if len(vr) != len(tr) {
			return fmt.Errorf("rune length %d, want %d", len(tr), len(vr))
		}
		for i, r := range vr {
			switch {
			case keptNameRune(r):
				if tr[i] != r {
					return fmt.Errorf("rune %d: punctuation changed", i)
				}
			case tr[i] > unicode.MaxASCII || !unicode.IsLetter(tr[i]):
				return fmt.Errorf("rune %d not an ASCII letter", i)
			case unicode.IsUpper(tr[i]) != (unicode.IsUpper(r) || unicode.IsTitle(r)):
				return fmt.Errorf("rune %d: case changed", i)
			}
		}
	case "date":
		if d.KeepYear && token[:4] != value[:4] {
			return fmt.Errorf("year changed")
		}
	case "iban":
		if err := sameLen(); err != nil {
			return err
		}
		if token[:2] != value[:2] {
			return fmt.Errorf("country changed")
		}
		for i := range len(value) {
			if classOf(value[i]) != classOf(token[i]) {
				return fmt.Errorf("byte %d: class changed", i)
			}
		}
	case "opaque":
		if !strings.HasPrefix(token, "tok_") || len(token) != 26 || !utf8.ValidString(token) {
			return fmt.Errorf("not an opaque token")
		}
	}
	return nil
}

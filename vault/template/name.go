package template

import (
	"math"
	"unicode"
	"unicode/utf8"
)

// nameT is a personal name: letters of any script (unicode.IsLetter, with combining marks
// after a letter), and spaces, hyphens, apostrophes (' and ’) and periods, which tokens keep
// in place. Every letter or mark becomes an ASCII letter of the same case (lower case for
// scripts without case), so the token has the same length in runes.
type nameT struct{ common }

const maxNameRunes = 256

func keptNameRune(r rune) bool {
	return r == ' ' || r == '-' || r == '\'' || r == '.' || r == '\u2019'
}

// Flags of the runes of a name.
const (
	nameFree  = 1 << iota // a letter or mark: replaced in tokens
	nameUpper             // an upper- or title-case letter
)

// parse appends the runes of value to runes and, for each, its flags to flags.
func (t *nameT) parse(value string, runes []rune, flags []byte) ([]rune, []byte, error) {
	if err := t.pre(value, 4*maxNameRunes); err != nil {
		return nil, nil, err
	}
	if utf8.RuneCountInString(value) > maxNameRunes {
		return nil, nil, t.fail("longer than 256 characters")
	}
	letters := false
	for _, r := range value {
		var f byte
		switch {
		case unicode.IsLetter(r):
			f, letters = nameFree, true
			if unicode.IsUpper(r) || unicode.IsTitle(r) {
				f |= nameUpper
			}
		case unicode.IsMark(r):
			if len(flags) == 0 || flags[len(flags)-1]&nameFree == 0 {
				return nil, nil, t.fail("combining marks must follow a letter")
			}
			f = nameFree
		case keptNameRune(r):
		case unicode.IsDigit(r) || unicode.IsNumber(r):
			return nil, nil, t.fail("must not contain digits")
		case unicode.IsControl(r):
			return nil, nil, t.fail("must not contain control characters")
		default:
			return nil, nil, t.fail("only letters, spaces, hyphens, apostrophes and periods are allowed")
		}
		runes = append(runes, r)
		flags = append(flags, f)
	}
	if !letters {
		return nil, nil, t.fail("must contain a letter")
	}
	return runes, flags, nil
}

// log10Name[n] is log10 of the number of names with n letters, summed as the domain does.
var log10Name = func() (t [maxNameRunes + 1]float64) {
	for n := 1; n < len(t); n++ {
		t[n] = t[n-1] + log10Radix(26)
	}
	return t
}()

func (t *nameT) plan(p *plan, value string) error {
	runes, flags, err := t.parse(value, p.runes[:0], p.flags[:0])
	if err != nil {
		return err
	}
	p.runes, p.flags = runes, flags
	n := 0
	for _, f := range flags {
		if f&nameFree != 0 {
			n++
		}
	}
	p.log10 = log10Name[n]
	if p.light {
		return nil
	}
	ctx, in, radix := p.ctx[:0], p.in[:0], p.radix[:0]
	for i, r := range runes {
		f := flags[i]
		if f&nameFree == 0 {
			ctx = utf8.AppendRune(ctx, r)
			continue
		}
		lr := unicode.ToLower(r)
		if 'a' <= lr && lr <= 'z' {
			in = append(in, int(lr-'a'))
		} else {
			in = append(in, int(lr)%26)
		}
		radix = append(radix, 26)
		if f&nameUpper != 0 {
			ctx = append(ctx, "\x00U"...)
		} else {
			ctx = append(ctx, "\x00l"...)
		}
	}
	p.ctx, p.in, p.radix, p.alpha = ctx, in, radix, lowerChars
	return nil
}

// render writes the value's runes with each free rune replaced by the letter of its symbol,
// in the rune's case.
func (t *nameT) render(p *plan, out []int) {
	tok, k := p.tok[:0], 0
	for i, r := range p.runes {
		f := p.flags[i]
		if f&nameFree == 0 {
			tok = utf8.AppendRune(tok, r)
			continue
		}
		c := byte('a' + out[k])
		if f&nameUpper != 0 {
			c -= 'a' - 'A'
		}
		tok = append(tok, c)
		k++
	}
	p.tok = tok
}

// Mask keeps the first letter of each part (a run of letters) and the punctuation:
// "J*** S****", "J***-L** P*****".
func (t *nameT) Mask(value string) string {
	var rbuf [maxNameRunes]rune
	var fbuf [maxNameRunes]byte
	runes, flags, err := t.parse(value, rbuf[:0], fbuf[:0])
	if err != nil {
		return "****"
	}
	free := func(i int) bool { return flags[i]&nameFree != 0 }
	out := make([]rune, len(runes))
	for i, r := range runes {
		switch {
		case !free(i), i == 0 || !free(i-1):
			out[i] = r
		default:
			out[i] = '*'
		}
	}
	return string(out)
}

// FreeSpace counts letters.
func (t *nameT) FreeSpace(length int) (float64, bool) {
	if length < 1 || length > maxNameRunes {
		return 0, false
	}
	return float64(length) * math.Log10(26), true
}

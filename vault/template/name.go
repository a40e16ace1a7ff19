package template

import (
	"math"
	"strings"
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

// parse returns the runes of value and, for each, whether it is free and upper case.
func (t *nameT) parse(value string) (runes []rune, free, upper []bool, err error) {
	if err := t.pre(value, 4*maxNameRunes); err != nil {
		return nil, nil, nil, err
	}
	if utf8.RuneCountInString(value) > maxNameRunes {
		return nil, nil, nil, t.fail("longer than 256 characters")
	}
	runes = []rune(value)
	free = make([]bool, len(runes))
	upper = make([]bool, len(runes))
	letters := false
	for i, r := range runes {
		switch {
		case unicode.IsLetter(r):
			free[i], letters = true, true
			upper[i] = unicode.IsUpper(r) || unicode.IsTitle(r)
		case unicode.IsMark(r):
			if i == 0 || !free[i-1] {
				return nil, nil, nil, t.fail("combining marks must follow a letter")
			}
			free[i] = true
		case keptNameRune(r):
		case unicode.IsDigit(r) || unicode.IsNumber(r):
			return nil, nil, nil, t.fail("must not contain digits")
		case unicode.IsControl(r):
			return nil, nil, nil, t.fail("must not contain control characters")
		default:
			return nil, nil, nil, t.fail("only letters, spaces, hyphens, apostrophes and periods are allowed")
		}
	}
	if !letters {
		return nil, nil, nil, t.fail("must contain a letter")
	}
	return runes, free, upper, nil
}

func (t *nameT) plan(value string) (*plan, error) {
	runes, free, upper, err := t.parse(value)
	if err != nil {
		return nil, err
	}
	var pos, in []int
	var ctx strings.Builder
	for i, r := range runes {
		if !free[i] {
			ctx.WriteRune(r)
			continue
		}
		pos = append(pos, i)
		lr := unicode.ToLower(r)
		if 'a' <= lr && lr <= 'z' {
			in = append(in, int(lr-'a'))
		} else {
			in = append(in, int(lr)%26)
		}
		if upper[i] {
			ctx.WriteString("\x00U")
		} else {
			ctx.WriteString("\x00l")
		}
	}
	d := domain{radix: make([]int, len(pos)), alpha: lowerChars}
	for i := range d.radix {
		d.radix[i] = 26
	}
	render := func(out []int) string {
		tok := append([]rune(nil), runes...)
		for k, i := range pos {
			c := rune('a' + out[k])
			if upper[i] {
				c -= 'a' - 'A'
			}
			tok[i] = c
		}
		return string(tok)
	}
	return &plan{dom: d, in: in, ctx: []byte(ctx.String()), render: render, log10: d.log10()}, nil
}

// Mask keeps the first letter of each part (a run of letters) and the punctuation:
// "J*** S****", "J***-L** P*****".
func (t *nameT) Mask(value string) string {
	runes, free, _, err := t.parse(value)
	if err != nil {
		return "****"
	}
	out := make([]rune, len(runes))
	for i, r := range runes {
		switch {
		case !free[i], i == 0 || !free[i-1]:
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

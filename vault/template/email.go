package template

import (
	"math"
	"strings"
)

// emailT is an email address (ASCII; international domains in punycode). The local part
// becomes a local part of the same length: every character except . - _ + (kept in place)
// becomes [a-z0-9]. The domain is kept, or with TokenizeDomain its labels but the last
// become [a-z0-9] too (hyphens and dots kept).
type emailT struct{ common }

// localSpecials are the atext symbols allowed in a local part besides letters and digits.
const localSpecials = "!#$%&'*+-/=?^_`{|}~"

// keptLocal are the local-part characters tokens keep in place.
func keptLocal(c byte) bool { return c == '.' || c == '-' || c == '_' || c == '+' }

// parse returns the offset of the @.
func (t *emailT) parse(value string) (at int, err error) {
	if err := t.pre(value, 254); err != nil {
		return 0, err
	}
	for i := 0; i < len(value); i++ {
		if value[i] >= 0x80 {
			return 0, t.fail("must be ASCII (write international domains in punycode)")
		}
	}
	if strings.Count(value, "@") != 1 {
		return 0, t.fail("must contain exactly one @")
	}
	at = strings.IndexByte(value, '@')
	local, dom := value[:at], value[at+1:]
	switch {
	case local == "":
		return 0, t.fail("local part must not be empty")
	case len(local) > 64:
		return 0, t.fail("local part longer than 64 bytes")
	}
	alnum := false
	for i := 0; i < len(local); i++ {
		c := local[i]
		switch {
		case isAlnum(c):
			alnum = true
		case c == '.':
			if i == 0 || i == len(local)-1 {
				return 0, t.fail("local part must not start or end with a dot")
			}
			if local[i-1] == '.' {
				return 0, t.fail("local part must not contain consecutive dots")
			}
		case strings.IndexByte(localSpecials, c) >= 0:
		default:
			return 0, t.fail("local part may contain only letters, digits and !#$%&'*+-/=?^_`{|}~.")
		}
	}
	if !alnum {
		return 0, t.fail("local part must contain a letter or digit")
	}
	if dom == "" {
		return 0, t.fail("domain must not be empty")
	}
	if strings.IndexByte(dom, '.') < 0 {
		return 0, t.fail("domain must contain a dot")
	}
	var tld string
	for rest := dom; ; {
		l, tail, more := strings.Cut(rest, ".")
		if len(l) < 1 || len(l) > 63 {
			return 0, t.fail("domain labels must have 1 to 63 characters")
		}
		for i := 0; i < len(l); i++ {
			if !isAlnum(l[i]) && l[i] != '-' {
				return 0, t.fail("domain may contain only letters, digits, hyphens and dots")
			}
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return 0, t.fail("domain labels must not start or end with a hyphen")
		}
		if !more {
			tld = l
			break
		}
		rest = tail
	}
	if strings.Trim(tld, digitChars) == "" {
		return 0, t.fail("top-level domain must not be all digits")
	}
	return at, nil
}

func (t *emailT) plan(p *plan, value string) error {
	at, err := t.parse(value)
	if err != nil {
		return err
	}
	p.startSlots(value)
	for i := 0; i < at; i++ {
		if c := value[i]; !keptLocal(c) {
			if isUpper(c) {
				c += 'a' - 'A'
			}
			p.add(i, lowerDigits, c)
		}
	}
	if t.def.TokenizeDomain {
		end := strings.LastIndexByte(value, '.')
		for i := at + 1; i < end; i++ {
			if c := value[i]; isAlnum(c) {
				if isUpper(c) {
					c += 'a' - 'A'
				}
				p.add(i, lowerDigits, c)
			}
		}
	}
	p.finishSlots(0)
	return nil
}

// Mask keeps the first character of the local part and the domain (only the top-level
// domain with TokenizeDomain): "j***@example.com", "j***@***.com".
func (t *emailT) Mask(value string) string {
	at, err := t.parse(value)
	if err != nil {
		return "****"
	}
	dom := value[at+1:]
	if t.def.TokenizeDomain {
		dom = "***" + dom[strings.LastIndexByte(dom, '.'):]
	}
	return value[:1] + "***@" + dom
}

// FreeSpace counts local-part characters, none of them kept punctuation.
func (t *emailT) FreeSpace(length int) (float64, bool) {
	if length < 1 || length > 64 {
		return 0, false
	}
	return float64(length) * math.Log10(36), true
}

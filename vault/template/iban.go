package template

import "math"

// ibanT is an International Bank Account Number (ISO 13616) in electronic form
// ("DE89370400440532013000") or with single spaces ("DE89 3704 0044 0532 0130 00"), upper
// case. Tokens keep the country, the length, the spaces and the class (digit or letter) of
// every BBAN character, and get freshly computed mod-97 check digits.
type ibanT struct{ common }

// ibanLengths is the SWIFT IBAN registry (release 100, 2025): country → IBAN length.
// Countries not listed are accepted with any length from 15 to 34.
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
	"BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
	"DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
	"GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
	"IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
	"LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
	"MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
	"PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
	"SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}

// parse appends the compact form (no spaces) to compact and the offsets in value of its
// characters to offs, and returns them.
func (t *ibanT) parse(value string, compact []byte, offs []int) ([]byte, []int, error) {
	if err := t.pre(value, 64); err != nil {
		return nil, nil, err
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case isUpper(c) || isDigit(c):
			compact = append(compact, c)
			offs = append(offs, i)
		case c == ' ':
			if i == 0 || i == len(value)-1 || value[i-1] == ' ' {
				return nil, nil, t.fail("spaces must be single and between characters")
			}
		case isLower(c):
			return nil, nil, t.fail("letters must be upper case")
		default:
			return nil, nil, t.fail("only upper-case letters, digits and single spaces are allowed")
		}
	}
	n := len(compact)
	if n < 15 || n > 34 {
		return nil, nil, t.fail("must have 15 to 34 characters")
	}
	if !isUpper(compact[0]) || !isUpper(compact[1]) {
		return nil, nil, t.fail("must start with a two-letter country code")
	}
	if !isDigit(compact[2]) || !isDigit(compact[3]) {
		return nil, nil, t.fail("check digits must be two digits")
	}
	if l, ok := ibanLengths[string(compact[:2])]; ok && l != n {
		return nil, nil, t.fail("length does not match the country")
	}
	if mod97(compact) != 1 {
		return nil, nil, t.fail("check digits do not match (mod-97)")
	}
	return compact, offs, nil
}

// mod97 returns the ISO 7064 MOD 97-10 remainder of an IBAN (country and check digits moved
// to the end, letters as 10..35).
func mod97(iban []byte) int {
	r := 0
	add := func(c byte) {
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A') + 10) % 97
		}
	}
	for _, c := range iban[4:] {
		add(c)
	}
	for _, c := range iban[:4] {
		add(c)
	}
	return r
}

func (t *ibanT) plan(p *plan, value string) error {
	compact, offs, err := t.parse(value, p.chars[:0], p.offs[:0])
	if err != nil {
		return err
	}
	p.chars, p.offs = compact, offs
	p.startSlots(value)
	for k := 4 + t.def.KeepPrefix; k < len(compact)-t.def.KeepSuffix; k++ {
		i, c := offs[k], compact[k]
		if isDigit(c) {
			p.add(i, digitChars, c)
		} else {
			p.add(i, upperChars, c)
		}
	}
	if !p.light {
		// The check digits are derived, not kept: zero them in the tweak context.
		p.buf[offs[2]], p.buf[offs[3]] = '0', '0'
	}
	p.finishSlots(0)
	return nil
}

// render writes the slots token with freshly computed check digits.
func (t *ibanT) render(p *plan, out []int) {
	p.renderSlots(out)
	tok, offs := p.tok, p.offs
	c := p.chars[:0]
	for _, i := range offs {
		c = append(c, tok[i])
	}
	c[2], c[3] = '0', '0'
	cd := 98 - mod97(c)
	tok[offs[2]], tok[offs[3]] = byte('0'+cd/10), byte('0'+cd%10)
}

// Mask keeps the country, the spaces, the kept prefix and the last four characters (or
// the kept suffix): "DE** **** **** **** **30 00".
func (t *ibanT) Mask(value string) string {
	var cbuf [64]byte
	var obuf [64]int
	compact, offs, err := t.parse(value, cbuf[:0], obuf[:0])
	if err != nil {
		return "****"
	}
	show := map[int]bool{}
	suffix := maskSuffix(4, t.def.KeepSuffix, len(compact)-4-t.def.KeepPrefix-t.def.KeepSuffix)
	for k, i := range offs {
		show[i] = k < 2 || (k >= 4 && k < 4+t.def.KeepPrefix) || k >= len(compact)-suffix
	}
	return maskBytes(value, func(i int) bool { v, isChar := show[i]; return v || !isChar })
}

// FreeSpace counts IBAN characters (without spaces), assuming an all-digit BBAN.
func (t *ibanT) FreeSpace(length int) (float64, bool) {
	if length < 15 || length > 34 {
		return 0, false
	}
	f := length - 4 - t.def.KeepPrefix - t.def.KeepSuffix
	if f <= 0 {
		return math.Inf(-1), true
	}
	return float64(f), true
}

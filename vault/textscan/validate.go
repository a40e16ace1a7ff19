package textscan

import (
	"regexp"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"
	"google.golang.org/protobuf/proto"
)

// digitsOf appends the digits of gs to buf.
func (sc *scan) digitsOf(buf []byte, gs []group) []byte {
	for _, g := range gs {
		buf = append(buf, sc.text[g.s:g.e]...)
	}
	return buf
}

// pan reports card numbers among gs: 13 to 19 digits in whole groups joined by one kind of
// separator (space or dash), a known issuer prefix for the length, a valid Luhn check.
func (sc *scan) pan(gs []group, plus bool) {
	var buf [19]byte
	for a := 0; a < len(gs); a++ {
		c := sc.text[gs[a].s]
		if c < '2' || c > '6' || gs[a].sep == '(' || gs[a].sep == ')' || a == 0 && plus {
			continue
		}
		best := -1
		d := buf[:0]
		for b := a; b < len(gs); b++ {
			if b > a && (gs[b].sep != ' ' && gs[b].sep != '-' || b > a+1 && gs[b].sep != gs[a+1].sep) {
				break
			}
			if len(d)+gs[b].e-gs[b].s > 19 {
				break
			}
			d = append(d, sc.text[gs[b].s:gs[b].e]...)
			sc.ops += gs[b].e - gs[b].s
			if len(d) >= 13 && issuerLength(d) && luhn(d) {
				best = b
			}
		}
		if best < 0 {
			continue
		}
		conf := 0.75
		if best > a && !cardGrouping(gs[a:best+1]) {
			conf = 0.45 // not laid out as cards are printed: only with context
		}
		sc.add(PAN, gs[a].s, gs[best].e, conf, 0.2)
		a = best
	}
}

// cardGrouping reports whether groups are laid out as printed cards are: fours (the last
// may be shorter), or 4-6-5 / 4-6-4.
func cardGrouping(gs []group) bool {
	if len(gs) == 3 && gs[0].e-gs[0].s == 4 && gs[1].e-gs[1].s == 6 {
		return true
	}
	for k, g := range gs {
		if l := g.e - g.s; l != 4 && (k < len(gs)-1 || l > 4) {
			return false
		}
	}
	return true
}

// issuerLength reports whether d (13-19 digits) starts with a known issuer prefix (IIN)
// valid for its length.
func issuerLength(d []byte) bool {
	n := len(d)
	p := func(k int) int { // the first k digits as a number
		v := 0
		for _, c := range d[:k] {
			v = v*10 + int(c-'0')
		}
		return v
	}
	switch d[0] {
	case '4': // Visa
		return n == 13 || n == 16 || n == 19
	case '5':
		if p2 := p(2); p2 >= 51 && p2 <= 55 { // Mastercard
			return n == 16
		}
		return n >= 13 && (d[1] == '0' || d[1] >= '6') // Maestro 50, 56-59
	case '2':
		if p4 := p(4); p4 >= 2221 && p4 <= 2720 { // Mastercard
			return n == 16
		} else if p4 >= 2200 && p4 <= 2204 { // Mir
			return n >= 16
		}
	case '3':
		switch p2 := p(2); {
		case p2 == 34 || p2 == 37: // American Express
			return n == 15
		case p2 == 36 || p2 == 38 || p2 == 39: // Diners Club
			return n >= 14
		case p2 == 30:
			return p(3) <= 305 && n >= 14
		case p2 == 35: // JCB 3528-3589
			p4 := p(4)
			return p4 >= 3528 && p4 <= 3589 && n >= 16
		}
	case '6':
		switch p2 := p(2); {
		case p2 == 60 && p(4) == 6011, p2 == 65, p2 == 64 && d[2] >= '4', p2 == 62: // Discover, UnionPay
			return n >= 16
		case p2 == 63 || p2 == 67: // Maestro
			return n >= 13
		}
	}
	return false
}

// luhn reports whether the digits d pass the Luhn check.
func luhn(d []byte) bool {
	sum, dbl := 0, false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if dbl {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
		dbl = !dbl
	}
	return sum%10 == 0
}

// ssn reports US social security numbers among gs: NNN-NN-NNNN (valid area, group and
// serial), or nine digits alone when context words name an SSN.
func (sc *scan) ssn(gs []group) {
	t := sc.text
	glen := func(g group) int { return g.e - g.s }
	if len(gs) == 1 && glen(gs[0]) == 9 && gs[0].sep == 0 {
		s := t[gs[0].s:gs[0].e]
		if ssnValid(s[:3], s[3:5], s[5:]) && sc.context(SSN, gs[0].s, gs[0].e) == ctxPositive {
			sc.found = append(sc.found, Finding{Entity: SSN, Start: gs[0].s, End: gs[0].e, Confidence: 0.85})
		}
		return
	}
	for a := 0; a+2 < len(gs); a++ {
		if glen(gs[a]) != 3 || glen(gs[a+1]) != 2 || glen(gs[a+2]) != 4 || gs[a+1].sep != '-' || gs[a+2].sep != '-' ||
			gs[a].sep == '-' || a+3 < len(gs) && gs[a+3].sep == '-' {
			continue
		}
		if ssnValid(t[gs[a].s:gs[a].e], t[gs[a+1].s:gs[a+1].e], t[gs[a+2].s:gs[a+2].e]) {
			sc.add(SSN, gs[a].s, gs[a+2].e, 0.65, 0.3)
			a += 2
		}
	}
}

// ssnValid applies the SSA's rules: area 001-899 but not 666, group 01-99, serial
// 0001-9999.
func ssnValid(area, grp, serial string) bool {
	return area != "000" && area != "666" && area[0] != '9' && grp != "00" && serial != "0000"
}

// phone reports a telephone number: the run (a leading + or parenthesis included) when its
// shape is plausible and libphonenumber finds it valid. Cheap checks come first: the digit
// count, no date shape, a plausible start, and context or separators for bare digit runs;
// libphonenumber (regular expressions, microseconds) runs only on what passes them.
func (sc *scan) phone(rs int, gs []group, plus, paren bool) {
	nd := 0
	for k, g := range gs {
		if nd+g.e-g.s > 15 {
			gs = gs[:k]
			break
		}
		nd += g.e - g.s
	}
	if nd < 7 || len(gs) == 0 || sc.timeAfter || dateShape(gs) {
		return
	}
	if paren && !hasClose(gs[1:]) {
		rs, paren = gs[0].s, false
	}
	end := gs[len(gs)-1].e
	var buf [15]byte
	d := sc.digitsOf(buf[:0], gs)
	intl := plus || d[0] == '0' && d[1] == '0' && sc.s.ndd != "00"
	conf := 0.65
	switch {
	case intl:
		conf = 0.8
	case sc.s.cc != 1 && sc.s.ndd != "" && !strings.HasPrefix(string(d), sc.s.ndd):
		return // a national number without the region's trunk prefix
	case sc.s.cc == 1 && d[0] == '0':
		return
	}
	ctx := sc.context(Phone, rs, end)
	switch {
	case ctx == ctxNegative:
		conf -= negativePenalty
	case ctx == ctxPositive:
		conf += 0.2
	case len(gs) == 1 && !plus:
		return // bare digits need context
	}
	if clamp(conf) < sc.s.min {
		return
	}
	sc.ops += 64 // libphonenumber: a bounded, larger cost per call
	if !sc.validPhone(d, intl, plus) {
		return
	}
	sc.found = append(sc.found, Finding{Entity: Phone, Start: rs, End: end, Confidence: clamp(conf)})
}

// dateShape reports runs that read as dates: 12.05.2024, 2024-05-12, 12-05-24.
func dateShape(gs []group) bool {
	for k := 0; k+2 < len(gs); k++ {
		if gs[k+1].sep != gs[k+2].sep || gs[k+1].sep == ' ' {
			continue
		}
		l0, l1, l2 := gs[k].e-gs[k].s, gs[k+1].e-gs[k+1].s, gs[k+2].e-gs[k+2].s
		if l1 == 2 && (l0 <= 2 && (l2 == 2 || l2 == 4) || l0 == 4 && l2 == 2) {
			return true
		}
	}
	return false
}

// validPhone builds the number from its digits (international: + or 00 and a country
// code; national: in the default region, trunk prefix dropped) and asks libphonenumber
// whether it is possible and then valid.
func (sc *scan) validPhone(d []byte, intl, plus bool) bool {
	var cc int
	var nsn []byte
	if intl {
		if !plus {
			d = d[2:]
		}
		for k := 1; k <= 3 && k < len(d); k++ {
			v := 0
			for _, c := range d[:k] {
				v = v*10 + int(c-'0')
			}
			if phonenumbers.GetRegionCodeForCountryCode(v) != phonenumbers.UNKNOWN_REGION {
				cc, nsn = v, d[k:]
				break
			}
		}
		if cc == 0 {
			return false
		}
		if len(nsn) > 0 && nsn[0] == '0' && cc != 39 { // +49 (0)30 …: the trunk prefix
			nsn = nsn[1:]
		}
	} else {
		cc, nsn = sc.s.cc, d
		switch {
		case sc.s.ndd != "" && strings.HasPrefix(string(d), sc.s.ndd):
			nsn = d[len(sc.s.ndd):]
		case cc == 1 && len(d) == 11 && d[0] == '1':
			nsn = d[1:]
		}
	}
	if len(nsn) < 4 || len(nsn) > 14 {
		return false
	}
	var v uint64
	zeros := int32(0)
	for k, c := range nsn {
		if c == '0' && int(zeros) == k {
			zeros++
		}
		v = v*10 + uint64(c-'0')
	}
	num := &phonenumbers.PhoneNumber{CountryCode: proto.Int32(int32(cc)), NationalNumber: proto.Uint64(v)}
	if zeros > 0 {
		num.ItalianLeadingZero = proto.Bool(true)
		num.NumberOfLeadingZeros = proto.Int32(zeros)
	}
	if !phonenumbers.IsPossibleNumber(num) {
		return false
	}
	region := sc.s.region
	if intl {
		region = phonenumbers.GetRegionCodeForCountryCode(cc)
	}
	pats := nationalPatterns()
	if re := pats[region]; re != nil && re.Match(nsn) {
		return true
	}
	for _, r := range phonenumbers.GetRegionCodesForCountryCode(cc) {
		if re := pats[r]; r != region && re != nil && re.Match(nsn) {
			return true
		}
	}
	return false
}

// nationalPatterns maps each region to libphonenumber's general pattern of its national
// numbers (the union of its fixed-line, mobile, toll-free, ... patterns), compiled once: a
// number matching it is valid as phonenumbers.IsValidNumberForRegion understands it, at one
// regular expression instead of up to ten (IsValidNumberForRegion tests each number type,
// building and looking up each pattern per call).
var nationalPatterns = sync.OnceValue(func() map[string]*regexp.Regexp {
	m := map[string]*regexp.Regexp{}
	coll, err := phonenumbers.MetadataCollection()
	if err != nil {
		return m // no metadata: no phone is valid
	}
	for _, md := range coll.GetMetadata() {
		pat := md.GetGeneralDesc().GetNationalNumberPattern()
		if pat == "" {
			continue
		}
		if re, err := regexp.Compile("^(?:" + pat + ")$"); err == nil {
			m[md.GetId()] = re
		}
	}
	return m
})

// ibanLengths is the SWIFT IBAN registry: country code and IBAN length, packed.
const ibanLengths = "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 DK18 " +
	"DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HN28 HR21 HU28 IE22 IL23 " +
	"IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 MN20 MR27 " +
	"MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24 SC31 SD18 SE24 SI19 " +
	"SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30"

// ibanLen maps a country code (26*first+second letter) to its IBAN length (immutable).
var ibanLen = func() (t [26 * 26]uint8) {
	for _, f := range strings.Fields(ibanLengths) {
		t[int(f[0]-'A')*26+int(f[1]-'A')] = (f[2]-'0')*10 + f[3] - '0'
	}
	return t
}()

// iban reads an IBAN at i (whose first word ends at we), compact or in groups of four
// separated by single spaces, returning its end or 0.
func (sc *scan) iban(i, we int) int {
	t := sc.text
	L := int(ibanLen[int(t[i]-'A')*26+int(t[i+1]-'A')])
	if L == 0 {
		return 0
	}
	upperOrDigit := func(c byte) bool { return classes[c]&(cUpper|cDigit) != 0 }
	var buf [34]byte
	d := buf[:0]
	end := 0
	switch {
	case we-i == L:
		for k := i; k < we; k++ {
			if !upperOrDigit(t[k]) {
				return 0
			}
		}
		d, end = append(d, t[i:we]...), we
	case we-i == 4:
		d = append(d, t[i:we]...)
		j := we
		for len(d) < L && j+1 < len(t) && t[j] == ' ' && upperOrDigit(t[j+1]) {
			k := j + 1
			for k < len(t) && upperOrDigit(t[k]) && k-j <= 4 {
				k++
			}
			if k < len(t) && isWord(t[k]) || k-j-1 < 4 && len(d)+k-j-1 != L {
				return 0
			}
			d = append(d, t[j+1:k]...)
			j = k
		}
		if len(d) != L {
			return 0
		}
		end = j
	default:
		return 0
	}
	sc.ops += len(d)
	if sc.tokens {
		sc.spans = append(sc.spans, Span{i, end})
		return end
	}
	if !mod97(d) {
		return 0
	}
	sc.add(IBAN, i, end, 0.95, 0.04)
	return end
}

// mod97 reports whether an IBAN's check digits are valid (ISO 13616).
func mod97(d []byte) bool {
	r := 0
	for k := range d {
		c := d[(k+4)%len(d)]
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A') + 10) % 97
		}
	}
	return r == 1
}

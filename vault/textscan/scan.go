package textscan

import (
	"net/netip"
	"strings"
)

// Byte classes.
const (
	cDigit = 1 << iota
	cUpper
	cLower
	cUnder // '_'
	cLocal // may appear in an email's local part
	cHex
	cWord = cDigit | cUpper | cLower | cUnder
)

// classes is the byte class table (immutable).
var classes = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] |= cDigit | cLocal | cHex
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= cUpper | cLocal
		t[c+'a'-'A'] |= cLower | cLocal
	}
	for c := 'A'; c <= 'F'; c++ {
		t[c] |= cHex
		t[c+'a'-'A'] |= cHex
	}
	t['_'] |= cUnder | cLocal
	for _, c := range ".%+-" {
		t[c] |= cLocal
	}
	return t
}()

func isDigit(c byte) bool { return classes[c]&cDigit != 0 }
func isWord(c byte) bool  { return classes[c]&cWord != 0 }

// maxGroups bounds the digit groups of one candidate run; a longer run is cut.
const maxGroups = 32

// group is one run of digits of a candidate: bytes [s, e), after separator sep (0 for the
// first group, '(' for a group opened by a parenthesis, ')' for one after its close).
type group struct {
	s, e int
	sep  byte
}

// scan is the state of one pass over a text.
type scan struct {
	s      *Scanner
	text   string
	tokens bool // Tokens mode: collect token-shaped spans instead of findings
	found  []Finding
	spans  []Span
	groups [maxGroups]group
	ops    int // work done, for the linearity tests
	// timeAfter: the run is followed by :NN (a time)
	timeAfter bool
}

// run makes the single pass: it dispatches on the byte at each position to a candidate
// reader, which returns where the pass continues (always past the position).
func (sc *scan) run() {
	t := sc.text
	for i := 0; i < len(t); {
		sc.ops++
		c := t[i]
		switch {
		case classes[c]&cDigit != 0:
			i = sc.digits(i)
		case classes[c]&cWord != 0:
			i = sc.word(i)
		case c == '@':
			i = sc.email(i)
		case c == ':' && i+1 < len(t) && t[i+1] == ':' && (i == 0 || !isWord(t[i-1])):
			if j := sc.ipv6(i); j > i {
				i = j
			} else {
				i += 2
			}
		default:
			i++
		}
	}
}

// skipWord returns the end of the word (letters, digits, _) at i.
func (sc *scan) skipWord(i int) int {
	for i < len(sc.text) && isWord(sc.text[i]) {
		i++
		sc.ops++
	}
	return i
}

// word reads a word starting with a letter or _: an IBAN, an IPv6 address starting with a
// letter, an opaque token, or nothing.
func (sc *scan) word(i int) int {
	t := sc.text
	j := sc.skipWord(i)
	if j-i >= 4 && classes[t[i]]&cUpper != 0 && classes[t[i+1]]&cUpper != 0 && isDigit(t[i+2]) && isDigit(t[i+3]) {
		if e := sc.iban(i, j); e > 0 {
			return e
		}
	}
	if j < len(t) && t[j] == ':' && j-i <= 4 && sc.s.set.Has(IP) && !sc.tokens {
		if e := sc.ipv6(i); e > 0 {
			return e
		}
	}
	if sc.tokens && j-i == len(opaquePrefix)+opaqueChars && strings.HasPrefix(t[i:], opaquePrefix) {
		sc.spans = append(sc.spans, Span{i, j})
	}
	return j
}

// The opaque template's tokens: "tok_" and 22 base62 characters.
const (
	opaquePrefix = "tok_"
	opaqueChars  = 22
)

// digits reads a run of digit groups starting at i: card numbers, SSNs, phone numbers and
// IPv4 addresses (and IPv6 addresses starting with a digit).
func (sc *scan) digits(i int) int {
	t := sc.text
	n := len(t)
	// The tail of an identifier (ORD-123, v1.2, A/123): not a candidate.
	if i >= 2 && (t[i-1] == '-' || t[i-1] == '.' || t[i-1] == '/') && isWord(t[i-2]) {
		return sc.skipWord(i)
	}
	rs, plus, open := i, false, false
	if i > 0 && t[i-1] == '+' {
		rs, plus = i-1, true
	} else if i > 0 && t[i-1] == '(' {
		rs, open = i-1, true
	}
	gs := sc.groups[:0]
	parens := open
	var sep byte
	if open {
		sep = '('
	}
	j, resume := i, 0
	for {
		g := group{s: j, sep: sep}
		for j < n && isDigit(t[j]) {
			j++
		}
		sc.ops += j - g.s
		g.e = j
		if j < n && classes[t[j]]&(cUpper|cLower|cUnder) != 0 {
			// Digits glued to letters (10am, 5th, 123abc): the run ends before this group,
			// unless it is an IPv6 address (2a02:…).
			we := sc.skipWord(j)
			if len(gs) == 0 && we-g.s <= 4 && we < n && t[we] == ':' && !sc.tokens && sc.s.set.Has(IP) {
				if e := sc.ipv6(g.s); e > 0 {
					return e
				}
			}
			resume = we
			break
		}
		if j < n && t[j] == ':' && len(gs) == 0 && j-g.s <= 4 && !sc.tokens && sc.s.set.Has(IP) {
			if e := sc.ipv6(g.s); e > 0 {
				return e
			}
		}
		gs = append(gs, g)
		if len(gs) == maxGroups || j+1 >= n {
			break
		}
		c, d := t[j], t[j+1]
		switch {
		case open && c == ')':
			open = false
			switch {
			case isDigit(d):
				j, sep = j+1, ')'
				continue
			case (d == ' ' || d == '-') && j+2 < n && isDigit(t[j+2]):
				j, sep = j+2, ')'
				continue
			}
		case (c == ' ' || c == '-' || c == '.') && isDigit(d):
			j, sep = j+1, c
			continue
		case c == ' ' && d == '(' && !parens && j+2 < n && isDigit(t[j+2]):
			j, sep, open, parens = j+2, '(', true, true
			continue
		}
		break
	}
	if len(gs) == 0 {
		return max(j, resume)
	}
	// A parenthesis that is not closed inside the run is not part of the number.
	for k := range gs {
		if gs[k].sep == '(' && !hasClose(gs[k+1:]) {
			if k > 0 {
				gs = gs[:k]
			} else {
				rs, gs[0].sep = gs[0].s, 0
			}
			break
		}
	}
	if j+1 < n && t[j] == ':' && isDigit(t[j+1]) {
		sc.timeAfter = true // 2024-05-12 10:22: a timestamp, not a phone
	}
	sc.numeric(rs, gs, plus, gs[0].sep == '(')
	sc.timeAfter = false
	return max(j, resume)
}

// numeric examines the digit groups of one run starting at rs (a + or an opening
// parenthesis when plus or paren).
func (sc *scan) numeric(rs int, gs []group, plus, paren bool) {
	if len(gs) == 0 {
		return
	}
	if sc.tokens {
		sc.tokenSpans(rs, gs)
		return
	}
	// IPv4: exactly four dotted groups of at most three digits.
	rest := gs
	if sc.s.set.Has(IP) {
		rest = sc.ipv4(gs)
	}
	if len(rest) == 0 {
		return
	}
	if len(rest) < len(gs) {
		rs, plus, paren = rest[0].s, false, false
	}
	before := len(sc.found)
	if sc.s.set.Has(PAN) {
		sc.pan(rest, plus)
	}
	if sc.s.set.Has(SSN) {
		sc.ssn(rest)
	}
	if len(sc.found) == before && sc.s.set.Has(Phone) {
		sc.phone(rs, rest, plus, paren)
	}
}

// tokenSpans adds every group-aligned part of a run with 7 to 19 digits: where pan, ssn
// and phone tokens may be.
func (sc *scan) tokenSpans(rs int, gs []group) {
	for a := range gs {
		if gs[a].sep == ')' {
			continue
		}
		nd := 0
		for b := a; b < len(gs); b++ {
			sc.ops++
			nd += gs[b].e - gs[b].s
			if nd > 19 {
				break
			}
			if nd < 7 || b+1 < len(gs) && gs[b+1].sep == ')' && gs[a].sep != '(' {
				continue
			}
			if gs[a].sep == '(' && a > 0 && !hasClose(gs[a+1:b+1]) {
				continue
			}
			sc.spans = append(sc.spans, Span{gs[a].s, gs[b].e})
			if a == 0 && rs < gs[0].s && (gs[0].sep != '(' || hasClose(gs[1:b+1])) {
				sc.spans = append(sc.spans, Span{rs, gs[b].e})
			}
		}
	}
}

func hasClose(gs []group) bool {
	for _, g := range gs {
		if g.sep == ')' {
			return true
		}
	}
	return false
}

// ipv4 reports the dotted quads among gs and returns the groups after the last one (or
// all of gs when there is none).
func (sc *scan) ipv4(gs []group) []group {
	t := sc.text
	rest := gs
	for a := 0; a < len(gs); {
		b := a + 1
		for b < len(gs) && gs[b].sep == '.' {
			b++
		}
		if b-a == 4 && gs[a].sep != '(' {
			ok := true
			for _, g := range gs[a:b] {
				if g.e-g.s > 3 {
					ok = false
				}
			}
			if ok {
				sc.ops += 16
				if ip, err := netip.ParseAddr(t[gs[a].s:gs[b-1].e]); err == nil && ip.Is4() {
					sc.add(IP, gs[a].s, gs[b-1].e, 0.8, 0.15)
					rest = gs[b:]
				}
			}
		}
		a = b
	}
	return rest
}

// ipv6 reads an IPv6 address starting at i, returning its end, or 0.
func (sc *scan) ipv6(i int) int {
	t := sc.text
	if i > 0 && (isWord(t[i-1]) || t[i-1] == ':' || t[i-1] == '.') {
		return 0
	}
	j, colons, dbl := i, 0, false
	for j < len(t) && j-i < 45 {
		c := t[j]
		if c == ':' {
			colons++
			if j > i && t[j-1] == ':' {
				dbl = true
			}
		} else if classes[c]&cHex == 0 && c != '.' {
			break
		}
		j++
	}
	sc.ops += j - i
	for j > i && t[j-1] == '.' {
		j--
	}
	if colons < 2 || !dbl && colons != 7 || j < len(t) && isWord(t[j]) {
		return 0
	}
	ip, err := netip.ParseAddr(t[i:j])
	if err != nil || !ip.Is6() || ip.IsUnspecified() {
		return 0
	}
	sc.add(IP, i, j, 0.9, 0.1)
	return j
}

// email reads the address around the @ at i, returning where the pass continues.
func (sc *scan) email(at int) int {
	t := sc.text
	ls := at
	for ls > 0 && at-ls < 64 && classes[t[ls-1]]&cLocal != 0 {
		ls--
	}
	sc.ops += at - ls
	for ls < at && t[ls] == '.' {
		ls++
	}
	if ls == at || ls > 0 && (classes[t[ls-1]]&cLocal != 0 || t[ls-1] == '@') || t[at-1] == '.' || strings.Contains(t[ls:at], "..") {
		return at + 1
	}
	// The domain: labels of letters, digits and inner dashes, at least two, the last of
	// letters only.
	j, labels, lastAlpha, end := at+1, 0, false, 0
	for j < len(t) && j-at <= 253 {
		k := j
		alpha := true
		for k < len(t) && (isWord(t[k]) && t[k] != '_' || t[k] == '-') {
			if classes[t[k]]&(cUpper|cLower) == 0 {
				alpha = false
			}
			k++
		}
		sc.ops += k - j
		if k == j || t[j] == '-' || t[k-1] == '-' {
			break
		}
		labels++
		lastAlpha = alpha && k-j >= 2
		end = k
		if k+1 < len(t) && t[k] == '.' && isWord(t[k+1]) {
			j = k + 1
			continue
		}
		break
	}
	if labels < 2 || !lastAlpha {
		return at + 1
	}
	if sc.tokens {
		sc.spans = append(sc.spans, Span{ls, end})
	} else {
		sc.add(Email, ls, end, 0.95, 0)
	}
	return end
}

// add records a finding with base confidence conf, moved by up to ±ctx (and down by
// negative context) by the words around it.
func (sc *scan) add(e Entity, start, end int, conf, boost float64) {
	switch sc.context(e, start, end) {
	case ctxPositive:
		conf += boost
	case ctxNegative:
		conf -= negativePenalty
	}
	sc.found = append(sc.found, Finding{Entity: e, Start: start, End: end, Confidence: clamp(conf)})
}

func clamp(c float64) float64 {
	c = float64(int(c*100+0.5)) / 100
	return min(max(c, 0), 1)
}

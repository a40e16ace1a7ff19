// Command gen writes the labelled synthetic corpora of package textscan (run from the
// module root: go run ./vault/textscan/testdata/gen):
//
//	tune.jsonl     seed 1, sentence set A: the set detectors may be tuned on
//	heldout.jsonl  seed 2, sentence set B (other phrasings): the set metrics are reported on
//	prose.txt      seed 3: ordinary sentences, sparse PII (benchmark)
//	dense.txt      seed 4: log and CSV lines full of numbers and PII-like candidates (benchmark)
//
// Each line of the .jsonl files is one document: its language, the phone region to scan it
// with, the text and the labelled spans (entity, byte offsets). Hard negatives (order and
// tracking numbers, Luhn-valid numbers in order context, timestamps, versions, prices,
// dates) are in the text and not labelled.
package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

type span struct {
	Entity string `json:"entity"`
	Start  int    `json:"start"`
	End    int    `json:"end"`
}

type doc struct {
	Lang   string `json:"lang"`
	Region string `json:"region"`
	Text   string `json:"text"`
	Spans  []span `json:"spans"`
}

var regions = map[string]string{"en": "US", "de": "DE", "fr": "FR", "es": "ES"}

func main() {
	dir := "vault/textscan/testdata"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	write("tune.jsonl", corpus(1, setA, 400))
	write("heldout.jsonl", corpus(2, setB, 400))
	write("prose.txt", bench(3, prose, 256<<10))
	write("dense.txt", bench(4, dense, 256<<10))
}

func corpus(seed uint64, set map[string][]string, n int) []byte {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed*7919))}
	var out strings.Builder
	langs := []string{"en", "de", "fr", "es"}
	for i := range n {
		lang := langs[i%len(langs)]
		d := doc{Lang: lang, Region: regions[lang], Spans: []span{}}
		var b strings.Builder
		for k := range 3 + g.r.IntN(4) {
			if k > 0 {
				b.WriteByte(' ')
			}
			tpl := set[lang][g.r.IntN(len(set[lang]))]
			d.Spans = append(d.Spans, g.fill(&b, tpl, lang)...)
		}
		d.Text = b.String()
		line, _ := json.Marshal(d)
		out.Write(line)
		out.WriteByte('\n')
	}
	return []byte(out.String())
}

func bench(seed uint64, set map[string][]string, size int) []byte {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed*7919))}
	var b strings.Builder
	langs := []string{"en", "de", "fr", "es"}
	for b.Len() < size {
		lang := langs[g.r.IntN(len(langs))]
		g.fill(&b, set[lang][g.r.IntN(len(set[lang]))], lang)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

type gen struct{ r *rand.Rand }

// fill writes tpl with its placeholders replaced and returns the labelled spans.
func (g *gen) fill(b *strings.Builder, tpl, lang string) []span {
	var spans []span
	for {
		i := strings.IndexByte(tpl, '{')
		if i < 0 {
			b.WriteString(tpl)
			return spans
		}
		j := strings.IndexByte(tpl[i:], '}') + i
		b.WriteString(tpl[:i])
		name := tpl[i+1 : j]
		val, entity := g.value(name, lang)
		start := b.Len()
		b.WriteString(val)
		if entity != "" {
			spans = append(spans, span{Entity: entity, Start: start, End: b.Len()})
		}
		tpl = tpl[j+1:]
	}
}

func (g *gen) digits(n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(byte('0' + g.r.IntN(10)))
	}
	return b.String()
}

func (g *gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func luhnComplete(prefix string, n int) string {
	d := []byte(prefix)
	for len(d) < n-1 {
		d = append(d, '0')
	}
	return string(d)
}

// card returns a Luhn-valid number with a real issuer prefix.
func (g *gen) card() string {
	var prefix string
	n := 16
	switch g.r.IntN(6) {
	case 0, 1:
		prefix = "4"
	case 2:
		prefix = fmt.Sprint(51 + g.r.IntN(5))
	case 3:
		prefix, n = g.pick("34", "37"), 15
	case 4:
		prefix = g.pick("6011", "65")
	case 5:
		prefix = fmt.Sprint(2221 + g.r.IntN(500))
	}
	d := prefix + g.digits(n-1-len(prefix))
	return d + string(rune('0'+luhnCheck(d)))
}

func luhnCheck(d string) int {
	sum := 0
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if (len(d)-1-i)%2 == 0 {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return (10 - sum%10) % 10
}

func group(d string, sizes []int, sep string) string {
	var parts []string
	for _, s := range sizes {
		parts = append(parts, d[:s])
		d = d[s:]
	}
	return strings.Join(parts, sep)
}

func (g *gen) panFormatted() string {
	d := g.card()
	sep := g.pick(" ", "-", "")
	if sep == "" {
		return d
	}
	if len(d) == 15 {
		return group(d, []int{4, 6, 5}, sep)
	}
	return group(d, []int{4, 4, 4, 4}, sep)
}

func (g *gen) ssn() (string, string, string) {
	area := 1 + g.r.IntN(899)
	for area == 666 {
		area = 1 + g.r.IntN(899)
	}
	return fmt.Sprintf("%03d", area), fmt.Sprintf("%02d", 1+g.r.IntN(99)), fmt.Sprintf("%04d", 1+g.r.IntN(9999))
}

var firstNames = []string{"anna", "john", "maria", "lukas", "sophie", "carlos", "lea", "pierre", "jose", "emma", "max", "ines"}
var lastNames = []string{"smith", "mueller", "dubois", "garcia", "schmidt", "martin", "lopez", "bernard", "weber", "fernandez"}
var domains = []string{"example.com", "mail.example.org", "firma.de", "exemple.fr", "correo.es", "acme-corp.co.uk", "uni-koeln.de"}

func (g *gen) email() string {
	f, l := g.pick(firstNames...), g.pick(lastNames...)
	local := g.pick(f+"."+l, f+l[:1], f+"_"+l, l+fmt.Sprint(g.r.IntN(100)), f+"+news", f[:1]+"."+l)
	return local + "@" + g.pick(domains...)
}

func (g *gen) phone(region string, intl bool) string {
	typ := phonenumbers.FIXED_LINE
	if g.r.IntN(2) == 0 {
		typ = phonenumbers.MOBILE
	}
	ex := phonenumbers.GetExampleNumberForType(region, typ)
	for range 100 {
		nn := ex.GetNationalNumber()
		s := fmt.Sprint(nn)
		s = s[:len(s)-4] + g.digits(4)
		var v uint64
		fmt.Sscan(s, &v)
		num := &phonenumbers.PhoneNumber{CountryCode: ex.CountryCode, NationalNumber: &v, ItalianLeadingZero: ex.ItalianLeadingZero, NumberOfLeadingZeros: ex.NumberOfLeadingZeros}
		if !phonenumbers.IsValidNumberForRegion(num, region) {
			continue
		}
		if intl {
			if g.r.IntN(4) == 0 {
				return phonenumbers.Format(num, phonenumbers.E164)
			}
			return phonenumbers.Format(num, phonenumbers.INTERNATIONAL)
		}
		return phonenumbers.Format(num, phonenumbers.NATIONAL)
	}
	panic("no valid phone for " + region)
}

var ibanCountries = []struct {
	cc, bban string // bban shape: n digit, a capital
}{{"DE", "nnnnnnnnnnnnnnnnnn"}, {"FR", "nnnnnnnnnnnnnnnnnnnnnnn"}, {"ES", "nnnnnnnnnnnnnnnnnnnn"},
	{"GB", "aaaannnnnnnnnnnnnn"}, {"NL", "aaaannnnnnnnnn"}, {"IT", "annnnnnnnnnnnnnnnnnnnnn"}, {"AT", "nnnnnnnnnnnnnnnn"}}

func (g *gen) iban() string {
	c := ibanCountries[g.r.IntN(len(ibanCountries))]
	var b strings.Builder
	for _, k := range c.bban {
		if k == 'n' {
			b.WriteByte(byte('0' + g.r.IntN(10)))
		} else {
			b.WriteByte(byte('A' + g.r.IntN(26)))
		}
	}
	bban := b.String()
	// check digits: 98 - mod97(bban + cc + "00")
	r := 0
	for _, ch := range bban + c.cc + "00" {
		if ch >= 'A' {
			r = (r*100 + int(ch-'A') + 10) % 97
		} else {
			r = (r*10 + int(ch-'0')) % 97
		}
	}
	s := fmt.Sprintf("%s%02d%s", c.cc, 98-r, bban)
	if g.r.IntN(2) == 0 {
		return s
	}
	var parts []string
	for len(s) > 4 {
		parts = append(parts, s[:4])
		s = s[4:]
	}
	return strings.Join(append(parts, s), " ")
}

func (g *gen) ip4() string {
	return fmt.Sprintf("%d.%d.%d.%d", g.pick8(1, 223), g.r.IntN(256), g.r.IntN(256), 1+g.r.IntN(254))
}

func (g *gen) pick8(lo, hi int) int { return lo + g.r.IntN(hi-lo+1) }

func (g *gen) ip6() string {
	switch g.r.IntN(3) {
	case 0:
		return fmt.Sprintf("2001:db8:%x::%x", g.r.IntN(0xffff), 1+g.r.IntN(0xfff))
	case 1:
		return fmt.Sprintf("fe80::%x:%x:%x:%x", g.r.IntN(0xffff), g.r.IntN(0xffff), g.r.IntN(0xffff), 1+g.r.IntN(0xffff))
	}
	return fmt.Sprintf("2a02:%x:%x:%x:%x:%x:%x:%x", g.r.IntN(0xffff), g.r.IntN(0xffff), g.r.IntN(0xffff), g.r.IntN(0xffff), g.r.IntN(0xffff), g.r.IntN(0xffff), 1+g.r.IntN(0xffff))
}

// value returns a placeholder's text and its entity ("" for hard negatives and filler).
func (g *gen) value(name, lang string) (string, string) {
	region := regions[lang]
	switch name {
	case "pan":
		return g.panFormatted(), "pan"
	case "pan_plain":
		return g.card(), "pan"
	case "ssn":
		a, b, c := g.ssn()
		return a + "-" + b + "-" + c, "ssn"
	case "ssn_plain":
		a, b, c := g.ssn()
		return a + b + c, "ssn"
	case "email":
		return g.email(), "email"
	case "phone":
		return g.phone(region, g.r.IntN(3) == 0), "phone"
	case "phone_intl":
		return g.phone(g.pick("US", "DE", "FR", "ES", "GB", "IT"), true), "phone"
	case "iban":
		return g.iban(), "iban"
	case "ip4":
		return g.ip4(), "ip"
	case "ip6":
		return g.ip6(), "ip"
	// Hard negatives.
	case "luhn": // a Luhn-valid number with a card prefix, used where context says it is not a card
		return g.card(), ""
	case "order":
		return g.pick("", "A", "ORD-", "#") + g.digits(6+g.r.IntN(5)), ""
	case "track":
		return g.pick("1Z"+strings.ToUpper(fmt.Sprintf("%x", g.r.Uint32()))+g.digits(8), g.digits(20), "JJD"+g.digits(16), g.digits(12)), ""
	case "ts":
		return fmt.Sprintf("2024-%02d-%02d %02d:%02d:%02d", 1+g.r.IntN(12), 1+g.r.IntN(28), g.r.IntN(24), g.r.IntN(60), g.r.IntN(60)), ""
	case "time":
		return fmt.Sprintf("%02d:%02d", g.r.IntN(24), g.r.IntN(60)), ""
	case "ver":
		return fmt.Sprintf("%d.%d.%d.%d", g.r.IntN(12), g.r.IntN(30), g.r.IntN(100), g.r.IntN(3000)), ""
	case "semver":
		return fmt.Sprintf("v%d.%d.%d", g.r.IntN(12), g.r.IntN(30), g.r.IntN(100)), ""
	case "price":
		return g.pick(fmt.Sprintf("%d,%02d", g.r.IntN(5000), g.r.IntN(100)), fmt.Sprintf("%d.%03d,%02d", 1+g.r.IntN(99), g.r.IntN(1000), g.r.IntN(100)), fmt.Sprintf("%d.%02d", g.r.IntN(900), g.r.IntN(100))), ""
	case "bigamount": // phone-like: seven or more digits in groups
		return fmt.Sprintf("%d %03d %03d", 1+g.r.IntN(99), g.r.IntN(1000), g.r.IntN(1000)), ""
	case "date":
		d, m, y := 1+g.r.IntN(28), 1+g.r.IntN(12), 1990+g.r.IntN(35)
		return g.pick(fmt.Sprintf("%02d.%02d.%d", d, m, y), fmt.Sprintf("%02d/%02d/%d", m, d, y), fmt.Sprintf("%d-%02d-%02d", y, m, d), fmt.Sprintf("%02d-%02d-%d", d, m, y)), ""
	case "n":
		return fmt.Sprint(1 + g.r.IntN(500)), ""
	case "name":
		return strings.Title(g.pick(firstNames...)), ""
	}
	panic("unknown placeholder " + name)
}

package textscan

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Entity is a kind of personal data the scanner finds.
type Entity uint8

// The entities, in order of specificity (a later one wins an overlap of equal length).
const (
	Phone Entity = iota + 1
	SSN
	IP
	Email
	PAN
	IBAN
	numEntities = iota
)

var entityNames = [...]string{Phone: "phone", SSN: "ssn", IP: "ip", Email: "email", PAN: "pan", IBAN: "iban"}

// String is the entity's name as used in the API: pan, ssn, email, phone, iban, ip.
func (e Entity) String() string {
	if e == 0 || int(e) >= len(entityNames) {
		return fmt.Sprintf("entity(%d)", e)
	}
	return entityNames[e]
}

// ParseEntity returns the entity named s (case-sensitive API names).
func ParseEntity(s string) (Entity, bool) {
	for e := Entity(1); e <= numEntities; e++ {
		if entityNames[e] == s {
			return e, true
		}
	}
	return 0, false
}

// Entities lists every entity, in name order of the API docs.
func Entities() []Entity { return []Entity{PAN, SSN, Email, Phone, IBAN, IP} }

// Set is a set of entities; the zero Set means all of them.
type Set uint8

// SetOf returns the set of es.
func SetOf(es ...Entity) Set {
	var s Set
	for _, e := range es {
		s |= 1 << e
	}
	return s
}

// Has reports whether e is in s (always, for the zero Set).
func (s Set) Has(e Entity) bool { return s == 0 || s&(1<<e) != 0 }

// DefaultMinConfidence is the threshold used when Options.MinConfidence is zero.
const DefaultMinConfidence = 0.5

// DefaultRegion is the region national phone numbers are read in when Options.DefaultRegion
// is empty.
const DefaultRegion = "US"

// ErrInvalidOptions is wrapped by New's errors.
var ErrInvalidOptions = errors.New("invalid scan options")

// Options configure a Scanner.
type Options struct {
	Entities      Set     // which entities to report; zero: all
	MinConfidence float64 // report findings at or above this, in [0, 1]; zero: DefaultMinConfidence
	DefaultRegion string  // ISO 3166 region for national phone numbers ("DE"); empty: DefaultRegion
}

// Finding is one piece of personal data in a text: bytes [Start, End) of the text.
type Finding struct {
	Entity     Entity
	Start, End int
	Confidence float64
}

// Span is a place in a text where a token may be (Tokens): bytes [Start, End).
type Span struct{ Start, End int }

// Scanner finds personal data in texts. It is immutable and safe for concurrent use.
type Scanner struct {
	set    Set
	min    float64
	region string
	cc     int    // the region's country calling code
	ndd    string // the region's national (trunk) prefix, "" when it has none
}

// New returns a Scanner for opts, or an error wrapping ErrInvalidOptions.
func New(opts Options) (*Scanner, error) {
	s := &Scanner{set: opts.Entities, min: opts.MinConfidence, region: strings.ToUpper(opts.DefaultRegion)}
	if math.IsNaN(s.min) || s.min < 0 || s.min > 1 {
		return nil, fmt.Errorf("%w: min_confidence must be between 0 and 1", ErrInvalidOptions)
	}
	if s.min == 0 {
		s.min = DefaultMinConfidence
	}
	if s.region == "" {
		s.region = DefaultRegion
	}
	if len(s.region) != 2 {
		return nil, fmt.Errorf("%w: default_region must be a two-letter region code", ErrInvalidOptions)
	}
	if s.cc = phonenumbers.GetCountryCodeForRegion(s.region); s.cc == 0 {
		return nil, fmt.Errorf("%w: default_region is not a known phone numbering region", ErrInvalidOptions)
	}
	s.ndd = phonenumbers.GetNddPrefixForRegion(s.region, true)
	return s, nil
}

// Scan returns the personal data found in text, in order, without overlaps, at or above the
// minimum confidence. Its cost is linear in len(text).
func (s *Scanner) Scan(text string) []Finding {
	sc := scan{s: s, text: text}
	sc.run()
	return sc.resolve()
}

// Tokens returns the places in text shaped like a token of the templates the scanner
// tokenizes with (pan, ssn, phone, email, iban, opaque), in order of Start and, for equal
// starts, longest first. They may overlap: the caller looks them up and keeps the first
// that is a token. Its cost is linear in len(text).
func (s *Scanner) Tokens(text string) []Span {
	sc := scan{s: s, text: text, tokens: true}
	sc.run()
	slices.SortFunc(sc.spans, func(a, b Span) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return b.End - a.End
	})
	return slices.Compact(sc.spans)
}

// resolve drops overlapped and low-confidence findings: of two that overlap, the longer
// wins, then the more specific entity, then the more confident.
func (sc *scan) resolve() []Finding {
	fs := sc.found[:0]
	for _, f := range sc.found {
		if f.Confidence >= sc.s.min && sc.s.set.Has(f.Entity) {
			fs = append(fs, f)
		}
	}
	if len(fs) < 2 {
		return fs
	}
	slices.SortStableFunc(fs, func(a, b Finding) int { return a.Start - b.Start })
	out := make([]Finding, 0, len(fs))
	for i := 0; i < len(fs); {
		// A cluster: findings that overlap, directly or through each other. Candidates
		// overlap only within one candidate area, so clusters are small.
		j, end := i+1, fs[i].End
		for j < len(fs) && fs[j].Start < end {
			end = max(end, fs[j].End)
			j++
		}
		out = appendBest(out, fs[i:j])
		i = j
	}
	return out
}

// appendBest appends the winners of one cluster to out, in order of Start.
func appendBest(out []Finding, cl []Finding) []Finding {
	if len(cl) == 1 {
		return append(out, cl[0])
	}
	order := slices.Clone(cl)
	slices.SortStableFunc(order, better)
	n := len(out)
	for _, f := range order {
		free := true
		for _, k := range out[n:] {
			if k.Start < f.End && f.Start < k.End {
				free = false
				break
			}
		}
		if free {
			out = append(out, f)
		}
	}
	slices.SortFunc(out[n:], func(a, b Finding) int { return a.Start - b.Start })
	return out
}

// better orders findings for overlap resolution: longer, then more specific, then more
// confident, then earlier.
func better(a, b Finding) int {
	if la, lb := a.End-a.Start, b.End-b.Start; la != lb {
		return lb - la
	}
	if a.Entity != b.Entity {
		return int(b.Entity) - int(a.Entity)
	}
	switch {
	case a.Confidence > b.Confidence:
		return -1
	case a.Confidence < b.Confidence:
		return 1
	}
	return a.Start - b.Start
}

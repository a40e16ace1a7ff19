package template

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/tokenvault/tokenvault/crypto/fpe"
)

// MinFreeSpace is log10 of the fewest possible tokens that a Definition keeping characters in
// clear (KeepPrefix, KeepSuffix) must leave for the shortest value it accepts, and that a
// date Definition's year range must hold: 10^3. New refuses definitions below it. Values
// whose own space is small (a one-letter name, a four-digit code) are still accepted at run
// time: the vault's probing finds a free token or reports the space as exhausted.
const MinFreeSpace = 3

// Luhn rules for pan templates (Definition.Luhn).
const (
	LuhnInvalid = "invalid" // every token fails the Luhn check (default): never a real card
	LuhnValid   = "valid"   // every token passes the Luhn check, for strict vendor validators
	LuhnAny     = "any"     // no constraint
)

// Keys supplies keyed primitives for ONE (domain, template) pair. The vault derives a
// separate key per domain, template, alphabet and length and caches the ciphers; a template
// never sees key bytes. FF1 must return a cipher over exactly the runes of alphabet (as
// fpe.NewFF1WithAlphabet does) for inputs of the given length.
type Keys interface {
	FF1(alphabet string, length int) (*fpe.FF1, error)
}

// Template validates values of one kind and produces format-preserving tokens for them.
// Implementations are immutable and safe for concurrent use.
type Template interface {
	// Name is the name used in tokenize requests.
	Name() string
	// Base is the built-in template this one is built on; it equals Name for built-ins.
	Base() string
	// Mode is Deterministic or Random.
	Mode() Mode
	// Definition returns the template's normalized definition (defaults filled in).
	// New(t.Definition()) builds an equivalent template (for custom templates).
	Definition() Definition

	// Check validates value. On failure it returns a *ValueError (wrapping ErrInvalidValue)
	// that names the rule that failed, never the value or any part of it.
	Check(value string) error

	// Candidate returns candidate token number attempt (0, 1, 2, ...) for value. In
	// deterministic mode, when the value's free space holds at least 10^6 values, it is
	// derived with FF1 from k, with the attempt in the tweak: the same (keys, value,
	// attempt) always gives the same candidate. In random mode, or for a smaller free space,
	// it is drawn uniformly from rnd (crypto/rand when nil) and k may be nil. Every
	// candidate keeps the template's format and guarantees (Check accepts it; pan tokens
	// obey the Luhn rule). Candidate is not injective: the vault skips candidates that equal
	// the value or are taken. An invalid value gives the same error as Check.
	Candidate(k Keys, value string, attempt int, rnd io.Reader) (string, error)

	// Mask returns the masked form of value for "masked" reveals: the characters the token
	// keeps plus a few more (see each template), the rest replaced by '*'. An invalid value
	// gives "****".
	Mask(value string) string

	// FreeSpace returns log10 of the number of distinct tokens for a value of the given
	// length, counted in the template's length unit (digits for pan, ssn, phone and digits;
	// characters for alnum and iban; letters for name; local-part characters for email;
	// ignored for date and opaque), for the least favourable value of that length (a
	// three-digit country code, all-digit alnum and iban characters, no punctuation). ok
	// is false for a length the template does not accept. With no free character left it
	// returns math.Inf(-1).
	FreeSpace(length int) (log10 float64, ok bool)

	// FreeSpaceOf returns log10 of the number of distinct tokens Candidate can produce for
	// value, exactly: the size of the space the vault probes.
	FreeSpaceOf(value string) (float64, error)
}

// Definition is a custom template, stored by the vault as JSON. The zero value of each
// option means "not set"; Definition() returns it with the base's defaults filled in.
type Definition struct {
	// Name is the template's name: [a-z][a-z0-9_-]{0,62}, not a built-in name.
	Name string `json:"name"`
	// Base is the built-in template this one refines (pan, ssn, email, ...).
	Base string `json:"base"`
	// Mode is Deterministic (default) or Random; JSON "deterministic" or "random".
	Mode Mode `json:"mode"`

	// KeepPrefix and KeepSuffix are the characters kept in clear at each end, counted in
	// the base's unit: digits for pan and ssn (whole fields: prefix 0, 3 or 5, suffix 0 or
	// 4), digits after the country code for phone, BBAN characters for iban, characters for
	// digits and alnum. Other bases refuse them. A custom pan keeps exactly KeepSuffix last
	// digits (the built-in pan keeps 4).
	KeepPrefix int `json:"keep_prefix,omitempty"`
	KeepSuffix int `json:"keep_suffix,omitempty"`

	// Luhn is for base pan only: LuhnInvalid (default), LuhnValid or LuhnAny.
	Luhn string `json:"luhn,omitempty"`

	// Alphabet is for bases digits and alnum only: the characters free positions of tokens
	// are drawn from (at least 2 distinct ASCII characters; digits only for base digits,
	// ASCII letters and digits for alnum). It replaces alnum's class-per-position rule.
	Alphabet string `json:"alphabet,omitempty"`

	// MinLength and MaxLength narrow the accepted length, in the base's unit, for bases
	// pan (digits, 12..19), phone (digits, 7..15), digits and alnum (characters, 1..64).
	// Use MinLength to make room for KeepPrefix/KeepSuffix (see MinFreeSpace).
	MinLength int `json:"min_length,omitempty"`
	MaxLength int `json:"max_length,omitempty"`

	// TokenizeDomain is for base email only: tokenize the domain's labels too (all but the
	// top-level one); by default the domain is kept.
	TokenizeDomain bool `json:"tokenize_domain,omitempty"`

	// KeepYear is for base date only: tokens keep the value's year (365 or 366 possible
	// tokens per year, so candidates are always random).
	KeepYear bool `json:"keep_year,omitempty"`
	// MinYear and MaxYear are for base date only: the years accepted in values and used in
	// tokens (default 1..9999). A narrower range keeps tokens plausible (e.g. 1900..2099).
	MinYear int `json:"min_year,omitempty"`
	MaxYear int `json:"max_year,omitempty"`

	// TTL, when set, makes every token of this template expire this long after it is issued
	// (an item's own TTL wins). The template itself does not use it; the vault does.
	TTL time.Duration `json:"ttl,omitempty"`
}

// builtinOrder lists the built-in templates in documentation order.
var builtinOrder = []string{"pan", "ssn", "email", "phone", "name", "date", "iban", "digits", "alnum", "opaque"}

var builtins = func() map[string]Template {
	defs := map[string]Definition{
		"pan": {KeepSuffix: 4, Luhn: LuhnInvalid},
	}
	m := make(map[string]Template, len(builtinOrder))
	for _, n := range builtinOrder {
		d := defs[n]
		d.Name, d.Base = n, n
		t, err := build(d)
		if err != nil {
			panic("template: built-in " + n + ": " + err.Error())
		}
		m[n] = t
	}
	return m
}()

// Builtin returns the built-in template with the given name.
func Builtin(name string) (Template, bool) {
	t, ok := builtins[name]
	return t, ok
}

// BuiltinNames returns the names of the built-in templates, in documentation order: pan,
// ssn, email, phone, name, date, iban, digits, alnum, opaque.
func BuiltinNames() []string {
	return append([]string(nil), builtinOrder...)
}

// New validates a custom template definition and returns its template. Errors are
// *DefinitionError values wrapping ErrInvalidDefinition (and ErrUnknownTemplate for an
// unknown base) whose message names the problem.
func New(def Definition) (Template, error) {
	if !nameRE.MatchString(def.Name) {
		return nil, defErr("", "name must match [a-z][a-z0-9_-]{0,62}")
	}
	if _, ok := builtins[def.Name]; ok {
		return nil, defErr(def.Name, "name collides with builtin")
	}
	if def.TTL < 0 || def.TTL > 10*365*24*time.Hour {
		return nil, defErr(def.Name, "ttl must be between 0 (no expiry) and 10 years")
	}
	return build(def)
}

// build validates def (all but the name rules) and constructs the template.
func build(def Definition) (Template, error) {
	bad := func(problem string) error { return defErr(def.Name, problem) }
	if def.Base == "" {
		return nil, bad("base is required")
	}
	if _, ok := builtinIndex(def.Base); !ok {
		e := defErr(def.Name, fmt.Sprintf("base %q is not a builtin template (one of %s)", def.Base, strings.Join(builtinOrder, ", ")))
		e.unknown = true
		return nil, e
	}
	if def.Mode != Deterministic && def.Mode != Random {
		return nil, bad("mode must be deterministic or random")
	}
	if def.KeepPrefix < 0 {
		return nil, bad("keep-prefix must not be negative")
	}
	if def.KeepSuffix < 0 {
		return nil, bad("keep-suffix must not be negative")
	}
	// No base keeps more than 64 characters; capping here also keeps the arithmetic below
	// from overflowing.
	if def.KeepPrefix > 64 {
		return nil, bad(fmt.Sprintf("keep-prefix %d leaves no free characters", def.KeepPrefix))
	}
	if def.KeepSuffix > 64 {
		return nil, bad(fmt.Sprintf("keep-suffix %d leaves no free characters", def.KeepSuffix))
	}
	b := def.Base
	type opt struct {
		set   bool
		name  string
		bases []string
	}
	for _, o := range []opt{
		{def.KeepPrefix != 0, "keep-prefix", []string{"pan", "ssn", "phone", "iban", "digits", "alnum"}},
		{def.KeepSuffix != 0, "keep-suffix", []string{"pan", "ssn", "phone", "iban", "digits", "alnum"}},
		{def.Luhn != "", "luhn", []string{"pan"}},
		{def.Alphabet != "", "alphabet", []string{"digits", "alnum"}},
		{def.MinLength != 0, "min-length", []string{"pan", "phone", "digits", "alnum"}},
		{def.MaxLength != 0, "max-length", []string{"pan", "phone", "digits", "alnum"}},
		{def.TokenizeDomain, "tokenize-domain", []string{"email"}},
		{def.KeepYear, "keep-year", []string{"date"}},
		{def.MinYear != 0, "min-year", []string{"date"}},
		{def.MaxYear != 0, "max-year", []string{"date"}},
	} {
		if o.set && !contains(o.bases, b) {
			if len(o.bases) == 1 {
				return nil, bad(o.name + " applies only to base " + o.bases[0])
			}
			return nil, bad(o.name + " applies only to bases " + strings.Join(o.bases, ", "))
		}
	}

	// Length limits.
	if lim, ok := lengthLimits[b]; ok {
		if def.MinLength == 0 {
			def.MinLength = lim[0]
		}
		if def.MaxLength == 0 {
			def.MaxLength = lim[1]
		}
		if def.MinLength < lim[0] || def.MinLength > lim[1] {
			return nil, bad(fmt.Sprintf("min-length %d is outside %d..%d for base %s", def.MinLength, lim[0], lim[1], b))
		}
		if def.MaxLength < lim[0] || def.MaxLength > lim[1] {
			return nil, bad(fmt.Sprintf("max-length %d is outside %d..%d for base %s", def.MaxLength, lim[0], lim[1], b))
		}
		if def.MinLength > def.MaxLength {
			return nil, bad(fmt.Sprintf("min-length %d exceeds max-length %d", def.MinLength, def.MaxLength))
		}
	}

	var t Template
	c := common{def: def}
	switch b {
	case "pan":
		switch def.Luhn {
		case "":
			c.def.Luhn = LuhnInvalid
		case LuhnInvalid, LuhnValid, LuhnAny:
		default:
			return nil, bad(`luhn must be "invalid", "valid" or "any"`)
		}
		t = &panT{common: c}
	case "ssn":
		if def.KeepPrefix != 0 && def.KeepPrefix != 3 && def.KeepPrefix != 5 {
			return nil, bad("keep-prefix for base ssn must be 0, 3 or 5 (whole fields)")
		}
		if def.KeepSuffix != 0 && def.KeepSuffix != 4 {
			return nil, bad("keep-suffix for base ssn must be 0 or 4 (whole fields)")
		}
		t = &ssnT{common: c}
	case "email":
		t = &emailT{common: c}
	case "phone":
		t = &phoneT{common: c}
	case "name":
		t = &nameT{common: c}
	case "date":
		if def.MinYear == 0 {
			c.def.MinYear = 1
		}
		if def.MaxYear == 0 {
			c.def.MaxYear = 9999
		}
		if c.def.MinYear < 1 || c.def.MinYear > 9999 {
			return nil, bad(fmt.Sprintf("min-year %d is outside 1..9999", c.def.MinYear))
		}
		if c.def.MaxYear < 1 || c.def.MaxYear > 9999 {
			return nil, bad(fmt.Sprintf("max-year %d is outside 1..9999", c.def.MaxYear))
		}
		if c.def.MinYear > c.def.MaxYear {
			return nil, bad(fmt.Sprintf("min-year %d exceeds max-year %d", c.def.MinYear, c.def.MaxYear))
		}
		dt := newDate(c)
		if !def.KeepYear && dt.days < 1000 {
			return nil, bad(fmt.Sprintf("years %d..%d leave only %d possible dates (minimum %d)", c.def.MinYear, c.def.MaxYear, dt.days, 1000))
		}
		t = dt
	case "iban":
		t = &ibanT{common: c}
	case "digits", "alnum":
		if def.Alphabet != "" {
			if err := checkAlphabet(b, def.Alphabet); err != "" {
				return nil, bad(err)
			}
		}
		t = &charsT{common: c, alnum: b == "alnum"}
	case "opaque":
		t = &opaqueT{common: c}
	}
	t.(interface{ core() *common }).core().self = t.(planner)
	if def.KeepPrefix > 0 || def.KeepSuffix > 0 {
		if p := keepProblem(t, c.def); p != "" {
			return nil, bad(p)
		}
	}
	return t, nil
}

// lengthLimits are the base limits of the bases that take MinLength/MaxLength.
var lengthLimits = map[string][2]int{
	"pan":    {12, 19},
	"phone":  {7, 15},
	"digits": {1, 64},
	"alnum":  {1, 64},
}

// unitNames names the length unit in definition error messages.
var unitNames = map[string]string{
	"pan": "digit", "ssn": "digit", "phone": "digit", "iban": "character", "digits": "digit", "alnum": "character",
}

// keepProblem checks that KeepPrefix/KeepSuffix leave at least 10^MinFreeSpace tokens for
// the shortest accepted value.
func keepProblem(t Template, def Definition) string {
	minL, maxL := 9, 9 // ssn
	switch def.Base {
	case "iban":
		minL, maxL = 15, 34
	case "pan", "phone", "digits", "alnum":
		minL, maxL = def.MinLength, def.MaxLength
	}
	what := fmt.Sprintf("keep-prefix %d", def.KeepPrefix)
	verb := "leaves"
	switch {
	case def.KeepPrefix == 0:
		what = fmt.Sprintf("keep-suffix %d", def.KeepSuffix)
	case def.KeepSuffix != 0:
		what += fmt.Sprintf(" and keep-suffix %d", def.KeepSuffix)
		verb = "leave"
	}
	if s, _ := t.FreeSpace(maxL); math.IsInf(s, -1) {
		return what + " " + verb + " no free characters"
	}
	s, _ := t.FreeSpace(minL)
	if s >= MinFreeSpace-1e-9 {
		return ""
	}
	msg := fmt.Sprintf("%s %s only %s possible tokens for %d-%s values (minimum 1000)", what, verb, countString(s), minL, unitNames[def.Base])
	if _, ok := lengthLimits[def.Base]; ok {
		for l := minL + 1; l <= maxL; l++ {
			if s, _ := t.FreeSpace(l); s >= MinFreeSpace-1e-9 {
				return msg + fmt.Sprintf("; raise min-length to %d", l)
			}
		}
	}
	return msg
}

// countString formats 10^s for small s.
func countString(s float64) string {
	if math.IsInf(s, -1) {
		return "0"
	}
	return fmt.Sprintf("%.0f", math.Pow(10, s))
}

func checkAlphabet(base, a string) string {
	if len(a) < 2 {
		return "alphabet needs at least 2 characters"
	}
	var seen [256]bool
	for i := 0; i < len(a); i++ {
		c := a[i]
		switch {
		case base == "digits" && !isDigit(c):
			return "alphabet for base digits may contain only 0-9"
		case base == "alnum" && !isAlnum(c):
			return "alphabet for base alnum may contain only ASCII letters and digits"
		}
		if seen[c] {
			return "alphabet has a duplicate character"
		}
		seen[c] = true
	}
	return ""
}

func builtinIndex(name string) (int, bool) {
	for i, n := range builtinOrder {
		if n == name {
			return i, true
		}
	}
	return 0, false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// common holds what every template shares; self is the concrete template.
type common struct {
	def  Definition
	self planner
}

func (c *common) core() *common { return c }

// Check validates value.
func (c *common) Check(value string) error {
	p := getPlan(c.self, true)
	if err := c.self.plan(p, value); err != nil {
		p.releaseFailed()
		return err
	}
	p.release()
	return nil
}

// Candidate returns candidate number attempt for value.
func (c *common) Candidate(k Keys, value string, attempt int, rnd io.Reader) (string, error) {
	if attempt < 0 {
		return "", fmt.Errorf("template %s: negative attempt", c.def.Name)
	}
	p := getPlan(c.self, false)
	if err := c.self.plan(p, value); err != nil {
		p.releaseFailed()
		return "", err
	}
	tok, err := c.candidate(p, k, attempt, rnd)
	p.release()
	return tok, err
}

// FreeSpaceOf returns log10 of the number of tokens Candidate can produce for value.
func (c *common) FreeSpaceOf(value string) (float64, error) {
	p := getPlan(c.self, true)
	if err := c.self.plan(p, value); err != nil {
		p.releaseFailed()
		return 0, err
	}
	log10 := p.log10
	p.release()
	return log10, nil
}

func (c *common) Name() string           { return c.def.Name }
func (c *common) Base() string           { return c.def.Base }
func (c *common) Mode() Mode             { return c.def.Mode }
func (c *common) Definition() Definition { return c.def }

// fail returns the error for a failed rule.
func (c *common) fail(rule string) error { return &ValueError{Template: c.def.Name, Rule: rule} }

// pre applies the checks every template starts with: a byte limit, then UTF-8 validity.
func (c *common) pre(value string, maxBytes int) error {
	if len(value) > maxBytes {
		return c.fail(fmt.Sprintf("longer than %d bytes", maxBytes))
	}
	if !validUTF8(value) {
		return c.fail("not valid UTF-8")
	}
	return nil
}

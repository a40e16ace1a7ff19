package template

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// fuzzTemplate fuzzes one built-in template: Check, Mask, Candidate and FreeSpaceOf must
// never panic; an invalid value gets a *ValueError that does not contain it and the mask
// "****"; a valid value's candidates (deterministic attempts 0 and 1, and a random one from
// the same definition in random mode) pass Check
// and keep the format.
func fuzzTemplate(f *testing.F, name string) {
	tm := mustBuiltin(name)
	var vocab strings.Builder // the rule texts, which an input may legitimately match
	vocab.WriteString(name + ": ")
	for _, c := range checkTables[name] {
		f.Add(c.value)
		vocab.WriteString(c.rule + "\n")
	}
	r := rand.New(rand.NewPCG(5, 5))
	gen := genFor(tm)
	for range 20 {
		f.Add(gen(r))
	}
	k := newKeys("fuzz", name)
	def := tm.Definition()
	def.Name, def.Mode = name+"_random", Random
	rnd, err := New(def)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v string) {
		err := tm.Check(v)
		mask := tm.Mask(v)
		if err != nil {
			var ve *ValueError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidValue) || ve.Template != name {
				t.Fatalf("Check error %#v is not a ValueError of %s", err, name)
			}
			if msg := err.Error(); len(v) >= 6 && strings.Contains(msg, v) && !strings.Contains(vocab.String(), v) {
				t.Fatalf("error %q contains the value", msg)
			}
			if mask != "****" {
				t.Fatalf("Mask(invalid) = %q", mask)
			}
			if _, cerr := tm.Candidate(k, v, 0, nil); cerr == nil {
				t.Fatal("Candidate accepted an invalid value")
			}
			return
		}
		if _, err := tm.FreeSpaceOf(v); err != nil {
			t.Fatal(err)
		}
		for i, cand := range []func() (string, error){
			func() (string, error) { return tm.Candidate(k, v, 0, nil) },
			func() (string, error) { return tm.Candidate(k, v, 1, nil) },
			func() (string, error) { return rnd.Candidate(nil, v, 0, rand.NewChaCha8([32]byte{1})) },
		} {
			c, err := cand()
			if err != nil {
				t.Fatalf("candidate %d: %v", i, err)
			}
			if err := tm.Check(c); err != nil {
				t.Fatalf("Check(candidate %d %q) = %v", i, c, err)
			}
			if err := sameFormat(tm, v, c); err != nil {
				t.Fatalf("candidate %d %q: %v", i, c, err)
			}
		}
	})
}

func FuzzCheckPan(f *testing.F)    { fuzzTemplate(f, "pan") }
func FuzzCheckSSN(f *testing.F)    { fuzzTemplate(f, "ssn") }
func FuzzCheckEmail(f *testing.F)  { fuzzTemplate(f, "email") }
func FuzzCheckPhone(f *testing.F)  { fuzzTemplate(f, "phone") }
func FuzzCheckName(f *testing.F)   { fuzzTemplate(f, "name") }
func FuzzCheckDate(f *testing.F)   { fuzzTemplate(f, "date") }
func FuzzCheckIBAN(f *testing.F)   { fuzzTemplate(f, "iban") }
func FuzzCheckDigits(f *testing.F) { fuzzTemplate(f, "digits") }
func FuzzCheckAlnum(f *testing.F)  { fuzzTemplate(f, "alnum") }
func FuzzCheckOpaque(f *testing.F) { fuzzTemplate(f, "opaque") }

// FuzzNew checks that New never panics, that its errors are DefinitionErrors, and that the
// templates it accepts produce valid candidates for generated values.
func FuzzNew(f *testing.F) {
	f.Add("card", "pan", 0, 6, 4, "", "", 14, 0, false, false, 0, 0)
	f.Add("card", "pan", 1, 0, 4, "valid", "", 0, 0, false, false, 0, 0)
	f.Add("s", "ssn", 0, 5, 0, "", "", 0, 0, false, false, 0, 0)
	f.Add("t", "phone", 0, 3, 1, "", "", 12, 15, false, false, 0, 0)
	f.Add("m", "email", 0, 0, 0, "", "", 0, 0, true, false, 0, 0)
	f.Add("d", "date", 0, 0, 0, "", "", 0, 0, false, true, 1990, 1999)
	f.Add("i", "iban", 0, 8, 0, "", "", 0, 0, false, false, 0, 0)
	f.Add("x", "digits", 0, 1, 2, "", "13579", 6, 10, false, false, 0, 0)
	f.Add("y", "alnum", 1, 0, 0, "", "ABC", 0, 0, false, false, 0, 0)
	f.Add("z", "name", 0, 0, 0, "", "", 0, 0, false, false, 0, 0)
	f.Fuzz(func(t *testing.T, name, base string, mode, kp, ks int, luhn, alphabet string, minL, maxL int, td, ky bool, minY, maxY int) {
		def := Definition{Name: name, Base: base, Mode: Mode(mode), KeepPrefix: kp, KeepSuffix: ks, Luhn: luhn,
			Alphabet: alphabet, MinLength: minL, MaxLength: maxL, TokenizeDomain: td, KeepYear: ky, MinYear: minY, MaxYear: maxY}
		tm, err := New(def)
		if err != nil {
			var de *DefinitionError
			if !errors.As(err, &de) || !errors.Is(err, ErrInvalidDefinition) {
				t.Fatalf("New error %#v", err)
			}
			return
		}
		if tm.Definition().Name != name {
			t.Fatal("name changed")
		}
		gen := genFor(tm)
		r := rand.New(rand.NewPCG(uint64(kp), uint64(ks)))
		k := newKeys("fuzz", name)
		for i := range 5 {
			v := gen(r)
			if err := tm.Check(v); err != nil {
				continue // the generators do not know every option
			}
			c, err := tm.Candidate(k, v, i, rand.NewChaCha8([32]byte{byte(i)}))
			if err != nil {
				t.Fatalf("Candidate(%q): %v", v, err)
			}
			if err := tm.Check(c); err != nil {
				t.Fatalf("Check(candidate %q of %q) = %v", c, v, err)
			}
			if err := sameFormat(tm, v, c); err != nil {
				t.Fatalf("candidate %q of %q: %v", c, v, err)
			}
			_ = tm.Mask(v)
		}
	})
}

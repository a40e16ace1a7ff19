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

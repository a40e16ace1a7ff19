package template

import (
	"strings"
	"testing"
)

// benchCases are the values the benchmarks tokenize, one per built-in template (digits
// "1234" is below the FF1 minimum and drawn at random; digits_16 takes the FF1 path).
var benchCases = []struct{ name, tmpl, value string }{
	{"pan", "pan", "4111 1111 1111 1111"},
	{"ssn", "ssn", "123-45-6789"},
	{"email", "email", "john.doe@example.com"},
	{"phone", "phone", "+1 (415) 555-0123"},
	{"name", "name", "José Ørsted-Åberg"},
	{"date", "date", "1984-06-15"},
	{"iban", "iban", "GB29 NWBK 6016 1331 9268 19"},
	{"digits", "digits", "1234"},
	{"digits_16", "digits", "1234567890123456"},
	{"alnum", "alnum", strings.Repeat("aB3", 21)},
	{"opaque", "opaque", strings.Repeat("x", 1000)},
}

// benchTemplates runs op once an iteration (i counts them) for each of benchCases, with
// the case's built-in template and test keys.
func benchTemplates(b *testing.B, op func(tm Template, k Keys, value string, i int) error) {
	for _, c := range benchCases {
		tm := mustBuiltin(c.tmpl)
		k := newKeys("bench", c.tmpl)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := op(tm, k, c.value, i); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCandidate(b *testing.B) {
	benchTemplates(b, func(tm Template, k Keys, value string, i int) error {
		_, err := tm.Candidate(k, value, i%8, nil)
		return err
	})
}

func BenchmarkCheck(b *testing.B) {
	benchTemplates(b, func(tm Template, _ Keys, value string, _ int) error {
		return tm.Check(value)
	})
}

func BenchmarkFreeSpaceOf(b *testing.B) {
	benchTemplates(b, func(tm Template, _ Keys, value string, _ int) error {
		_, err := tm.FreeSpaceOf(value)
		return err
	})
}

// BenchmarkItem is what the vault did per deterministic item before Prepare: Check,
// FreeSpaceOf and the first candidate, each planning the value.
func BenchmarkItem(b *testing.B) {
	benchTemplates(b, func(tm Template, k Keys, value string, _ int) error {
		return itemDirect(tm, k, value)
	})
}

// BenchmarkItemPrepared is BenchmarkItem through Prepare, as the vault does now: the value is
// planned once for the validation, the free space and the first candidate.
func BenchmarkItemPrepared(b *testing.B) {
	benchTemplates(b, func(tm Template, k Keys, value string, _ int) error {
		return itemPrepared(tm, k, value)
	})
}

func itemDirect(tm Template, k Keys, value string) error {
	if err := tm.Check(value); err != nil {
		return err
	}
	if _, err := tm.FreeSpaceOf(value); err != nil {
		return err
	}
	_, err := tm.Candidate(k, value, 0, nil)
	return err
}

func itemPrepared(tm Template, k Keys, value string) error {
	pv, err := Prepare(tm, value)
	if err != nil {
		return err
	}
	defer pv.Release()
	if _, err := pv.FreeSpace(); err != nil {
		return err
	}
	_, err = pv.Candidate(k, 0, nil)
	return err
}

// BenchmarkFF1 is the unit of cost: one FF1 encryption under a 16-byte tweak with the test
// keys, as the first candidate of a pan (16 digits: what pan, ssn, email and digits_16 pay
// at least once) and of opaque (22 base62 characters, beyond crypto/fpe's uint64 path).
func BenchmarkFF1(b *testing.B) {
	for _, c := range []struct{ name, alphabet, x string }{
		{"digits16", digitChars, "4111111111111111"},
		{"base62x22", base62Chars, "0123456789ABCDEFGHIJab"},
	} {
		b.Run(c.name, func(b *testing.B) {
			f, err := newKeys("bench", "pan").FF1(c.alphabet, len(c.x))
			if err != nil {
				b.Fatal(err)
			}
			tw := tweak([]byte("bench"), 0, 0)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Encrypt(tw, c.x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

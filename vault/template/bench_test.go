package template

import (
	"strings"
	"testing"
)

func BenchmarkCandidate(b *testing.B) {
	for _, c := range []struct{ tmpl, value string }{
		{"pan", "4111 1111 1111 1111"},
		{"ssn", "123-45-6789"},
		{"email", "john.doe@example.com"},
		{"phone", "+1 (415) 555-0123"},
		{"name", "José Ørsted-Åberg"},
		{"date", "1984-06-15"},
		{"iban", "GB29 NWBK 6016 1331 9268 19"},
		{"digits", "1234"},
		{"alnum", strings.Repeat("aB3", 21)},
		{"opaque", strings.Repeat("x", 1000)},
	} {
		tm := mustBuiltin(c.tmpl)
		k := newKeys("bench", c.tmpl)
		b.Run(c.tmpl, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := tm.Candidate(k, c.value, i%8, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package loadgen

import (
	"math/rand/v2"
	"testing"
)

func TestLuhnCheckDigit(t *testing.T) {
	for payload, want := range map[string]byte{"411111111111111": '1', "555555555555444": '4', "37828224631000": '5', "7992739871": '3'} {
		if got := luhnCheckDigit([]byte(payload)); got != want {
			t.Errorf("luhnCheckDigit(%q) = %c, want %c", payload, got, want)
		}
	}
}

func TestIBANCheck(t *testing.T) {
	// DE89 3704 0044 0532 0130 00, the standard example.
	if got := ibanCheck([]byte("370400440532013000"), "DE"); got != 89 {
		t.Errorf("ibanCheck(DE…370400440532013000) = %d, want 89", got)
	}
}

func TestValuesAreFreshAndStable(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	vs := newValues(generators["pan"], 50)
	first := append([]string(nil), vs.next(rnd)...)
	second := vs.next(rnd)
	seen := map[string]bool{}
	for i, v := range append(first, second...) {
		if len(v) != 16 || v[0] != '4' {
			t.Errorf("value %d = %q, want 16 digits starting with 4", i, v)
		}
		if seen[v] {
			t.Errorf("value %q repeated", v)
		}
		seen[v] = true
	}
	if first[0] == second[0] {
		t.Errorf("next returned the same values twice")
	}
}

// BenchmarkRequestBody measures what the generator spends to prepare one request of 100
// fresh pan values for the HTTP gateway (the hot path of a unique tokenize run).
func BenchmarkRequestBody(b *testing.B) {
	cfg := &Config{Template: "pan"}
	c := &httpConn{cfg: cfg}
	vs := newValues(generators["pan"], 100)
	rnd := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		_ = c.newRequest(OpTokenize, vs.next(rnd))
	}
}

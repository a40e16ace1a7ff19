package textscan

import (
	"os"
	"strings"
	"testing"
)

func benchDetect(b *testing.B, file string) {
	data, err := os.ReadFile("testdata/" + file)
	if err != nil {
		b.Fatal(err)
	}
	text := string(data)
	s, err := New(Options{DefaultRegion: "DE"})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	n := 0
	for b.Loop() {
		n = len(s.Scan(text))
	}
	b.ReportMetric(float64(n), "findings")
}

// BenchmarkDetectProse: ordinary sentences with sparse PII (testdata/prose.txt).
func BenchmarkDetectProse(b *testing.B) { benchDetect(b, "prose.txt") }

// BenchmarkDetectDense: log and CSV lines full of numbers and PII (testdata/dense.txt).
func BenchmarkDetectDense(b *testing.B) { benchDetect(b, "dense.txt") }

// opsFor returns the work counter of one Scan and one Tokens pass over text.
func opsFor(t *testing.T, text string) int {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	sc := scan{s: s, text: text}
	sc.run()
	sc.resolve()
	tk := scan{s: s, text: text, tokens: true}
	tk.run()
	return sc.ops + tk.ops
}

// TestLinearTime checks that adversarial inputs cost work proportional to their length:
// doubling the input at most doubles the operation count (plus a little), for 1 MiB of
// digits, @, dots, separators and mixtures.
func TestLinearTime(t *testing.T) {
	units := map[string]string{
		"digits":     "1",
		"at":         "@",
		"dots":       ".",
		"separators": "1 ",
		"dashes":     "1-",
		"colons":     "a:",
		"dcolons":    "::",
		"emails":     "a.b@c.de",
		"ibanish":    "DE89 ",
		"phoneish":   "+1 (2",
		"cards":      "4111 1111 1111 1111 ",
		"mixed":      "1.2.3.4 @x 5-6 ab:cd ",
	}
	for name, u := range units {
		half := strings.Repeat(u, (512<<10)/len(u))
		full := half + half
		a, b := opsFor(t, half), opsFor(t, full)
		if a == 0 || float64(b) > 2.1*float64(a) {
			t.Errorf("%s: %d ops for %d bytes, %d for %d: not linear", name, a, len(half), b, len(full))
		}
		if perByte := float64(b) / float64(len(full)); perByte > 100 {
			t.Errorf("%s: %.1f operations a byte", name, perByte)
		}
	}
}

// FuzzScan: Scan and Tokens never panic, findings are in order, inside the text, without
// overlaps, and every finding is also a token-shaped span or an IP (IPs become opaque
// tokens).
func FuzzScan(f *testing.F) {
	for _, s := range []string{"card 4111 1111 1111 1111", "SSN 123-45-6789", "a@b.co", "+49 30 1234567",
		"(415) 555-0123", "DE89 3704 0044 0532 0130 00", "10.0.0.1 fe80::1", "tok_abcdefghijklmnopqrstuv", "+1 (2", "((1)) 2"} {
		f.Add(s)
	}
	s, _ := New(Options{MinConfidence: 0.01})
	f.Fuzz(func(t *testing.T, text string) {
		prev := 0
		for _, fd := range s.Scan(text) {
			if fd.Start < prev || fd.End <= fd.Start || fd.End > len(text) {
				t.Fatalf("bad finding %+v after %d in %q", fd, prev, text)
			}
			prev = fd.End
		}
		spans := map[Span]bool{}
		for _, sp := range s.Tokens(text) {
			if sp.End <= sp.Start || sp.End > len(text) {
				t.Fatalf("bad span %+v in %q", sp, text)
			}
			spans[sp] = true
		}
		for _, fd := range s.Scan(text) {
			if fd.Entity != IP && !spans[Span{fd.Start, fd.End}] {
				t.Fatalf("%s finding %q is not a token span in %q", fd.Entity, text[fd.Start:fd.End], text)
			}
		}
	})
}

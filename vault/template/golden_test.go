package template

import (
	"bufio"
	"crypto/sha256"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The golden test pins what the template library produces: for every (template, value) in
// testdata/golden.txt, Check, FreeSpaceOf, Mask and the candidates of several attempts (under
// the fixed test keys, and in random mode or for small spaces from a randomness source seeded
// by the line) must stay byte-for-byte the same. Tokens already issued by a vault must not
// change when the engine is optimized; regenerate the file (go test -run TestGolden
// -update-golden) only for a deliberate, versioned change of the token derivation.

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden.txt from the current code")

const goldenFile = "testdata/golden.txt"

// goldenAttempts are the deterministic attempts recorded per value.
var goldenAttempts = []int{0, 1, 2, 7, 100}

// goldenTemplates returns the templates of the golden file, by name: the built-ins and
// custom definitions covering every option.
func goldenTemplates(t testing.TB) map[string]Template {
	t.Helper()
	m := map[string]Template{}
	for _, n := range BuiltinNames() {
		m[n] = mustBuiltin(n)
	}
	for _, d := range []Definition{
		{Name: "pan_valid", Base: "pan", KeepSuffix: 4, Luhn: LuhnValid},
		{Name: "pan_any", Base: "pan", Luhn: LuhnAny},
		{Name: "pan_nokeep", Base: "pan"},
		{Name: "pan_bin", Base: "pan", KeepPrefix: 6, KeepSuffix: 4, MinLength: 16},
		{Name: "pan_bin_valid", Base: "pan", KeepPrefix: 6, KeepSuffix: 4, MinLength: 14, Luhn: LuhnValid},
		{Name: "pan_random", Base: "pan", KeepSuffix: 4, Mode: Random},
		{Name: "ssn_last4", Base: "ssn", KeepSuffix: 4},
		{Name: "ssn_area", Base: "ssn", KeepPrefix: 3},
		{Name: "ssn_group", Base: "ssn", KeepPrefix: 5},
		{Name: "ssn_random", Base: "ssn", Mode: Random},
		{Name: "email_dom", Base: "email", TokenizeDomain: true},
		{Name: "email_rnd", Base: "email", Mode: Random},
		{Name: "phone_area", Base: "phone", KeepPrefix: 3, MinLength: 10},
		{Name: "phone_last2", Base: "phone", KeepSuffix: 1},
		{Name: "name_rnd", Base: "name", Mode: Random},
		{Name: "date_year", Base: "date", KeepYear: true},
		{Name: "date_dob", Base: "date", MinYear: 1900, MaxYear: 2099},
		{Name: "date_short", Base: "date", MinYear: 2000, MaxYear: 2009},
		{Name: "iban_bank", Base: "iban", KeepPrefix: 4, KeepSuffix: 4},
		{Name: "digits_acct", Base: "digits", MinLength: 8, MaxLength: 12, KeepSuffix: 2},
		{Name: "digits_alpha", Base: "digits", Alphabet: "13579"},
		{Name: "digits_short", Base: "digits", MaxLength: 5},
		{Name: "digits_long", Base: "digits", MinLength: 20, MaxLength: 64, KeepPrefix: 1},
		{Name: "alnum_ref", Base: "alnum", Alphabet: "ABCDEFGHJKLMNPQRSTUVWXYZ23456789", KeepPrefix: 2, MinLength: 6},
		{Name: "alnum_short", Base: "alnum", MinLength: 4, MaxLength: 8, KeepSuffix: 1},
		{Name: "alnum_mid", Base: "alnum", MinLength: 12, MaxLength: 26}, // 64- and 128-bit domains
		{Name: "alnum_rnd", Base: "alnum", Mode: Random},
		{Name: "opaque_rnd", Base: "opaque", Mode: Random},
	} {
		tm, err := New(d)
		if err != nil {
			t.Fatalf("New(%+v): %v", d, err)
		}
		m[d.Name] = tm
	}
	return m
}

// goldenValues returns the values recorded for tm: its check table (valid and invalid
// values) for a built-in, then generated values.
func goldenValues(tm Template, n int) []string {
	var vs []string
	for _, c := range checkTables[tm.Name()] {
		vs = append(vs, c.value)
	}
	sum := sha256.Sum256([]byte(tm.Name()))
	r := rand.New(rand.NewPCG(uint64(sum[0])|uint64(sum[1])<<8, 42))
	gen := genFor(tm)
	for range n {
		vs = append(vs, gen(r))
	}
	return vs
}

// goldenRand returns the randomness source for one golden line.
func goldenRand(name, value string, i int) *rand.ChaCha8 {
	return rand.NewChaCha8(sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%d", name, value, i)))
}

// goldenLine computes the recorded fields of (tm, value), tab-separated and quoted.
func goldenLine(tm Template, value string) string {
	k := newKeys("golden", tm.Name())
	q := func(s string) string { return strconv.Quote(s) }
	errStr := func(err error) string {
		if err == nil {
			return "ok"
		}
		return "error " + err.Error()
	}
	f := []string{tm.Name(), q(value)}
	f = append(f, q(errStr(tm.Check(value))))
	if fs, err := tm.FreeSpaceOf(value); err != nil {
		f = append(f, q(errStr(err)))
	} else {
		f = append(f, strconv.FormatFloat(fs, 'g', -1, 64))
	}
	f = append(f, q(tm.Mask(value)))
	for _, a := range goldenAttempts {
		c, err := tm.Candidate(k, value, a, goldenRand(tm.Name(), value, a))
		if err != nil {
			c = errStr(err)
		}
		f = append(f, q(c))
	}
	return strings.Join(f, "\t")
}

func TestGolden(t *testing.T) {
	tms := goldenTemplates(t)
	path := filepath.FromSlash(goldenFile)
	if *updateGolden {
		names := BuiltinNames()
		for n := range tms {
			if _, ok := Builtin(n); !ok {
				names = append(names, n)
			}
		}
		slices.Sort(names[len(BuiltinNames()):]) // custom names in a fixed order
		var b strings.Builder
		b.WriteString("# template\tvalue\tcheck\tfreespaceof\tmask\tcandidates for attempts 0 1 2 7 100 (see golden_test.go)\n")
		for _, n := range names {
			count := 40
			if _, ok := Builtin(n); !ok && n != "alnum_mid" {
				count = 15
			}
			for _, v := range goldenValues(tms[n], count) {
				b.WriteString(goldenLine(tms[n], v) + "\n")
			}
		}
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	lines, seen := 0, map[string]int{}
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, "\t", 3)
		if len(f) < 3 {
			t.Fatalf("malformed golden line %q", line)
		}
		tm, ok := tms[f[0]]
		if !ok {
			t.Fatalf("golden line for unknown template %q", f[0])
		}
		v, err := strconv.Unquote(f[1])
		if err != nil {
			t.Fatalf("golden value %s: %v", f[1], err)
		}
		if got := goldenLine(tm, v); got != line {
			t.Errorf("%s %s changed:\n got %s\nwant %s", f[0], f[1], got, line)
		}
		lines++
		seen[f[0]]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for n := range tms {
		if seen[n] == 0 {
			t.Errorf("no golden lines for template %s", n)
		}
	}
	if lines < 500 {
		t.Fatalf("only %d golden lines", lines)
	}
}

// enginePath names the way Candidate derives the candidates of a valid value.
func enginePath(tm Template, value string) string {
	pl := tm.(planner)
	p := getPlan(pl, false)
	defer p.release()
	if err := pl.plan(p, value); err != nil {
		return "invalid"
	}
	size, fits := p.size64()
	if tm.Mode() == Random || fits && size < ff1MinDomain {
		if fits {
			return "draw64"
		}
		return "drawBig"
	}
	switch _, fits128 := p.size128(); {
	case p.alpha != "" && fits:
		return "alpha64"
	case p.alpha != "":
		return "alphaBig"
	case fits:
		return "mixed64"
	case fits128:
		return "mixed128"
	}
	return "mixedBig"
}

// TestGoldenCoversPaths checks that the golden file exercises every path of the engine.
func TestGoldenCoversPaths(t *testing.T) {
	tms := goldenTemplates(t)
	blob, err := os.ReadFile(filepath.FromSlash(goldenFile))
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(blob)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, "\t", 3)
		v, err := strconv.Unquote(f[1])
		if err != nil {
			t.Fatal(err)
		}
		count[enginePath(tms[f[0]], v)]++
	}
	t.Logf("golden values per path: %v", count)
	for _, path := range []string{"draw64", "drawBig", "alpha64", "alphaBig", "mixed64", "mixed128", "mixedBig"} {
		if count[path] < 10 {
			t.Errorf("golden file has %d values on path %s, want at least 10", count[path], path)
		}
	}
}

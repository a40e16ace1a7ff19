package vault

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/tokenvault/tokenvault/vault/template"
)

// requestPathValues returns values for every built-in template (some may be invalid: the
// tests check them with the template).
func requestPathValues(i int) map[string]string {
	ibans := []string{"GB29 NWBK 6016 1331 9268 19", "DE89 3704 0044 0532 0130 00", "FR14 2004 1010 0505 0001 3M02 606", "NL91ABNA0417164300"}
	return map[string]string{
		"pan":    fmt.Sprintf("4%015d", i*7919+1),
		"ssn":    fmt.Sprintf("%03d-%02d-%04d", 101+i, 10+i%80, 1000+i),
		"email":  fmt.Sprintf("user.%d@example.com", i),
		"phone":  fmt.Sprintf("+1 415 555 %04d", 100+i),
		"name":   "Ann " + string(rune('A'+i%26)) + "ndersen",
		"date":   fmt.Sprintf("19%02d-%02d-%02d", 10+i%90, 1+i%12, 1+i%28),
		"iban":   ibans[i%len(ibans)],
		"digits": fmt.Sprintf("%012d", i*31+7),
		"alnum":  fmt.Sprintf("AB%06dxy", i),
		"opaque": fmt.Sprintf("opaque value %d", i),
	}
}

// TestTokenizeMatchesTemplateCandidates checks the tokenize path (values planned once with
// template.Prepare, keys and records carved from per-call memory) against the template's own
// Candidate under the vault's keys: for values of every built-in template whose candidates
// come from FF1, the token is the first candidate that differs from the value; tokenizing the
// batch again gives the same tokens; detokenize returns the values, and its audit event lists
// exactly the tokens' fingerprints.
func TestTokenizeMatchesTemplateCandidates(t *testing.T) {
	ctx := context.Background()
	v, _ := openTest(t)
	var items []TokenizeItem
	for i := range 12 {
		for _, name := range template.BuiltinNames() {
			items = append(items, TokenizeItem{Value: requestPathValues(i)[name], Template: name})
		}
	}
	first, err := v.Tokenize(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	again, err := v.Tokenize(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	var refs []TokenRef
	checked := map[string]int{}
	for i, it := range items {
		tm, _ := template.Builtin(it.Template)
		if cerr := tm.Check(it.Value); cerr != nil {
			if first[i].Err == nil || first[i].Err.Error() != cerr.Error() {
				t.Errorf("Tokenize(%s %q) error = %v, want Check's %v", it.Template, it.Value, first[i].Err, cerr)
			}
			continue
		}
		if first[i].Err != nil || again[i].Token != first[i].Token {
			t.Fatalf("Tokenize(%s %q) = %+v, then %+v", it.Template, it.Value, first[i], again[i])
		}
		refs = append(refs, TokenRef{Token: first[i].Token, Template: it.Template})
		if fs, _ := tm.FreeSpaceOf(it.Value); fs < 6 {
			continue // random candidates
		}
		keys := tokenKeys{v: v, domain: DefaultDomain, template: it.Template}
		want := ""
		for a := 0; want == "" || want == it.Value; a++ {
			if want, err = tm.Candidate(keys, it.Value, a, nil); err != nil {
				t.Fatal(err)
			}
		}
		if first[i].Token != want {
			t.Errorf("Tokenize(%s %q) = %q, want the template's candidate %q", it.Template, it.Value, first[i].Token, want)
		}
		checked[it.Template]++
	}
	for _, name := range template.BuiltinNames() {
		if checked[name] < 4 {
			t.Errorf("%s: only %d FF1 values checked", name, checked[name])
		}
	}
	got, err := v.Detokenize(ctx, "test", refs)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, r := range got {
		if r.Err != nil {
			t.Fatalf("Detokenize(%q): %v", refs[i].Token, r.Err)
		}
		want = append(want, TokenFingerprint(DefaultDomain, refs[i].Token))
	}
	evs, _, err := v.ListAudit(ctx, AuditFilter{Method: "Detokenize", Limit: 1000})
	if err != nil || len(evs) == 0 {
		t.Fatalf("ListAudit = %d events, %v", len(evs), err)
	}
	ev := evs[len(evs)-1]
	if ev.Method != "Detokenize" || len(want) == 0 || fmt.Sprint(ev.Tokens) != fmt.Sprint(want) {
		t.Errorf("Detokenize event: method %q, tokens %v, want %v", ev.Method, ev.Tokens, want)
	}
}

// TestTokenFingerprint pins the fingerprint's derivation: hex of the first 8 bytes of
// SHA-256(domain 0x00 token), also for inputs longer than its stack buffer.
func TestTokenFingerprint(t *testing.T) {
	for _, c := range []struct{ domain, token string }{
		{DefaultDomain, "4111 1111 1111 1111"},
		{"acme", ""},
		{string(make([]byte, 200)), "tok_0123456789abcdefghijkl"},
	} {
		sum := sha256.Sum256([]byte(c.domain + "\x00" + c.token))
		if got, want := TokenFingerprint(c.domain, c.token), hex.EncodeToString(sum[:8]); got != want {
			t.Errorf("TokenFingerprint(%q, %q) = %s, want %s", c.domain, c.token, got, want)
		}
	}
	b := appendTokenFingerprint(appendTokenFingerprint(nil, "a", "1"), "b", "2")
	if got := splitFingerprints(b); len(got) != 2 || got[0] != TokenFingerprint("a", "1") || got[1] != TokenFingerprint("b", "2") {
		t.Errorf("splitFingerprints = %q", got)
	}
	if got := splitFingerprints(nil); got != nil {
		t.Errorf("splitFingerprints(nil) = %q, want nil", got)
	}
}

// TestTemplateName checks that a record's template name parses to the same string, without
// an allocation for every built-in name.
func TestTemplateName(t *testing.T) {
	for _, n := range append(template.BuiltinNames(), "custom_pan", "") {
		b := []byte(n)
		if got := templateName(b); got != n {
			t.Errorf("templateName(%q) = %q", n, got)
		}
		if _, builtin := template.Builtin(n); builtin {
			if allocs := testing.AllocsPerRun(10, func() { _ = templateName(b) }); allocs != 0 {
				t.Errorf("templateName(%q) allocates %v times", n, allocs)
			}
		}
	}
}

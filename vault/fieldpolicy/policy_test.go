package fieldpolicy

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParsePolicy(t *testing.T) {
	yamlPolicy := `
# vendor payload
$.customer.email: email
$.payment.card: pan
$.items[*].note: opaque
"$['first name']": name
$["last name"]: name
`
	want := Policy{Rules: []Rule{
		{"$.customer.email", "email"},
		{"$.payment.card", "pan"},
		{"$.items[*].note", "opaque"},
		{"$['first name']", "name"},
		{`$["last name"]`, "name"},
	}}
	got, err := ParsePolicy([]byte(yamlPolicy))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}

	jsonPolicy := `{"$.customer.email": "email", "$.payment.card": "pan", "$.items[*].note": "opaque",
		"$['first name']": "name", "$[\"last name\"]": "name"}`
	got, err = ParsePolicy([]byte(jsonPolicy))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("JSON: got %+v, want %+v", got, want)
	}
}

func TestParsePolicyInvalid(t *testing.T) {
	tests := []struct{ policy, msg string }{
		{"", "record: invalid policy: the policy is empty"},
		{"# nothing\n", "record: invalid policy: the policy is empty"},
		{"null", "record: invalid policy: the policy is empty"},
		{"{}", "record: invalid policy: the policy has no rules"},
		{"- $.a: email", "record: invalid policy: line 1: the policy must be a mapping of JSON path to template name"},
		{"email", "record: invalid policy: line 1: the policy must be a mapping of JSON path to template name"},
		{"$.a: [email]", `record: invalid policy: line 1: path "$.a": the value must be a template name`},
		{"$.a:", `record: invalid policy: line 1: path "$.a": the value must be a template name`},
		{"$.a: 12", `record: invalid policy: line 1: path "$.a": the value must be a template name`},
		{"$.a: true", `record: invalid policy: line 1: path "$.a": the value must be a template name`},
		{"$.a: email\n1: pan", "record: invalid policy: line 2: a key must be a JSON path such as $.customer.email"},
		{"$.a: email\n$.b: pan\n$.a: opaque", `record: invalid policy: line 3: path "$.a" is already mapped on line 1`},
		{`{"$.a": "email", "$.a": "pan"}`, `record: invalid policy: line 1: path "$.a" is already mapped on line 1`},
		{"$.a: email\n$['a']: pan", `record: invalid policy: line 2: paths "$.a" and "$['a']" select the same values; keep one rule`},
		{"$.a: Email", `record: invalid policy: line 1: path "$.a": template name "Email" is invalid: it must match ^[a-z][a-z0-9_-]{0,62}$`},
		{"$.a: e mail", `record: invalid policy: line 1: path "$.a": template name "e mail" is invalid: it must match ^[a-z][a-z0-9_-]{0,62}$`},
		{"$.a: " + strings.Repeat("a", 64), `record: invalid policy: line 1: path "$.a": template name "` + strings.Repeat("a", 64) + `" is invalid: it must match ^[a-z][a-z0-9_-]{0,62}$`},
		{"$.a: email\n$..b: pan", `record: line 2: path "$..b": recursive descent ".." is not supported (at position 2)`},
		{"a.b: pan", `record: line 1: path "a.b": a path must start with $ (at position 1)`},
		{"$.a: email\n  b: pan", "record: invalid policy: not valid YAML or JSON: yaml: line 2: mapping values are not allowed in this context"},
		{"$.x: &a email\n$.a: *a", `record: invalid policy: line 2: path "$.a": the value must be a template name`}, // alias
		{"$..x: email\n$.a: [", "record: invalid policy: not valid YAML or JSON: yaml: line 2: did not find expected node content"},
		{"$..x: email\n$.a: [x]", `record: line 1: path "$..x": recursive descent ".." is not supported (at position 2)`}, // first problem first
	}
	for _, tc := range tests {
		_, err := ParsePolicy([]byte(tc.policy))
		if err == nil {
			t.Errorf("ParsePolicy(%q): no error, want %s", tc.policy, tc.msg)
			continue
		}
		if err.Error() != tc.msg {
			t.Errorf("ParsePolicy(%q):\n got %s\nwant %s", tc.policy, err, tc.msg)
		}
		if !errors.Is(err, ErrInvalidPolicy) {
			t.Errorf("ParsePolicy(%q): %v does not wrap ErrInvalidPolicy", tc.policy, err)
		}
	}
}

func TestCompileInvalid(t *testing.T) {
	many := Policy{}
	for i := range MaxRules + 1 {
		many.Rules = append(many.Rules, Rule{fmt.Sprintf("$.f%d", i), "opaque"})
	}
	tests := []struct {
		p   Policy
		msg string
	}{
		{Policy{}, "record: invalid policy: the policy has no rules"},
		{many, "record: invalid policy: 1001 rules; at most 1000 are allowed"},
		{Policy{Rules: []Rule{{"$.a", "email"}, {"$.b[0]", "pan"}, {"$.b[0]", "pan"}}}, `record: invalid policy: paths "$.b[0]" and "$.b[0]" select the same values; keep one rule`},
		{Policy{Rules: []Rule{{`$["a"]['b c'][*]`, "email"}, {"$.a['b c'][*]", "pan"}}}, `record: invalid policy: paths "$[\"a\"]['b c'][*]" and "$.a['b c'][*]" select the same values; keep one rule`},
		{Policy{Rules: []Rule{{"$.a.*", "email"}, {"$.a.*", "pan"}}}, `record: invalid policy: paths "$.a.*" and "$.a.*" select the same values; keep one rule`},
		{Policy{Rules: []Rule{{"$", "email"}, {"$", "pan"}}}, `record: invalid policy: paths "$" and "$" select the same values; keep one rule`},
		{Policy{Rules: []Rule{{"$.a", ""}}}, `record: invalid policy: path "$.a": template name "" is invalid: it must match ^[a-z][a-z0-9_-]{0,62}$`},
		{Policy{Rules: []Rule{{"$.a", "1pan"}}}, `record: invalid policy: path "$.a": template name "1pan" is invalid: it must match ^[a-z][a-z0-9_-]{0,62}$`},
		{Policy{Rules: []Rule{{"$.a[?(@)]", "pan"}}}, `record: path "$.a[?(@)]": filter expressions [?...] are not supported (at position 4)`},
	}
	for _, tc := range tests {
		_, err := tc.p.Compile()
		if err == nil || err.Error() != tc.msg || !errors.Is(err, ErrInvalidPolicy) {
			t.Errorf("Compile(%.80v):\n got %v\nwant %s", tc.p, err, tc.msg)
		}
	}
	// Different paths that may meet on a value are fine, as are the longest names.
	ok := Policy{Rules: []Rule{{"$.items[*].card", "pan"}, {"$.items[0].card", "opaque"}, {"$.*", "x" + strings.Repeat("-", 62)}, {"$['*']", "a_0"}}}
	if _, err := ok.Compile(); err != nil {
		t.Error(err)
	}
}

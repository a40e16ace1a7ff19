package fieldpolicy

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func m(name string) step { return step{kind: stepMember, name: name} }
func ix(n int) step      { return step{kind: stepIndex, index: n} }

var (
	anyM = step{kind: stepAnyMember}
	anyI = step{kind: stepAnyIndex}
)

func TestParsePathValid(t *testing.T) {
	tests := []struct {
		path string
		want []step
	}{
		{"$", nil},
		{"$.a", []step{m("a")}},
		{"$.customer.email", []step{m("customer"), m("email")}},
		{"$.payment.card", []step{m("payment"), m("card")}},
		{"$.items[*].note", []step{m("items"), anyI, m("note")}},
		{"$.orders[*].items[*].card", []step{m("orders"), anyI, m("items"), anyI, m("card")}},
		{"$.a[0]", []step{m("a"), ix(0)}},
		{"$.a[12][3]", []step{m("a"), ix(12), ix(3)}},
		{"$[2147483647]", []step{ix(2147483647)}},
		{"$[*]", []step{anyI}},
		{"$.*", []step{anyM}},
		{"$.*.card", []step{anyM, m("card")}},
		{"$.a.*[*].b", []step{m("a"), anyM, anyI, m("b")}},
		{"$['a']", []step{m("a")}},
		{`$["a"]`, []step{m("a")}},
		{"$['a.b']", []step{m("a.b")}},
		{"$['first name']", []step{m("first name")}},
		{"$['*']", []step{m("*")}},
		{"$['0']", []step{m("0")}},
		{`$['it\'s']`, []step{m("it's")}},
		{`$["say \"hi\""]`, []step{m(`say "hi"`)}},
		{`$['a"b']`, []step{m(`a"b`)}},
		{`$["a'b"]`, []step{m(`a'b`)}},
		{`$['back\\slash']`, []step{m(`back\slash`)}},
		{`$['\/\b\f\n\r\t']`, []step{m("/\b\f\n\r\t")}},
		{`$['caf\u00e9']`, []step{m("café")}},
		{`$['\uD83D\uDE00']`, []step{m("😀")}},
		{"$['x'].y[1]['z z']", []step{m("x"), m("y"), ix(1), m("z z")}},
		{"$.customer-id", []step{m("customer-id")}},
		{"$._id", []step{m("_id")}},
		{"$.a1_b2", []step{m("a1_b2")}},
		{"$.café", []step{m("café")}},
		{"$.名前", []step{m("名前")}},
		{"$" + strings.Repeat("[*]", MaxDepth), func() []step {
			s := make([]step, MaxDepth)
			for i := range s {
				s[i] = anyI
			}
			return s
		}()},
	}
	for _, tc := range tests {
		got, err := parsePath(tc.path)
		if err != nil {
			t.Errorf("parsePath(%q): %v", tc.path, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parsePath(%q) = %+v, want %+v", tc.path, got, tc.want)
		}
	}
}

func TestParsePathInvalid(t *testing.T) {
	tests := []struct{ path, msg string }{
		{"", `record: path "": empty path; a path starts with $`},
		{"a.b", `record: path "a.b": a path must start with $ (at position 1)`},
		{"@.a", `record: path "@.a": a path must start with $ (at position 1)`},
		{".a", `record: path ".a": a path must start with $ (at position 1)`},
		{"$a", `record: path "$a": unexpected 'a'; expected . or [ (at position 2)`},
		{"$..card", `record: path "$..card": recursive descent ".." is not supported (at position 2)`},
		{"$.a..b", `record: path "$.a..b": recursive descent ".." is not supported (at position 4)`},
		{"$.", `record: path "$.": a member name or * must follow . (at position 2)`},
		{"$.a.", `record: path "$.a.": a member name or * must follow . (at position 4)`},
		{"$.a b", `record: path "$.a b": unexpected ' '; expected . or [ (at position 4)`},
		{"$.a ", `record: path "$.a ": unexpected ' '; expected . or [ (at position 4)`},
		{" $.a", `record: path " $.a": a path must start with $ (at position 1)`},
		{"$.a)", `record: path "$.a)": unexpected ')'; expected . or [ (at position 4)`},
		{"$.a*", `record: path "$.a*": unexpected '*'; expected . or [ (at position 4)`},
		{"$.*a", `record: path "$.*a": unexpected 'a'; expected . or [ (at position 4)`},
		{"$.1a", `record: path "$.1a": a member name after . must not start with '1' (write [n] for an array index, ['...'] for such a name) (at position 3)`},
		{"$.-a", `record: path "$.-a": a member name after . must not start with '-' (write [n] for an array index, ['...'] for such a name) (at position 3)`},
		{"$.['a']", `record: path "$.['a']": unexpected '['; a member name or * must follow . (at position 3)`},
		{"$.a.$", `record: path "$.a.$": unexpected '$'; a member name or * must follow . (at position 5)`},
		{"$[?(@.x)]", `record: path "$[?(@.x)]": filter expressions [?...] are not supported (at position 2)`},
		{"$.a[?@.b=='c']", `record: path "$.a[?@.b=='c']": filter expressions [?...] are not supported (at position 4)`},
		{"$[(@.length-1)]", `record: path "$[(@.length-1)]": script expressions [(...)] are not supported (at position 2)`},
		{"$.a[1:3]", `record: path "$.a[1:3]": array slices are not supported (at position 6)`},
		{"$.a[:3]", `record: path "$.a[:3]": array slices are not supported (at position 5)`},
		{"$.a[-1]", `record: path "$.a[-1]": negative indexes are not supported (at position 5)`},
		{"$.a[-]", `record: path "$.a[-]": unexpected '-' after [ (at position 5)`},
		{"$.a[0,1]", `record: path "$.a[0,1]": unions [a,b] are not supported; write one rule per path (at position 6)`},
		{"$['a','b']", `record: path "$['a','b']": unions [a,b] are not supported; write one rule per path (at position 6)`},
		{"$[*,0]", `record: path "$[*,0]": unions [a,b] are not supported; write one rule per path (at position 4)`},
		{"$.a[]", `record: path "$.a[]": empty brackets [] (at position 4)`},
		{"$.a[", `record: path "$.a[": unterminated [ (at position 4)`},
		{"$.a[0", `record: path "$.a[0": unterminated [; expected ] (at position 4)`},
		{"$.a[*", `record: path "$.a[*": unterminated [; expected ] (at position 4)`},
		{"$.a[0 ]", `record: path "$.a[0 ]": unexpected ' '; expected ] (at position 6)`},
		{"$.a[ 0]", `record: path "$.a[ 0]": unexpected ' ' after [; expected a quoted name, an index or * (at position 5)`},
		{"$.a[x]", `record: path "$.a[x]": unexpected 'x' after [; expected a quoted name, an index or * (at position 5)`},
		{"$.a[01]", `record: path "$.a[01]": an index must not have leading zeros (at position 5)`},
		{"$.a[2147483648]", `record: path "$.a[2147483648]": index too large (at most 2147483647) (at position 5)`},
		{"$.a[99999999999999999999]", `record: path "$.a[99999999999999999999]": index too large (at most 2147483647) (at position 5)`},
		{"$['']", `record: path "$['']": empty member name (at position 3)`},
		{`$[""]`, `record: path "$[\"\"]": empty member name (at position 3)`},
		{"$['a'", `record: path "$['a'": unterminated [; expected ] (at position 2)`},
		{"$['a", `record: path "$['a": unterminated quoted name (at position 3)`},
		{`$['a\`, `record: path "$['a\\": unterminated quoted name (at position 3)`},
		{`$["a']`, `record: path "$[\"a']": unterminated quoted name (at position 3)`},
		{`$['a\x']`, `record: path "$['a\\x']": invalid escape \x (at position 5)`},
		{`$['\u12']`, `record: path "$['\\u12']": invalid \u escape; expected 4 hex digits (at position 4)`},
		{`$['\ud800']`, `record: path "$['\\ud800']": invalid \u escape: unpaired surrogate (at position 4)`},
		{`$['\udc00\ud800']`, `record: path "$['\\udc00\\ud800']": invalid \u escape: unpaired surrogate (at position 4)`},
		{"$['a\tb']", `record: path "$['a\tb']": control character in quoted name; escape it (at position 5)`},
		{"$['a']x", `record: path "$['a']x": unexpected 'x'; expected . or [ (at position 7)`},
		{"$['a'].", `record: path "$['a'].": a member name or * must follow . (at position 7)`},
		{"$.é..x", `record: path "$.é..x": recursive descent ".." is not supported (at position 4)`}, // positions count characters
		{"$.a\xff", `record: path "$.a\xff": not valid UTF-8`},
		{"$" + strings.Repeat("[*]", MaxDepth+1), `record: path "$` + strings.Repeat("[*]", MaxDepth+1) + `": more than 64 steps (at position 194)`},
		{"$." + strings.Repeat("a", MaxPathLen), `record: path "$.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...": longer than 1024 bytes`},
	}
	for _, tc := range tests {
		_, err := parsePath(tc.path)
		if err == nil {
			t.Errorf("parsePath(%q): no error, want %s", tc.path, tc.msg)
			continue
		}
		if err.Error() != tc.msg {
			t.Errorf("parsePath(%q):\n got %s\nwant %s", tc.path, err, tc.msg)
		}
		var pe *PathError
		if !errors.As(err, &pe) || pe.Path == "" && tc.path != "" || !errors.Is(err, ErrInvalidPolicy) {
			t.Errorf("parsePath(%q): %T does not unwrap to ErrInvalidPolicy as a *PathError", tc.path, err)
		}
	}
}

// Concrete paths printed for any member name parse back to that name.
func TestAppendMemberRoundTrip(t *testing.T) {
	names := []string{"a", "_x", "a-b", "A9", "a.b", "first name", "it's", `back\slash`, `q"q`, "*", "0", "1a", "-a",
		"café", "名前", "tab\there", "nl\n", "\x00", "\x7f", "\u2028", "😀", "$", "[0]", "'", `\`}
	for _, name := range names {
		p := string(appendMember([]byte("$"), name))
		got, err := parsePath(p)
		if err != nil {
			t.Errorf("name %q printed as %s: %v", name, p, err)
			continue
		}
		if len(got) != 1 || got[0] != m(name) {
			t.Errorf("name %q printed as %s parses to %+v", name, p, got)
		}
	}
	for name, want := range map[string]string{"email": "$.email", "a.b": "$['a.b']", "it's": `$['it\'s']`, "a\nb": `$['a\u000ab']`, "café": "$['café']"} {
		if got := string(appendMember([]byte("$"), name)); got != want {
			t.Errorf("appendMember(%q) = %s, want %s", name, got, want)
		}
	}
}

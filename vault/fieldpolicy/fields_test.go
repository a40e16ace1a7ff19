package fieldpolicy

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func compile(t testing.TB, rules ...string) *Compiled {
	t.Helper()
	var p Policy
	for i := 0; i+1 < len(rules); i += 2 {
		p.Rules = append(p.Rules, Rule{rules[i], rules[i+1]})
	}
	c, err := p.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func raws(docs ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(docs))
	for i, d := range docs {
		out[i] = json.RawMessage(d)
	}
	return out
}

func values(fields []Field) []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.Value
	}
	return out
}

func TestExtractReplaceNested(t *testing.T) {
	c := compile(t,
		"$.customer.email", "email",
		"$.payment.card", "pan",
		"$.items[*].note", "opaque",
		"$.orders[*].items[*].card", "pan",
		"$['ship to']['first name']", "name",
	)
	doc := `{
  "id": 12345678901234567890,
  "customer": {"email": "ann@example.com", "tier": "gold"},
  "items": [{"note": "leave at door", "qty": 2}, {"qty": 1}, {"note": null}, {"note": "ring twice"}],
  "payment": {"card": "4111111111111111", "amount": 10.10, "exp": 1e3},
  "orders": [{"items": [{"card": "5500000000000004"}, {"card": "340000000000009"}]}, {"items": []}, {}],
  "ship to": {"first name": "Zoë"},
  "extra": [true, false, null, -0.0e-0]
}`
	fields, ferrs, err := c.Extract(raws(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(ferrs) != 0 {
		t.Fatalf("field errors: %v", ferrs)
	}
	want := []Field{
		{0, "$.customer.email", "email", "ann@example.com"},
		{0, "$.items[0].note", "opaque", "leave at door"},
		{0, "$.items[3].note", "opaque", "ring twice"},
		{0, "$.payment.card", "pan", "4111111111111111"},
		{0, "$.orders[0].items[0].card", "pan", "5500000000000004"},
		{0, "$.orders[0].items[1].card", "pan", "340000000000009"},
		{0, "$['ship to']['first name']", "name", "Zoë"},
	}
	if !reflect.DeepEqual(fields, want) {
		t.Fatalf("fields:\n got %+v\nwant %+v", fields, want)
	}
	repl := make([]string, len(fields))
	for i := range fields {
		repl[i] = fmt.Sprintf("tok%d", i)
	}
	out, err := c.Replace(raws(doc), fields, repl)
	if err != nil {
		t.Fatal(err)
	}
	wantDoc := doc
	for i, f := range fields {
		wantDoc = strings.Replace(wantDoc, `"`+f.Value+`"`, `"`+repl[i]+`"`, 1)
	}
	if string(out[0]) != wantDoc {
		t.Fatalf("Replace:\n got %s\nwant %s", out[0], wantDoc)
	}
	// Detokenize: extract the tokens, put the values back: the original, byte for byte.
	tokens, _, err := c.Extract(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(values(tokens), repl) {
		t.Fatalf("tokens %q, want %q", values(tokens), repl)
	}
	back, err := c.Replace(out, tokens, values(fields))
	if err != nil {
		t.Fatal(err)
	}
	if string(back[0]) != doc {
		t.Fatalf("round trip:\n got %s\nwant %s", back[0], doc)
	}
}

func TestKeyOrderAndNumbersPreserved(t *testing.T) {
	c := compile(t, "$.b.card", "pan")
	out, err := c.Replace(raws(`{"z":1,"a":1.50,"b":{"card":"4111"}}`), []Field{{0, "$.b.card", "pan", "4111"}}, []string{"tok"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"z":1,"a":1.50,"b":{"card":"tok"}}`; string(out[0]) != want {
		t.Errorf("got %s, want %s", out[0], want)
	}
	// Big and odd numbers, unknown members and whitespace survive too.
	doc := "{ \"n\": 123456789012345678901234567890, \"f\": -0.000000000000000000001e+400,\n\t\"unknown\": {\"deep\": [1, 2.0, 3E-2]}, \"b\": {\"card\": \"4111\" } }"
	fields, _, err := c.Extract(raws(doc))
	if err != nil {
		t.Fatal(err)
	}
	out, err = c.Replace(raws(doc), fields, []string{"tok"})
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Replace(doc, `"4111"`, `"tok"`, 1); string(out[0]) != want {
		t.Errorf("got %s, want %s", out[0], want)
	}
}

func TestMissingAndNullSkipped(t *testing.T) {
	c := compile(t, "$.customer.email", "email", "$.items[*].note", "opaque", "$.items[5].note", "opaque", "$.a.*", "opaque")
	for _, doc := range []string{
		`{}`,
		`{"customer": null, "items": null, "a": null}`,
		`{"customer": {}, "items": [], "a": {}}`,
		`{"customer": {"email": null}, "items": [{}, {"note": null}, null], "a": {"x": null}}`,
		`{"customer": {"name": "x"}, "items": [{"other": "x"}]}`,
		`null`,
	} {
		fields, ferrs, err := c.Extract(raws(doc))
		if err != nil || len(fields) != 0 || len(ferrs) != 0 {
			t.Errorf("%s: fields %v, field errors %v, err %v", doc, fields, ferrs, err)
		}
		out, err := c.Replace(raws(doc), nil, nil)
		if err != nil || string(out[0]) != doc {
			t.Errorf("%s: Replace = %s, %v", doc, out[0], err)
		}
	}
}

func TestFieldErrors(t *testing.T) {
	c := compile(t, "$.payment.card", "pan", "$.customer.email", "email", "$.items[*].note", "opaque", "$.tags.*", "opaque")
	doc := `{"payment": {"card": 4111111111111111}, "customer": "ann@example.com",
		"items": [{"note": true}, {"note": {"text": "x"}}, {"note": ["x"]}, {"note": "ok"}, "stray", 7],
		"tags": ["x"]}`
	fields, ferrs, err := c.Extract(raws(`{}`, doc))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Field{{1, "$.items[3].note", "opaque", "ok"}}; !reflect.DeepEqual(fields, want) {
		t.Errorf("fields %+v, want %+v", fields, want)
	}
	want := []string{
		"record: doc 1: value at $.payment.card is a number; send it as a string",
		"record: doc 1: value at $.customer is a string, but rule $.customer.email needs an object there",
		"record: doc 1: value at $.items[0].note is a boolean, not a string",
		"record: doc 1: value at $.items[1].note is an object, not a string",
		"record: doc 1: value at $.items[2].note is an array, not a string",
		"record: doc 1: value at $.items[4] is a string, but rule $.items[*].note needs an object there",
		"record: doc 1: value at $.items[5] is a number, but rule $.items[*].note needs an object there",
		"record: doc 1: value at $.tags is an array, but rule $.tags.* needs an object there",
	}
	var got []string
	for _, fe := range ferrs {
		got = append(got, fe.Error())
		if !errors.Is(fe, ErrWrongType) || strings.Contains(fe.Error(), "4111") || strings.Contains(fe.Error(), "ann@") {
			t.Errorf("%v: leaks a value or does not wrap ErrWrongType", fe)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("field errors:\n got %q\nwant %q", got, want)
	}
	if fe := ferrs[0]; fe != (FieldError{Doc: 1, Path: "$.payment.card", Rule: "$.payment.card", Template: "pan", Got: "number", Want: "string"}) {
		t.Errorf("first field error %+v", fe)
	}
	if r := ferrs[0].Reason(); r != "value at $.payment.card is a number; send it as a string" {
		t.Errorf("Reason() = %q", r)
	}
	// An object where an array is needed, and a selected object that other rules go into.
	c = compile(t, "$.items[*]", "opaque", "$.a", "opaque", "$.a.b", "email")
	_, ferrs, err = c.Extract(raws(`{"items": {"x": "y"}, "a": {"b": "c"}}`))
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, fe := range ferrs {
		got = append(got, fe.Reason())
	}
	want = []string{
		"value at $.items is an object, but rule $.items[*] needs an array there",
		"value at $.a is an object, not a string",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("field errors:\n got %q\nwant %q", got, want)
	}
}

// A document of the wrong shape at the root is reported like any value on the way.
func TestRootShape(t *testing.T) {
	c := compile(t, "$.card", "pan", "$[0]", "opaque")
	_, ferrs, err := c.Extract(raws(`[]`, `{}`, `"x"`, `null`, `7`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fe := range ferrs {
		got = append(got, fe.Error())
	}
	want := []string{
		"record: doc 0: value at $ is an array, but rule $.card needs an object there",
		"record: doc 1: value at $ is an object, but rule $[0] needs an array there",
		"record: doc 2: value at $ is a string, but rule $.card needs an object there",
		"record: doc 4: value at $ is a number, but rule $.card needs an object there",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("field errors:\n got %q\nwant %q", got, want)
	}
}

func TestFirstRuleWins(t *testing.T) {
	c := compile(t, "$.items[1].card", "pan", "$.items[*].card", "opaque", "$.*.x", "email", "$.a.x", "name")
	fields, _, err := c.Extract(raws(`{"items": [{"card": "a"}, {"card": "b"}], "a": {"x": "y"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{
		{0, "$.items[0].card", "opaque", "a"},
		{0, "$.items[1].card", "pan", "b"},
		{0, "$.a.x", "email", "y"},
	}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("fields %+v, want %+v", fields, want)
	}
}

func TestUnicodeAndEscapes(t *testing.T) {
	c := compile(t, "$.card", "opaque", "$.email", "email", "$.*", "name", "$['a.b']", "opaque", "$", "opaque")
	doc := `{"card": "caf\u00e9 \"q\" \\ \/ \ud83d\ude00 \n\t\u0000 ü ☃", "e\u006dail": "x", "a.b": "dotted", "it's": "apos", "": "empty", "\u2028": "ls"}`
	fields, _, err := c.Extract(raws(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{
		{0, "$.card", "opaque", "café \"q\" \\ / 😀 \n\t\x00 ü ☃"},
		{0, "$.email", "email", "x"},      // escaped member names match
		{0, "$['a.b']", "name", "dotted"}, // $.* comes first
		{0, `$['it\'s']`, "name", "apos"},
		{0, "$['']", "name", "empty"},
		{0, "$['\u2028']", "name", "ls"},
	}
	if !reflect.DeepEqual(fields, want) {
		t.Fatalf("fields:\n got %#v\nwant %#v", fields, want)
	}
	repl := []string{"new \"quoted\" \\ é\u2028\u2029\x01\x1f\x7f<>&\b\f\r\n\t😀", "y", "z", "w", "v", "u"}
	out, err := c.Replace(raws(doc), fields, repl)
	if err != nil {
		t.Fatal(err)
	}
	wantDoc := `{"card": "new \"quoted\" \\ é\u2028\u2029\u0001\u001f` + "\x7f" + `<>&\b\f\r\n\t😀", "e\u006dail": "y", "a.b": "z", "it's": "w", "": "v", "\u2028": "u"}`
	if string(out[0]) != wantDoc {
		t.Fatalf("Replace:\n got %s\nwant %s", out[0], wantDoc)
	}
	again, _, err := c.Extract(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(values(again), repl) {
		t.Fatalf("re-extracted %+q, want %+q", values(again), repl)
	}
	// A document that is one string.
	fields, _, err = c.Extract(raws(` "caf\u00e9" `))
	if err != nil || !reflect.DeepEqual(fields, []Field{{0, "$", "opaque", "café"}}) {
		t.Fatalf("root string: %+v, %v", fields, err)
	}
	out, err = c.Replace(raws(` "caf\u00e9" `), fields, []string{"tok"})
	if err != nil || string(out[0]) != ` "tok" ` {
		t.Fatalf("root string: %s, %v", out[0], err)
	}
}

func TestBatch(t *testing.T) {
	c := compile(t, "$.card", "pan", "$.notes[*]", "opaque")
	docs := raws(`{"card":"1"}`, `{"other":1}`, `{"notes":["a","b"],"card":"2"}`, `{}`, `{"card":"3","notes":[]}`)
	fields, ferrs, err := c.Extract(docs)
	if err != nil || len(ferrs) != 0 {
		t.Fatal(err, ferrs)
	}
	want := []Field{
		{0, "$.card", "pan", "1"},
		{2, "$.notes[0]", "opaque", "a"},
		{2, "$.notes[1]", "opaque", "b"},
		{2, "$.card", "pan", "2"},
		{4, "$.card", "pan", "3"},
	}
	if !reflect.DeepEqual(fields, want) {
		t.Fatalf("fields:\n got %+v\nwant %+v", fields, want)
	}
	// Some fields only (say the others failed), in another order; original values back for
	// a failed one.
	sub := []Field{fields[4], fields[1], fields[3], fields[2]}
	out, err := c.Replace(docs, sub, []string{"t3", "ta", "2", "tb"})
	if err != nil {
		t.Fatal(err)
	}
	wantDocs := []string{`{"card":"1"}`, `{"other":1}`, `{"notes":["ta","tb"],"card":"2"}`, `{}`, `{"card":"t3","notes":[]}`}
	for i := range out {
		if string(out[i]) != wantDocs[i] {
			t.Errorf("doc %d: got %s, want %s", i, out[i], wantDocs[i])
		}
	}
	if &out[0][0] != &docs[0][0] {
		t.Error("an unchanged document was copied")
	}
}

func TestMalformedDocuments(t *testing.T) {
	c := compile(t, "$.a", "opaque")
	deep := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	tests := []struct{ doc, msg string }{
		{``, "record: doc 1: the document is empty (at byte 0)"},
		{" \n\t", "record: doc 1: the document is empty (at byte 3)"},
		{`{"a":"SECRET"`, "record: doc 1: unexpected end of the document in an object (at byte 13)"},
		{`{"a":"SECRET`, "record: doc 1: unterminated string (at byte 5)"},
		{`{"a":"SECRET"}x`, "record: doc 1: unexpected data after the JSON value (at byte 14)"},
		{`{"a":"SECRET"} {}`, "record: doc 1: unexpected data after the JSON value (at byte 15)"},
		{`{"a":"SECRET",}`, "record: doc 1: expected a member name (at byte 14)"},
		{`{"a" "SECRET"}`, "record: doc 1: expected ':' after a member name (at byte 5)"},
		{`{"a":"SECRET" "b":1}`, "record: doc 1: expected ',' or '}' after an object member (at byte 14)"},
		{`["SECRET" 1]`, "record: doc 1: expected ',' or ']' after an array element (at byte 10)"},
		{`["SECRET",]`, "record: doc 1: unexpected character; expected a JSON value (at byte 10)"},
		{`{'a':1}`, "record: doc 1: expected a member name (at byte 1)"},
		{`{a:1}`, "record: doc 1: expected a member name (at byte 1)"},
		{`{"a":SECRET}`, "record: doc 1: unexpected character; expected a JSON value (at byte 5)"},
		{`{"a":nul}`, "record: doc 1: invalid literal; expected true, false or null (at byte 5)"},
		{`{"a":True}`, "record: doc 1: unexpected character; expected a JSON value (at byte 5)"},
		{`{"a":01}`, "record: doc 1: expected ',' or '}' after an object member (at byte 6)"},
		{`{"a":-}`, "record: doc 1: invalid number (at byte 6)"},
		{`{"a":1.}`, "record: doc 1: invalid number: expected a digit after '.' (at byte 7)"},
		{`{"a":1e}`, "record: doc 1: invalid number: expected a digit in the exponent (at byte 7)"},
		{`{"a":.5}`, "record: doc 1: unexpected character; expected a JSON value (at byte 5)"},
		{`{"a":+5}`, "record: doc 1: unexpected character; expected a JSON value (at byte 5)"},
		{`{"a":NaN}`, "record: doc 1: unexpected character; expected a JSON value (at byte 5)"},
		{`{"a":"SEC\x"}`, "record: doc 1: invalid escape in a string (at byte 9)"},
		{`{"a":"SEC\u12G4"}`, "record: doc 1: invalid \\u escape in a string (at byte 9)"},
		{`{"a":"SEC\ud800"}`, "record: doc 1: unpaired surrogate in a \\u escape (at byte 9)"},
		{`{"a":"SEC\udc00\ud800"}`, "record: doc 1: unpaired surrogate in a \\u escape (at byte 9)"},
		{`{"a":"SEC\ud800\u0041"}`, "record: doc 1: unpaired surrogate in a \\u escape (at byte 9)"},
		{"{\"a\":\"SEC\tRET\"}", "record: doc 1: control character in a string; escape it (at byte 9)"},
		{"{\"a\":\"SEC\xffRET\"}", "record: doc 1: invalid UTF-8 in a string (at byte 9)"},
		{"{\"a\":\"SEC\xed\xa0\x80RET\"}", "record: doc 1: invalid UTF-8 in a string (at byte 9)"}, // UTF-8 encoded surrogate
		{"\xef\xbb\xbf{}", "record: doc 1: unexpected character; expected a JSON value (at byte 0)"},
		{`{"a":"SECRET","a":"SECRET"}`, "record: doc 1: duplicate member name at $.a (at byte 14)"},
		{`{"b":{"x":1,"\u0078":2}}`, "record: doc 1: duplicate member name at $.b.x (at byte 12)"},
		{`{"k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":0,"k11":1,"k12":2,"k13":3,"k14":4,"k15":5,"k16":6,"k17":7,"k3":3}`,
			"record: doc 1: duplicate member name at $.k3 (at byte 135)"},
		{"[" + deep + "]", "record: doc 1: nested deeper than 64 levels (at byte 64)"},
		{`{"a":` + strings.Repeat(`{"a":`, MaxDepth), "record: doc 1: nested deeper than 64 levels (at byte 320)"},
	}
	for _, tc := range tests {
		docs := raws(`{"a":"fine"}`, tc.doc)
		for _, call := range []string{"Extract", "Replace"} {
			var err error
			if call == "Extract" {
				_, _, err = c.Extract(docs)
			} else {
				_, err = c.Replace(docs, nil, nil)
			}
			if err == nil {
				t.Errorf("%s(%q): no error, want %s", call, tc.doc, tc.msg)
				continue
			}
			if err.Error() != tc.msg {
				t.Errorf("%s(%q):\n got %s\nwant %s", call, tc.doc, err, tc.msg)
			}
			var de *DocError
			if !errors.As(err, &de) || de.Doc != 1 || !errors.Is(err, ErrInvalidDocument) {
				t.Errorf("%s(%q): %v is not a *DocError for doc 1", call, tc.doc, err)
			}
			if strings.Contains(err.Error(), "SEC") {
				t.Errorf("%s(%q): error %q contains document content", call, tc.doc, err)
			}
			if strings.Contains(tc.msg, "nested") != errors.Is(err, ErrLimit) {
				t.Errorf("%s(%q): errors.Is(ErrLimit) wrong", call, tc.doc)
			}
		}
	}
	// Exactly MaxDepth levels is fine, and so are all JSON whitespace characters.
	for _, doc := range []string{deep, `{"a":` + strings.Repeat(`{"a":`, MaxDepth-1) + `"x"` + strings.Repeat("}", MaxDepth), " \t\r\n{ \"a\" : \"x\" } \r\n"} {
		if _, _, err := c.Extract(raws(doc)); err != nil {
			t.Errorf("%.40s...: %v", doc, err)
		}
	}
}

func TestFieldLimit(t *testing.T) {
	c := compile(t, "$[*]", "opaque")
	doc := "[" + strings.Repeat(`"x",`, MaxFields) + "1]" // MaxFields strings and a number
	_, _, err := c.Extract(raws(doc))
	if err == nil || !errors.Is(err, ErrLimit) || err.Error() != "record: limit exceeded: the batch selects more than 100000 values (at doc 0)" {
		t.Fatalf("err = %v", err)
	}
	fields, _, err := c.Extract(raws(doc[:len(doc)-3] + "]"))
	if err != nil || len(fields) != MaxFields {
		t.Fatalf("%d fields, %v", len(fields), err)
	}
	// The limit counts across the batch.
	c.maxFields = 3
	if _, _, err := c.Extract(raws(`["a","b"]`, `["c"]`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Extract(raws(`["a","b"]`, `["c",1]`)); err == nil || err.Error() != "record: limit exceeded: the batch selects more than 3 values (at doc 1)" {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.Replace(raws(`["a","b"]`, `["c",1]`), nil, nil); !errors.Is(err, ErrLimit) {
		t.Fatalf("Replace: err = %v", err)
	}
	four := []Field{{0, "$[0]", "opaque", "a"}, {0, "$[1]", "opaque", "b"}, {0, "$[2]", "opaque", "c"}, {0, "$[3]", "opaque", "d"}}
	if _, err := c.Replace(raws(`["a","b","c","d"]`), four, make([]string, 4)); err == nil || err.Error() != "record: fields do not match the documents: 4 fields; a batch selects at most 3" {
		t.Fatalf("Replace: err = %v", err)
	}
}

func TestReplaceMismatch(t *testing.T) {
	const secret = "SECRET-4111-VALUE"
	c := compile(t, "$.card", "pan", "$.items[*]", "opaque")
	docs := raws(`{"card":"`+secret+`","items":["a",1]}`, `{"card":"x"}`)
	fields, _, err := c.Extract(docs)
	if err != nil {
		t.Fatal(err)
	}
	f0 := fields[0] // doc 0 $.card
	tests := []struct {
		fields []Field
		repl   []string
		msg    string
	}{
		{[]Field{f0}, nil, "1 fields but 0 replacements"},
		{[]Field{{2, "$.card", "pan", "x"}}, []string{"t"}, "field 0 ($.card): doc 2 is not in the batch of 2"},
		{[]Field{{-1, "$.card", "pan", "x"}}, []string{"t"}, "field 0 ($.card): doc -1 is not in the batch of 2"},
		{[]Field{{0, "$.other", "pan", secret}}, []string{"t"}, "field 0 (doc 0, $.other): the policy selects no string there"},
		{[]Field{{0, "$.items[1]", "opaque", "1"}}, []string{"t"}, "field 0 (doc 0, $.items[1]): the policy selects no string there"},
		{[]Field{{0, "$['card']", "pan", secret}}, []string{"t"}, "field 0 (doc 0, $['card']): the policy selects no string there"},
		{[]Field{f0, f0}, []string{"t", "u"}, "field 1 (doc 0, $.card): same place as field 0"},
		{[]Field{{0, "$.card", "opaque", secret}}, []string{"t"}, `field 0 (doc 0, $.card): template "opaque", but the policy selects it for "pan"`},
		{[]Field{{0, "$.card", "pan", secret + "x"}}, []string{"t"}, "field 0 (doc 0, $.card): the document holds another value there"},
		{[]Field{{1, "$.card", "pan", secret}}, []string{"t"}, "field 0 (doc 1, $.card): the document holds another value there"},
		{[]Field{f0}, []string{secret + "\xff"}, "replacement 0 (doc 0, $.card) is not valid UTF-8"},
	}
	for _, tc := range tests {
		_, err := c.Replace(docs, tc.fields, tc.repl)
		want := "record: fields do not match the documents: " + tc.msg
		if err == nil || err.Error() != want || !errors.Is(err, ErrFieldMismatch) {
			t.Errorf("Replace(%v):\n got %v\nwant %s", tc.fields, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error %q contains a value", err)
		}
	}
}

// No error of the package contains a document value, whatever goes wrong.
func TestErrorsNeverContainValues(t *testing.T) {
	const secret = "SECRET-4111-VALUE"
	c := compile(t, "$.card", "pan", "$.num", "pan", "$.obj", "opaque", "$.str.x", "opaque", "$.list[*]", "opaque")
	docs := []string{
		`{"card":"` + secret + `"}`,
		`{"num":` + "4111411141114111" + `,"obj":{"v":"` + secret + `"},"str":"` + secret + `","list":["` + secret + `",true,{"v":"` + secret + `"}]}`,
		`{"card":"` + secret + `","card":"` + secret + `"}`,
		`{"card":"` + secret + `\x"}`,
		`{"card":"` + secret + "\xff" + `"}`,
		`{"card":"` + secret + `"` + secret + `}`,
		`{"card":"` + secret,
		`{"` + "\x01" + secret + `":1}`,
		`[` + secret + `]`,
		`{"card":"` + secret + `"} ` + secret,
		strings.Repeat(`{"card":"`+secret+`","x":`, MaxDepth+1),
	}
	var all []string
	for i, doc := range docs {
		fields, ferrs, err := c.Extract(raws(doc))
		if err != nil {
			all = append(all, err.Error())
		}
		for _, fe := range ferrs {
			all = append(all, fe.Error(), fe.Reason(), fmt.Sprintf("%+v", fe.Path))
		}
		if _, err := c.Replace(raws(doc), fields, make([]string, len(fields)+i%2)); err != nil {
			all = append(all, err.Error())
		}
		if _, err := c.Replace(raws(doc), []Field{{0, "$.card", "pan", "other"}}, []string{secret}); err != nil {
			all = append(all, err.Error())
		}
	}
	if len(all) < len(docs) {
		t.Fatalf("only %d errors", len(all))
	}
	for _, e := range all {
		if strings.Contains(e, "SECRET") || strings.Contains(e, "4111") {
			t.Errorf("error contains a value: %s", e)
		}
	}
}

func TestReplaceIdentity(t *testing.T) {
	c := compile(t, "$.*", "opaque", "$.*[*]", "opaque", "$.*.*", "opaque")
	doc := "{\"a\" : \"caf\\u00e9\\/\" ,\n \"b\":[ \"x\\\"y\" , 1.0 ,\"\\ud83d\\ude00\"], \"c\":{\"d\":\"\\t\"}, \"e\": 1e-7}"
	fields, _, err := c.Extract(raws(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(fields) != 4 {
		t.Fatalf("fields %+v", fields)
	}
	out, err := c.Replace(raws(doc), fields, values(fields))
	if err != nil {
		t.Fatal(err)
	}
	if string(out[0]) != doc {
		t.Errorf("got %s, want %s", out[0], doc)
	}
}

func BenchmarkExtractReplace(b *testing.B) {
	c := compile(b, "$.orders[*].customer.email", "email", "$.orders[*].items[*].card", "pan", "$.orders[*].note", "opaque")
	var sb strings.Builder
	sb.WriteString(`{"orders":[`)
	for i := range 2000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":%d,"customer":{"email":"user%d@example.com","name":"N\u00e9"},"items":[{"card":"4111111111111111","qty":1.50},{"card":"5500000000000004","sku":"x"}],"note":"leave at door","total":123.45}`, i, i)
	}
	sb.WriteString(`]}`)
	docs := raws(sb.String())
	b.SetBytes(int64(sb.Len()))
	for b.Loop() {
		fields, _, err := c.Extract(docs)
		if err != nil {
			b.Fatal(err)
		}
		repl := make([]string, len(fields))
		for i := range repl {
			repl[i] = "tok"
		}
		if _, err := c.Replace(docs, fields, repl); err != nil {
			b.Fatal(err)
		}
	}
}

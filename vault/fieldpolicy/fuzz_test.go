package fieldpolicy

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzExtractReplace(f *testing.F) {
	seeds := []struct{ doc, path string }{
		{`{"z":1,"a":1.50,"b":{"card":"4111"}}`, "$.b.card"},
		{`{"items":[{"note":"a"},{"note":null},{"note":3},{}]}`, "$.items[*].note"},
		{`{"orders":[{"items":[{"card":"1"},{"card":"2"}]}]}`, "$.orders[*].items[*].card"},
		{`{"a.b":{"c d":["x","y"]}}`, "$['a.b'][\"c d\"][1]"},
		{`{"e\u006dail":"caf\u00e9 \"q\" \ud83d\ude00"}`, "$.email"},
		{`{"":"", "*":"*", "'":"\\"}`, "$.*"},
		{`["a",["b",{"c":"d"}]]`, "$[1][1].c"},
		{`"root"`, "$"},
		{` [ 1 , -0.5e+3 , true , false , null , "s" ] `, "$[*]"},
		{`{"a":{"a":{"a":"x"}},"a2":[[["y"]]]}`, "$.*.*.*"},
		{`{"a":1,"a":2}`, "$.a"},
		{`{"a":"\ud800"}`, "$.a"},
		{"{\"a\":\"\xff\"}", "$.a"},
		{`{"a":[}`, "$..a"},
		{`{"a":"x"}`, "$[?(@.a)]"},
		{`{"a":"x"}`, "$['a'"},
	}
	for _, s := range seeds {
		f.Add([]byte(s.doc), s.path)
	}
	f.Fuzz(func(t *testing.T, doc []byte, path string) {
		p := Policy{Rules: []Rule{{path, "opaque"}, {"$.*[*]", "pan"}}}
		c, err := p.Compile()
		if err != nil {
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("Compile: %v does not wrap ErrInvalidPolicy", err)
			}
			p = Policy{Rules: []Rule{{"$.*", "opaque"}, {"$[*]", "pan"}}}
			if c, err = p.Compile(); err != nil {
				t.Fatal(err)
			}
		}
		docs := []json.RawMessage{doc, json.RawMessage(`{"fixed":["x"]}`), doc}
		fields, ferrs, err := c.Extract(docs)
		if err != nil {
			var de *DocError
			if !errors.As(err, &de) {
				if errors.Is(err, ErrLimit) {
					return
				}
				t.Fatalf("Extract: %v is not a *DocError", err)
			}
			if json.Valid(doc) && utf8.Valid(doc) {
				// Valid JSON is refused only for what the package adds to JSON's rules.
				if !strings.HasPrefix(de.Problem, "duplicate member name") && !strings.HasPrefix(de.Problem, "nested deeper") &&
					!strings.HasPrefix(de.Problem, "unpaired surrogate") {
					t.Fatalf("Extract refused valid JSON: %v", err)
				}
			}
			return
		}
		if !json.Valid(doc) {
			t.Fatalf("Extract accepted invalid JSON %q", doc)
		}
		checkAgainstReference(t, p, docs, fields)
		for _, fe := range ferrs {
			if fe.Want == "string" && fe.Got == "string" {
				t.Fatalf("field error for a selected string: %v", fe)
			}
		}

		// Replacing every field by its own value gives the documents back byte for byte.
		same, err := c.Replace(docs, fields, values(fields))
		if err != nil {
			t.Fatalf("Replace with the extracted values: %v", err)
		}
		for i := range docs {
			if !bytes.Equal(same[i], docs[i]) {
				t.Fatalf("doc %d: Replace with the extracted values changed it:\n%q\n%q", i, docs[i], same[i])
			}
		}

		// New values land where the old were and nowhere else; putting the old values back
		// gives JSON semantically equal to the input.
		repl := make([]string, len(fields))
		for i, f := range fields {
			repl[i] = "«" + f.Value + "\"\\\u2028\x01é»"
		}
		changed, err := c.Replace(docs, fields, repl)
		if err != nil {
			t.Fatalf("Replace: %v", err)
		}
		fields2, ferrs2, err := c.Extract(changed)
		if err != nil {
			t.Fatalf("Extract after Replace: %v", err)
		}
		if len(fields2) != len(fields) || !reflect.DeepEqual(ferrs2, ferrs) {
			t.Fatalf("Extract after Replace: %d fields, %v; want %d, %v", len(fields2), ferrs2, len(fields), ferrs)
		}
		for i := range fields {
			if f, g := fields[i], fields2[i]; g.Doc != f.Doc || g.Path != f.Path || g.Template != f.Template || g.Value != repl[i] {
				t.Fatalf("field %d after Replace: %+v, want %+v with value %q", i, g, f, repl[i])
			}
		}
		back, err := c.Replace(changed, fields2, values(fields))
		if err != nil {
			t.Fatalf("Replace back: %v", err)
		}
		for i := range docs {
			if a, b := decode(t, docs[i]), decode(t, back[i]); !reflect.DeepEqual(a, b) {
				t.Fatalf("doc %d: not the same JSON after a round trip:\n%s\n%s", i, docs[i], back[i])
			}
		}
	})
}

func decode(t *testing.T, doc []byte) any {
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %q: %v", doc, err)
	}
	return v
}

// checkAgainstReference evaluates the policy on the decoded documents with a naive
// evaluator and compares the selected strings (path, template, value) with fields.
func checkAgainstReference(t *testing.T, p Policy, docs []json.RawMessage, fields []Field) {
	for d, doc := range docs {
		want := map[string]Field{}
		v := decode(t, doc)
		for _, r := range p.Rules {
			steps, err := parsePath(r.Path)
			if err != nil {
				t.Fatal(err)
			}
			refSelect(v, steps, "$", func(path, value string) {
				if _, ok := want[path]; !ok {
					want[path] = Field{d, path, r.Template, value}
				}
			})
		}
		got := map[string]Field{}
		for _, f := range fields {
			if f.Doc == d {
				if _, dup := got[f.Path]; dup {
					t.Fatalf("doc %d: path %s extracted twice", d, f.Path)
				}
				got[f.Path] = f
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("doc %d %q:\n got %+v\nwant %+v", d, doc, got, want)
		}
	}
}

func refSelect(v any, steps []step, path string, emit func(path, value string)) {
	if len(steps) == 0 {
		if s, ok := v.(string); ok {
			emit(path, s)
		}
		return
	}
	obj, _ := v.(map[string]any)
	arr, _ := v.([]any)
	switch s, rest := steps[0], steps[1:]; s.kind {
	case stepMember:
		if c, ok := obj[s.name]; ok {
			refSelect(c, rest, string(appendMember([]byte(path), s.name)), emit)
		}
	case stepAnyMember:
		for k, c := range obj {
			refSelect(c, rest, string(appendMember([]byte(path), k)), emit)
		}
	case stepIndex:
		if s.index < len(arr) {
			refSelect(arr[s.index], rest, path+"["+itoa(s.index)+"]", emit)
		}
	case stepAnyIndex:
		for i, c := range arr {
			refSelect(c, rest, path+"["+itoa(i)+"]", emit)
		}
	}
}

func itoa(i int) string { return string(appendInt(nil, i)) }

func appendInt(b []byte, i int) []byte {
	if i >= 10 {
		b = appendInt(b, i/10)
	}
	return append(b, byte('0'+i%10))
}

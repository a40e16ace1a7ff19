package server

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

// randomJSONString mixes ASCII, every control character, quotes, backslashes, HTML
// characters, multi-byte runes, U+2028 and U+FFFD.
func randomJSONString(r *rand.Rand) string {
	pieces := []string{"a", "Z", "0", " ", "\"", "\\", "/", "<", ">", "&", "\u00e9", "\u20ac", "\U0001F600", "\u2028", "\ufffd", "\x7f"}
	for c := range 0x20 {
		pieces = append(pieces, string(rune(c)))
	}
	var sb strings.Builder
	for range r.IntN(12) {
		sb.WriteString(pieces[r.IntN(len(pieces))])
	}
	return sb.String()
}

// The hand-written replies (jsonfast.go) are byte for byte what protojson writes, once its
// randomized whitespace is compacted away, and decode to the same message.
func TestFastJSONMatchesProtojson(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	pj := protojson.MarshalOptions{EmitUnpopulated: false}
	for i := range 3000 {
		var msg proto.Message
		n := r.IntN(5)
		if i%2 == 0 {
			m := &tvpb.TokenizeResponse{}
			for range n {
				m.Results = append(m.Results, &tvpb.TokenizeResult{Token: randomJSONString(r)})
			}
			msg = m
		} else {
			m := &tvpb.DetokenizeResponse{}
			for range n {
				m.Results = append(m.Results, &tvpb.DetokenizeResult{Value: randomJSONString(r)})
			}
			msg = m
		}
		got, ok := marshalFast(msg)
		if !ok {
			t.Fatalf("marshalFast refused %v", msg)
		}
		want, err := pj.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, want); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, compact.Bytes()) {
			t.Fatalf("fast JSON differs:\n got %s\nwant %s", got, compact.Bytes())
		}
		back := msg.ProtoReflect().New().Interface()
		if err := protojson.Unmarshal(got, back); err != nil || !proto.Equal(back, msg) {
			t.Fatalf("fast JSON %s decodes to %v (%v), want %v", got, back, err, msg)
		}
		if cap(got) != len(got) {
			t.Fatalf("size computed as %d, wrote %d", cap(got), len(got))
		}
	}
}

// Replies the fast path does not cover go to protojson: per-item errors, invalid UTF-8,
// other messages.
func TestFastJSONDeclines(t *testing.T) {
	for _, v := range []any{
		&tvpb.TokenizeResponse{Results: []*tvpb.TokenizeResult{{Token: "a"}, {Error: &tvpb.ItemError{Code: "INVALID_ARGUMENT", Message: "m"}}}},
		&tvpb.DetokenizeResponse{Results: []*tvpb.DetokenizeResult{{Value: "\xff"}}},
		&tvpb.DetokenizeResponse{Results: []*tvpb.DetokenizeResult{nil}},
		&tvpb.TokenizeRequest{},
		map[string]string{},
	} {
		if b, ok := marshalFast(v); ok {
			t.Errorf("marshalFast(%v) = %s, want it declined", v, b)
		}
	}
}

// The fast path knows these fields and no others: a field added to the protos must be added
// to marshalFast (or the message dropped from it), or its replies would silently lack it.
func TestFastJSONKnowsEveryField(t *testing.T) {
	for _, c := range []struct {
		m      proto.Message
		fields []string
	}{
		{&tvpb.TokenizeResponse{}, []string{"results"}},
		{&tvpb.TokenizeResult{}, []string{"token", "error"}},
		{&tvpb.DetokenizeResponse{}, []string{"results"}},
		{&tvpb.DetokenizeResult{}, []string{"value", "error"}},
	} {
		var got []string
		fds := c.m.ProtoReflect().Descriptor().Fields()
		for i := range fds.Len() {
			got = append(got, string(fds.Get(i).Name()))
			if fds.Get(i).Kind() == protoreflect.StringKind && fds.Get(i).JSONName() != string(fds.Get(i).Name()) {
				t.Errorf("%s: JSON name %s differs from %s", fds.Get(i).FullName(), fds.Get(i).JSONName(), fds.Get(i).Name())
			}
		}
		if !slices.Equal(got, c.fields) {
			t.Errorf("%s has fields %v; marshalFast knows %v: update jsonfast.go", c.m.ProtoReflect().Descriptor().FullName(), got, c.fields)
		}
	}
}

// randomRequestJSON writes tokenize and detokenize bodies, mostly well-formed, with the
// things decodeFast must decline mixed in: escapes, null, numbers, ttl, unknown and repeated
// fields, empty strings, invalid UTF-8, control characters, truncation and trailing data.
func randomRequestJSON(r *rand.Rand, tokenize bool) string {
	itemKeys := []string{"token", "domain", "template"}
	topKeys := []string{"items", "purpose"}
	if tokenize {
		itemKeys = []string{"value", "template", "domain", "subject"}
		topKeys = []string{"items"}
	}
	odd := func() bool { return r.IntN(30) == 0 }
	ws := func() string { return []string{"", "", " ", "\n\t", "\r "}[r.IntN(5)] }
	str := func() string {
		if odd() {
			return []string{`null`, `1`, `true`, `"\u00e9"`, `"a\"b"`, `""`, "\"\xff\"", "\"a\x01\"", `"3600s"`, `{}`, `[]`}[r.IntN(11)]
		}
		s := []string{"4111111111111111", "pan", "acme", "tok_ABC-12", "e\u00e9\u20ac", "x y", "<&>"}[r.IntN(7)]
		return `"` + s + `"`
	}
	var b strings.Builder
	b.WriteString(ws() + "{")
	n := 0
	for _, k := range topKeys {
		if r.IntN(5) == 0 {
			continue
		}
		if odd() {
			k = []string{"Items", "ttl", "extra", "purpose"}[r.IntN(4)]
		}
		if n > 0 {
			b.WriteString("," + ws())
		}
		n++
		b.WriteString(ws() + `"` + k + `"` + ws() + ":" + ws())
		if k != "items" {
			b.WriteString(str())
			continue
		}
		b.WriteString("[")
		for i := range r.IntN(4) {
			if i > 0 {
				b.WriteString("," + ws())
			}
			b.WriteString("{")
			m := 0
			for _, ik := range itemKeys {
				if r.IntN(3) == 0 {
					continue
				}
				if odd() {
					ik = []string{"ttl", "Token", "value", "token", "x"}[r.IntN(5)]
				}
				if m > 0 {
					b.WriteString(",")
				}
				m++
				b.WriteString(ws() + `"` + ik + `"` + ws() + ":" + ws() + str() + ws())
			}
			b.WriteString("}")
		}
		b.WriteString(ws() + "]")
	}
	if odd() { // a repeated field
		b.WriteString(`,"items":[]`)
	}
	b.WriteString("}" + ws())
	s := b.String()
	switch r.IntN(40) {
	case 0:
		s = s[:r.IntN(len(s))]
	case 1:
		s += "{}"
	case 2:
		s += "x"
	}
	return s
}

// Whatever decodeFast accepts, protojson (the gateway's decoder) accepts too and decodes to
// the same message; and it accepts the plain bodies clients send.
func TestFastDecodeMatchesProtojson(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	accepted := 0
	for i := range 20000 {
		tokenize := i%2 == 0
		data := randomRequestJSON(r, tokenize)
		var fast, slow proto.Message = &tvpb.DetokenizeRequest{}, &tvpb.DetokenizeRequest{}
		if tokenize {
			fast, slow = &tvpb.TokenizeRequest{}, &tvpb.TokenizeRequest{}
		}
		if !decodeFast([]byte(data), fast) {
			if !proto.Equal(fast, fast.ProtoReflect().New().Interface()) {
				t.Fatalf("decodeFast declined %q but left %v", data, fast)
			}
			continue
		}
		accepted++
		if err := protojson.Unmarshal([]byte(data), slow); err != nil {
			t.Fatalf("decodeFast accepted %q, which protojson refuses: %v", data, err)
		}
		if !proto.Equal(fast, slow) {
			t.Fatalf("decodeFast(%q) = %v, protojson: %v", data, fast, slow)
		}
	}
	if accepted < 2000 {
		t.Errorf("decodeFast accepted only %d of 20000 bodies", accepted)
	}
	for _, c := range []struct {
		body string
		m    proto.Message
	}{
		{`{"items":[{"value":"4111111111111111","template":"pan"}]}`, &tvpb.TokenizeRequest{}},
		{`{"purpose":"bench","items":[{"token":"t1","domain":"acme"},{"token":"t2"}]}`, &tvpb.DetokenizeRequest{}},
	} {
		if !decodeFast([]byte(c.body), c.m) {
			t.Errorf("decodeFast declined %s", c.body)
		}
	}
}

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

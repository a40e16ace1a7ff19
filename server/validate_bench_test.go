package server

import (
	"testing"

	"buf.build/go/protovalidate"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

// BenchmarkValidateBatch measures protovalidate on the hot batch requests (100 items, as
// clients/go/loadgen sends them: a template on every item, the default domain).
func BenchmarkValidateBatch(b *testing.B) {
	v, err := protovalidate.New()
	if err != nil {
		b.Fatal(err)
	}
	det := &tvpb.DetokenizeRequest{Purpose: "bench"}
	tok := &tvpb.TokenizeRequest{}
	for range 100 {
		det.Items = append(det.Items, &tvpb.DetokenizeItem{Token: "4111119876543210", Template: "pan"})
		tok.Items = append(tok.Items, &tvpb.TokenizeItem{Value: "4111111111111111", Template: "pan"})
	}
	b.Run("detokenize", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := v.Validate(det); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tokenize", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := v.Validate(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

package server

import (
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/protobuf/proto"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

// The protos state the batch limit again as the max_items of each batch request's items;
// this pins those copies to vault.MaxBatch.
func TestProtoBatchLimitIsTheVaults(t *testing.T) {
	for _, m := range []proto.Message{
		&tvpb.TokenizeRequest{}, &tvpb.DetokenizeRequest{}, &tvpb.DeleteTokensRequest{}, &tvpb.VendorDetokenizeRequest{},
	} {
		md := m.ProtoReflect().Descriptor()
		fd := md.Fields().ByName("items")
		if fd == nil {
			t.Errorf("%s has no items field", md.FullName())
			continue
		}
		rules, _ := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
		if got := rules.GetRepeated().GetMaxItems(); got != vault.MaxBatch {
			t.Errorf("%s.items: max_items = %d, vault.MaxBatch = %d; they must agree", md.FullName(), got, vault.MaxBatch)
		}
	}
}

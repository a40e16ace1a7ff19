package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/tokenvault/tokenvault/internal/testenv"
)

// The server tests run testenv's real server: loopback ports, a real bbolt file, real Tink keys.

const rootSecret = testenv.RootSecret

// authCtx returns a context carrying a bearer secret for gRPC calls.
func authCtx(secret string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+secret)
}

type tokenizeResp struct {
	Results []struct {
		Token string `json:"token"`
		Value string `json:"value"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"results"`
}

func decode(t *testing.T, data []byte) tokenizeResp {
	t.Helper()
	var r tokenizeResp
	decodeInto(t, data, &r)
	return r
}

func decodeInto(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

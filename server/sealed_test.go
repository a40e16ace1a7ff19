package server_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/store"
)

// TestSealedUntilUnsealed: without its vault the server answers health 503 and Unavailable,
// writes nothing, and serves normally once unsealed.
func TestSealedUntilUnsealed(t *testing.T) {
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) { c.Vault = nil }))
	code, body := h.Do("GET", "/healthz", "", nil)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("sealed /healthz = %d %s, want 503", code, body)
	}
	code, body = h.Post("/v1/tokens:tokenize", rootSecret, map[string]any{"items": []map[string]string{{"value": "4111111111111111", "template": "pan"}}})
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "sealed") {
		t.Fatalf("sealed tokenize = %d %s, want 503", code, body)
	}
	_, err := tvpb.NewTokenServiceClient(h.Conn).Tokenize(authCtx(rootSecret), &tvpb.TokenizeRequest{Items: []*tvpb.TokenizeItem{{Value: "4111111111111111", Template: "pan"}}})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("sealed gRPC tokenize = %v", err)
	}
	h.Server.Unseal(h.Vault)
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ = h.Do("GET", "/healthz", "", nil)
		if code == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != http.StatusOK {
		t.Fatalf("unsealed /healthz = %d", code)
	}
	if code, body := h.Post("/v1/tokens:tokenize", rootSecret, map[string]any{"items": []map[string]string{{"value": "4111111111111111", "template": "pan"}}}); code != http.StatusOK {
		t.Fatalf("unsealed tokenize = %d %s", code, body)
	}
}

// TestUnsealAfterKEKReturns: a vault whose KEK file is missing cannot be opened; once the file
// is back it can (what serve's unseal loop retries).
func TestUnsealAfterKEKReturns(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := vault.Open(context.Background(), vault.Config{Store: st, KEK: testenv.KEK(t)}); err != nil {
		t.Fatal(err)
	}
	other := testenv.KEK(t)
	if _, err := vault.Open(context.Background(), vault.Config{Store: st, KEK: other}); err == nil {
		t.Fatal("a wrong KEK opened the vault")
	}
}

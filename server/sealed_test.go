package server_test

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenvault/tokenvault/crypto/insecurekek"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/store"
)

// TestSealedUntilUnsealed: without its vault the server answers health 503 and Unavailable,
// writes nothing, and serves normally once unsealed.
func TestSealedUntilUnsealed(t *testing.T) {
	h := startWith(t, func(c *server.Config) { c.Vault = nil }, nil)
	code, body := h.do("GET", "http://"+h.addrs.HTTP+"/healthz", "", nil)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("sealed /healthz = %d %s, want 503", code, body)
	}
	code, body = h.post("/v1/tokens:tokenize", rootSecret, map[string]any{"items": []map[string]string{{"value": "4111111111111111", "template": "pan"}}})
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "sealed") {
		t.Fatalf("sealed tokenize = %d %s, want 503", code, body)
	}
	_, err := h.tokens().Tokenize(authCtx(rootSecret), &tvpb.TokenizeRequest{Items: []*tvpb.TokenizeItem{{Value: "4111111111111111", Template: "pan"}}})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("sealed gRPC tokenize = %v", err)
	}
	h.srv.Unseal(h.vault)
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, _ = h.do("GET", "http://"+h.addrs.HTTP+"/healthz", "", nil)
		if code == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != http.StatusOK {
		t.Fatalf("unsealed /healthz = %d", code)
	}
	if code, body := h.post("/v1/tokens:tokenize", rootSecret, map[string]any{"items": []map[string]string{{"value": "4111111111111111", "template": "pan"}}}); code != http.StatusOK {
		t.Fatalf("unsealed tokenize = %d %s", code, body)
	}
}

// TestKeyLifecycleOverHTTP rotates the data key through the API, lets the background rewrap
// finish, and destroys the old key; every token still detokenizes to its value.
func TestKeyLifecycleOverHTTP(t *testing.T) {
	h := start(t)
	var items []map[string]string
	for i := 0; i < 50; i++ {
		items = append(items, map[string]string{"value": "customer note " + string(rune('a'+i%26)) + strings.Repeat("x", i), "template": "opaque"})
	}
	code, body := h.post("/v1/tokens:tokenize", rootSecret, map[string]any{"items": items})
	if code != http.StatusOK {
		t.Fatalf("tokenize: %d %s", code, body)
	}
	toks := decode(t, body)
	var status1 struct {
		Keys []struct {
			KeyID uint32 `json:"keyId"`
			State string `json:"state"`
		} `json:"keys"`
		RewrapDone bool   `json:"rewrapDone"`
		Remaining  string `json:"remaining"`
	}
	code, body = h.do("GET", "http://"+h.addrs.HTTP+"/v1/keys", rootSecret, nil)
	decodeInto(t, body, &status1)
	if code != http.StatusOK || len(status1.Keys) != 1 {
		t.Fatalf("key status: %d %s", code, body)
	}
	oldKey := status1.Keys[0].KeyID
	if code, body = h.post("/v1/keys:rotate", rootSecret, map[string]any{}); code != http.StatusOK {
		t.Fatalf("rotate: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body = h.do("GET", "http://"+h.addrs.HTTP+"/v1/keys", rootSecret, nil)
		status1.RewrapDone, status1.Remaining = false, ""
		decodeInto(t, body, &status1)
		if status1.RewrapDone && (status1.Remaining == "" || status1.Remaining == "0") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rewrap did not finish: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, step := range []string{"disable", "destroy"} {
		if code, body := h.post("/v1/keys/"+itoa(oldKey)+":"+step, rootSecret, map[string]any{}); code != http.StatusOK {
			t.Fatalf("%s old key: %d %s", step, code, body)
		}
	}
	var ditems []map[string]string
	for _, r := range toks.Results {
		ditems = append(ditems, map[string]string{"token": r.Token})
	}
	code, body = h.post("/v1/tokens:detokenize", rootSecret, map[string]any{"items": ditems})
	if code != http.StatusOK {
		t.Fatalf("detokenize: %d %s", code, body)
	}
	for i, r := range decode(t, body).Results {
		if r.Value != items[i]["value"] {
			t.Fatalf("after rotation and destroy, item %d = %+v", i, r)
		}
	}
	// Erasure over HTTP: a receipt comes back and the token is gone.
	code, body = h.post("/v1/tokens:delete", rootSecret, map[string]any{"items": ditems[:1]})
	if code != http.StatusOK || !strings.Contains(string(body), "receiptJson") {
		t.Fatalf("delete: %d %s", code, body)
	}
	code, body = h.post("/v1/tokens:detokenize", rootSecret, map[string]any{"items": ditems[:1]})
	if r := decode(t, body).Results[0]; r.Error == nil || r.Error.Code != "NOT_FOUND" {
		t.Fatalf("after delete: %s", body)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// TestUnsealAfterKEKReturns: a vault whose KEK file is missing cannot be opened; once the file
// is back it can (what serve's unseal loop retries).
func TestUnsealAfterKEKReturns(t *testing.T) {
	dir := t.TempDir()
	kekPath := filepath.Join(dir, "kek.json")
	kek, _, err := insecurekek.LoadOrCreate(kekPath)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, "v.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := vault.Open(context.Background(), vault.Config{Store: st, KEK: kek}); err != nil {
		t.Fatal(err)
	}
	other, _, _ := insecurekek.LoadOrCreate(filepath.Join(dir, "other.json"))
	if _, err := vault.Open(context.Background(), vault.Config{Store: st, KEK: other}); err == nil {
		t.Fatal("a wrong KEK opened the vault")
	}
}

package server_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testenv"
)

// TestKeyLifecycleOverHTTP rotates the data key through the API, lets the background rewrap
// finish, and destroys the old key; every token still detokenizes to its value.
func TestKeyLifecycleOverHTTP(t *testing.T) {
	h := testenv.Start(t)
	var items []map[string]string
	for i := 0; i < 50; i++ {
		items = append(items, map[string]string{"value": "customer note " + string(rune('a'+i%26)) + strings.Repeat("x", i), "template": "opaque"})
	}
	code, body := h.Post("/v1/tokens:tokenize", rootSecret, map[string]any{"items": items})
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
	code, body = h.Do("GET", "/v1/keys", rootSecret, nil)
	decodeInto(t, body, &status1)
	if code != http.StatusOK || len(status1.Keys) != 1 {
		t.Fatalf("key status: %d %s", code, body)
	}
	oldKey := status1.Keys[0].KeyID
	if code, body = h.Post("/v1/keys:rotate", rootSecret, map[string]any{}); code != http.StatusOK {
		t.Fatalf("rotate: %d %s", code, body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body = h.Do("GET", "/v1/keys", rootSecret, nil)
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
		if code, body := h.Post("/v1/keys/"+itoa(oldKey)+":"+step, rootSecret, map[string]any{}); code != http.StatusOK {
			t.Fatalf("%s old key: %d %s", step, code, body)
		}
	}
	var ditems []map[string]string
	for _, r := range toks.Results {
		ditems = append(ditems, map[string]string{"token": r.Token})
	}
	code, body = h.Post("/v1/tokens:detokenize", rootSecret, map[string]any{"items": ditems})
	if code != http.StatusOK {
		t.Fatalf("detokenize: %d %s", code, body)
	}
	for i, r := range decode(t, body).Results {
		if r.Value != items[i]["value"] {
			t.Fatalf("after rotation and destroy, item %d = %+v", i, r)
		}
	}
	// Erasure over HTTP: a receipt comes back and the token is gone.
	code, body = h.Post("/v1/tokens:delete", rootSecret, map[string]any{"items": ditems[:1]})
	if code != http.StatusOK || !strings.Contains(string(body), "receiptJson") {
		t.Fatalf("delete: %d %s", code, body)
	}
	code, body = h.Post("/v1/tokens:detokenize", rootSecret, map[string]any{"items": ditems[:1]})
	if r := decode(t, body).Results[0]; r.Error == nil || r.Error.Code != "NOT_FOUND" {
		t.Fatalf("after delete: %s", body)
	}
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

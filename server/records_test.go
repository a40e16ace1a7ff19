package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenvault/tokenvault/internal/testenv"
	"github.com/tokenvault/tokenvault/vault"
)

func TestRecordsOverHTTP(t *testing.T) { testenv.ForBackends(t, &pg, testRecordsOverHTTP) }

func testRecordsOverHTTP(t *testing.T, backend testenv.Option) {
	h := testenv.Start(t, backend)
	body := `{"domain":"acme","policy":{"$.customer.email":"email","$.payment.card":"pan","$.items[*].note":"opaque"},
	  "documents":[
	    {"z":1,"customer":{"email":"jane@example.com","name":"Jane"},"amount":1.50,"payment":{"card":"4111111111111111"},"items":[{"note":"leave at door"},{"sku":"A1"}]},
	    {"customer":{"email":"not an email"},"payment":{"card":"5555555555554444"}},
	    {"other":true}
	  ]}`
	code, resp := h.Post("/v1/records:tokenize", rootSecret, body)
	if code != http.StatusOK {
		t.Fatalf("records:tokenize = %d %s", code, resp)
	}
	out := string(resp)
	for _, pii := range []string{"jane@example.com", "4111111111111111", "leave at door", "5555555555554444", "not an email"} {
		if strings.Contains(out, pii) {
			t.Errorf("response holds %q: %s", pii, out)
		}
	}
	// Order and number text kept; the failed document withheld with its path reported.
	if !strings.Contains(out, `{"z":1,"customer":{"email":"`) || !strings.Contains(out, `"amount":1.50`) || !strings.Contains(out, `"name":"Jane"`) {
		t.Errorf("document shape not kept: %s", out)
	}
	if !strings.Contains(out, `null`) || !strings.Contains(out, `"path":"$.customer.email"`) || !strings.Contains(out, `{"other":true}`) {
		t.Errorf("failure not reported as expected: %s", out)
	}
	var tok struct {
		Documents []map[string]any `json:"documents"`
	}
	decodeInto(t, resp, &tok)
	first := tok.Documents[0]
	card := first["payment"].(map[string]any)["card"].(string)
	if len(card) != 16 || !strings.HasSuffix(card, "1111") {
		t.Errorf("card token %q", card)
	}
	// And back.
	code, resp = h.Post("/v1/records:detokenize", rootSecret, map[string]any{
		"domain": "acme", "purpose": "support-7",
		"policy":    "$.customer.email: email\n$.payment.card: pan\n$.items[*].note: opaque\n",
		"documents": []any{first},
	})
	if code != http.StatusOK || !strings.Contains(string(resp), "jane@example.com") || !strings.Contains(string(resp), "4111111111111111") || !strings.Contains(string(resp), "leave at door") {
		t.Fatalf("records:detokenize = %d %s", code, resp)
	}
	// Bad policy and bad documents are whole-call 400s that echo nothing.
	code, resp = h.Post("/v1/records:tokenize", rootSecret, `{"policy":{"$..card":"pan"},"documents":[{"card":"4111111111111111"}]}`)
	if code != http.StatusBadRequest || strings.Contains(string(resp), "4111") {
		t.Errorf("bad policy = %d %s", code, resp)
	}
	code, _ = h.Post("/v1/records:tokenize", "", body)
	if code != http.StatusUnauthorized {
		t.Errorf("records without credentials = %d", code)
	}
	h.AssertNotLogged("jane@example.com", "4111111111111111", "leave at door", card)
}

// TestRecordsHTTPErrorsLikeTheGateway: /v1/records:* refuses what the gateway refuses, with the
// same status and error body: trailing data after the JSON body, malformed JSON, and the
// statuses of gRPC errors (one table, runtime.HTTPStatusFromCode).
func TestRecordsHTTPErrorsLikeTheGateway(t *testing.T) {
	h := testenv.Start(t)
	valid := `{"domain":"acme","policy":{"$.card":"pan"},"documents":[{"card":"4111111111111111"}]}`
	if code, resp := h.Post("/v1/records:tokenize", rootSecret, valid); code != http.StatusOK {
		t.Fatalf("valid body = %d %s", code, resp)
	}
	for name, body := range map[string]string{
		"trailing garbage":     valid + " garbage",
		"a second JSON value":  valid + ` {"documents":[]}`,
		"malformed JSON":       valid[:len(valid)-1],
		"unknown field":        `{"documentz":[]}`,
		"wrong type of domain": `{"domain":1,"policy":{"$.card":"pan"},"documents":[{"card":"4111111111111111"}]}`,
	} {
		for _, path := range []string{"/v1/records:tokenize", "/v1/records:detokenize"} {
			code, resp := h.Post(path, rootSecret, body)
			if code != http.StatusBadRequest || contains(resp, "4111") {
				t.Errorf("%s: %s = %d %s, want 400 without the value", path, name, code, resp)
			}
			var e struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			decodeInto(t, resp, &e)
			if e.Code != 3 || e.Message == "" {
				t.Errorf("%s: %s: error body %s, want code 3 (InvalidArgument) and a message", path, name, resp)
			}
		}
	}
	// The gateway's answer to trailing data, for comparison: the same status.
	if code, resp := h.Post("/v1/tokens:tokenize", rootSecret, `{"items":[{"value":"4111111111111111","template":"pan"}]} garbage`); code != http.StatusBadRequest {
		t.Errorf("gateway with trailing data = %d %s, want 400", code, resp)
	}
	// Whole-call errors from the gRPC side take the gateway's statuses, and the request id
	// comes back as the gateway sends it.
	for path, body := range map[string]string{"/v1/records:detokenize": valid, "/v1/tokens:detokenize": `{"items":[{"token":"x"}]}`} {
		req := h.Request("POST", path, "", body)
		req.Header.Set("X-Request-Id", "records-req-1")
		resp, err := h.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !contains(body, `"code":16`) || resp.Header.Get("X-Request-Id") != "records-req-1" {
			t.Errorf("%s without credentials = %d %s (X-Request-Id %q), want 401, code 16 and the request id", path, resp.StatusCode, body, resp.Header.Get("X-Request-Id"))
		}
	}
	_, secret, err := h.Vault.CreateCredential(context.Background(), vault.CredentialSpec{Name: "svc", Role: vault.RoleTokenizer})
	if err != nil {
		t.Fatal(err)
	}
	if code, resp := h.Post("/v1/records:detokenize", secret, valid); code != http.StatusForbidden || !contains(resp, `"code":7`) {
		t.Errorf("tokenizer records:detokenize = %d %s, want 403 with code 7", code, resp)
	}
}

package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tokenvault/tokenvault/internal/testenv"
)

func TestRecordsOverHTTP(t *testing.T) {
	h := testenv.Start(t)
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

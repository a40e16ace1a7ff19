package server_test

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/tokenvault/tokenvault/internal/testenv"
)

// TestHotRoutesAnswerAsTheGateway sends each request twice to POST /v1/tokens:tokenize,
// :detokenize and the vendor's /v1/tokens:detokenize: once as is (served by hotRoute) and
// once with a Grpc-Timeout header, which hotRoute leaves to the gateway. The two answers must
// be the same: status, body and the headers the conventions and the gateway set.
func TestHotRoutesAnswerAsTheGateway(t *testing.T) {
	h := testenv.Start(t)
	tok, tokenizer, acme := acmeVendorSetup(t, h)
	det := func(items string) string { return `{"purpose":"p","items":[` + items + `]}` }
	for _, c := range []struct {
		name, url, secret, body string
		header                  map[string]string
	}{
		{"detokenize", "/v1/tokens:detokenize", rootSecret, det(`{"token":"` + tok + `","domain":"acme"}`), nil},
		{"detokenize, escapes (protojson)", "/v1/tokens:detokenize", rootSecret, det(`{"token":"` + tok + `","domain":"a\u0063me"}`), nil},
		{"detokenize, unknown token", "/v1/tokens:detokenize", rootSecret, det(`{"token":"4111110000000000","domain":"acme"}`), nil},
		{"detokenize, bad domain (protovalidate)", "/v1/tokens:detokenize", rootSecret, det(`{"token":"x","domain":"Bad!"}`), nil},
		{"detokenize, bad template (protovalidate)", "/v1/tokens:detokenize", rootSecret, det(`{"token":"x","template":"-x"}`), nil},
		{"detokenize, no items", "/v1/tokens:detokenize", rootSecret, `{"purpose":"p"}`, nil},
		{"detokenize, wrong role", "/v1/tokens:detokenize", tokenizer, det(`{"token":"` + tok + `","domain":"acme"}`), nil},
		{"tokenize, unknown template", "/v1/tokens:tokenize", rootSecret, `{"items":[{"value":"1","template":"nope"}]}`, nil},
		{"tokenize, empty object", "/v1/tokens:tokenize", rootSecret, `{}`, nil},
		{"tokenize, empty body", "/v1/tokens:tokenize", rootSecret, ``, nil},
		{"tokenize, malformed", "/v1/tokens:tokenize", rootSecret, `{"items":[{"value":"4111`, nil},
		{"tokenize, unknown field", "/v1/tokens:tokenize", rootSecret, `{"items":[],"secret":"4111111111111111"}`, nil},
		{"tokenize, trailing data", "/v1/tokens:tokenize", rootSecret, `{"items":[{"value":"1","template":"pan"}]} {}`, nil},
		{"tokenize, bad ttl", "/v1/tokens:tokenize", rootSecret, `{"items":[{"value":"1","template":"pan","ttl":"0s"}]}`, nil},
		{"tokenize, bad secret", "/v1/tokens:tokenize", "tv_nope", `{"items":[{"value":"1","template":"pan"}]}`, nil},
		{"tokenize, no credentials", "/v1/tokens:tokenize", "", `{"items":[{"value":"1","template":"pan"}]}`, nil},
		{"tokenize, caller's request id", "/v1/tokens:tokenize", rootSecret, `{"items":[{"value":"1","template":"nope"}]}`, map[string]string{"X-Request-Id": "hot-route-1"}},
		{"tokenize, bad request id", "/v1/tokens:tokenize", rootSecret, `{"items":[{"value":"1","template":"nope"}]}`, map[string]string{"X-Request-Id": "a b"}},
		{"tokenize, Accept", "/v1/tokens:tokenize", rootSecret, `{"items":[{"value":"1","template":"nope"}]}`, map[string]string{"Accept": "application/json"}},
		{"tokenize, charset", "/v1/tokens:tokenize", rootSecret, `{"items":[{"value":"1","template":"nope"}]}`, map[string]string{"Content-Type": "application/json; charset=utf-8"}},
		{"vendor detokenize", h.VendorURL("/v1/tokens:detokenize"), acme, det(`{"token":"` + tok + `","domain":"acme"}`), nil},
		{"vendor detokenize, other domain", h.VendorURL("/v1/tokens:detokenize"), acme, det(`{"token":"` + tok + `","domain":"other"}`), nil},
		{"vendor detokenize, malformed", h.VendorURL("/v1/tokens:detokenize"), acme, `{"items":`, nil},
		{"vendor detokenize, internal credential", h.VendorURL("/v1/tokens:detokenize"), rootSecret, det(`{"token":"` + tok + `","domain":"acme"}`), nil},
	} {
		var answers [2]string
		for i, timeout := range []string{"", "100S"} {
			req := h.Request("POST", c.url, c.secret, c.body)
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			if timeout != "" {
				req.Header.Set("Grpc-Timeout", timeout)
			}
			resp, err := h.HTTP.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			id := resp.Header.Get("X-Request-Id")
			if id == "" || len(resp.Header.Values("X-Request-Id")) != 1 {
				t.Errorf("%s: X-Request-Id %q, want one", c.name, resp.Header.Values("X-Request-Id"))
			}
			if want := c.header["X-Request-Id"]; want != "" && want != "a b" && id != want {
				t.Errorf("%s: X-Request-Id %q, want the caller's %q", c.name, id, want)
			}
			var hs []string
			for _, k := range []string{"Content-Type", "Www-Authenticate", "Retry-After", "Connection", "Grpc-Metadata-X-Request-Id", "Trailer"} {
				hs = append(hs, fmt.Sprintf("%s=%q", k, resp.Header.Values(k)))
			}
			// Request ids differ between the two calls; nothing else may.
			answers[i] = fmt.Sprintf("%d %s\n%s", resp.StatusCode, strings.Join(hs, " "), strings.ReplaceAll(string(body), id, "<id>"))
		}
		if answers[0] != answers[1] {
			t.Errorf("%s: hot route and gateway differ:\nhot:     %s\ngateway: %s", c.name, answers[0], answers[1])
		}
	}
}

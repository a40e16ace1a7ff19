package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/tokenvault/tokenvault/internal/testenv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

func TestHTTPTokenizeDetokenizeRoundTrip(t *testing.T) {
	testenv.ForBackends(t, &pg, testHTTPTokenizeDetokenizeRoundTrip)
}

func testHTTPTokenizeDetokenizeRoundTrip(t *testing.T, backend testenv.Option) {
	h := testenv.Start(t, backend)
	values := []struct{ value, template string }{
		{"4111111111111111", "pan"},
		{"4111-1111-1111-1111", "pan"},
		{"123-45-6789", "ssn"},
		{"jane.doe@example.com", "email"},
		{"any text at all, ünïcode ✓", "opaque"},
	}
	var items []map[string]string
	for _, v := range values {
		items = append(items, map[string]string{"value": v.value, "template": v.template, "domain": "acme"})
	}
	code, body := h.Post("/v1/tokens:tokenize", rootSecret, map[string]any{"items": items})
	if code != http.StatusOK {
		t.Fatalf("tokenize: HTTP %d %s", code, body)
	}
	res := decode(t, body)
	if len(res.Results) != len(values) {
		t.Fatalf("tokenize returned %d results, want %d", len(res.Results), len(values))
	}
	var tokens []string
	var ditems []map[string]string
	for i, r := range res.Results {
		if r.Error != nil || r.Token == "" {
			t.Fatalf("item %d (%s): error %+v", i, values[i].template, r.Error)
		}
		if r.Token == values[i].value {
			t.Errorf("item %d: token equals value", i)
		}
		tokens = append(tokens, r.Token)
		ditems = append(ditems, map[string]string{"token": r.Token, "domain": "acme"})
	}
	// Format kept where the template promises it.
	if len(tokens[0]) != 16 || !strings.HasSuffix(tokens[0], "1111") {
		t.Errorf("pan token %q: want 16 digits ending 1111", tokens[0])
	}
	if tokens[1][4] != '-' || tokens[1][9] != '-' {
		t.Errorf("pan token %q: separators not kept", tokens[1])
	}
	if !strings.HasSuffix(tokens[3], "@example.com") {
		t.Errorf("email token %q: domain not kept", tokens[3])
	}

	code, body = h.Post("/v1/tokens:detokenize", rootSecret, map[string]any{"items": ditems, "purpose": "test"})
	if code != http.StatusOK {
		t.Fatalf("detokenize: HTTP %d %s", code, body)
	}
	dres := decode(t, body)
	for i, r := range dres.Results {
		if r.Error != nil || r.Value != values[i].value {
			t.Errorf("detokenize item %d = %q, %+v; want %q", i, r.Value, r.Error, values[i].value)
		}
	}

	// Deterministic inside a domain, unrelated across domains.
	code, body = h.Post("/v1/tokens:tokenize", rootSecret, map[string]any{"items": []map[string]string{
		{"value": "4111111111111111", "template": "pan", "domain": "acme"},
		{"value": "4111111111111111", "template": "pan", "domain": "globex"},
		{"value": "4111111111111111", "template": "pan"},
	}})
	if code != http.StatusOK {
		t.Fatalf("tokenize again: HTTP %d %s", code, body)
	}
	again := decode(t, body)
	if again.Results[0].Token != tokens[0] {
		t.Errorf("same value, same domain: token %q then %q", tokens[0], again.Results[0].Token)
	}
	if again.Results[1].Token == tokens[0] || again.Results[2].Token == tokens[0] || again.Results[1].Token == again.Results[2].Token {
		t.Errorf("same value in different domains got related tokens: %q %q %q", tokens[0], again.Results[1].Token, again.Results[2].Token)
	}
	// A token of one domain is not found in another, nor with a wrong template.
	code, body = h.Post("/v1/tokens:detokenize", rootSecret, map[string]any{"items": []map[string]string{
		{"token": tokens[0], "domain": "globex"},
		{"token": tokens[0], "domain": "acme", "template": "ssn"},
		{"token": tokens[0], "domain": "acme", "template": "pan"},
	}})
	if code != http.StatusOK {
		t.Fatalf("detokenize cross-domain: HTTP %d %s", code, body)
	}
	cross := decode(t, body)
	for i := 0; i < 2; i++ {
		if cross.Results[i].Error == nil || cross.Results[i].Error.Code != "NOT_FOUND" {
			t.Errorf("item %d: want NOT_FOUND, got %+v (value %q)", i, cross.Results[i].Error, cross.Results[i].Value)
		}
	}
	if cross.Results[2].Value != values[0].value {
		t.Errorf("detokenize with the right template = %+v", cross.Results[2])
	}
	var secrets []string
	for _, v := range values {
		secrets = append(secrets, v.value)
	}
	h.AssertNotLogged(append(append(secrets, tokens...), rootSecret)...)
}

func TestGRPCTokenizeDetokenize(t *testing.T) {
	testenv.ForBackends(t, &pg, testGRPCTokenizeDetokenize)
}

func testGRPCTokenizeDetokenize(t *testing.T, backend testenv.Option) {
	h := testenv.Start(t, backend)
	ctx := authCtx(rootSecret)
	resp, err := tvpb.NewTokenServiceClient(h.Conn).Tokenize(ctx, &tvpb.TokenizeRequest{Items: []*tvpb.TokenizeItem{
		{Value: "078-05-1120", Template: "ssn"},
		{Value: "12-34", Template: "ssn"},
	}})
	if err != nil {
		t.Fatalf("Tokenize: %v", err)
	}
	tok := resp.GetResults()[0].GetToken()
	if len(tok) != 11 || tok[3] != '-' || tok[6] != '-' {
		t.Errorf("ssn token %q does not keep NNN-NN-NNNN", tok)
	}
	bad := resp.GetResults()[1].GetError()
	if bad.GetCode() != "INVALID_ARGUMENT" || strings.Contains(bad.GetMessage(), "12-34") {
		t.Errorf("bad ssn item error = %+v: want INVALID_ARGUMENT without the value", bad)
	}
	dresp, err := tvpb.NewTokenServiceClient(h.Conn).Detokenize(ctx, &tvpb.DetokenizeRequest{Items: []*tvpb.DetokenizeItem{{Token: tok}, {Token: "000-00-0000"}}})
	if err != nil {
		t.Fatalf("Detokenize: %v", err)
	}
	if got := dresp.GetResults()[0].GetValue(); got != "078-05-1120" {
		t.Errorf("Detokenize = %q", got)
	}
	if dresp.GetResults()[1].GetError().GetCode() != "NOT_FOUND" {
		t.Errorf("unknown token: %+v", dresp.GetResults()[1])
	}
}

func TestAuthentication(t *testing.T) {
	h := testenv.Start(t)
	body := map[string]any{"items": []map[string]string{{"value": "4111111111111111", "template": "pan"}}}
	for _, secret := range []string{"", "wrong-secret"} {
		code, resp := h.Post("/v1/tokens:tokenize", secret, body)
		if code != http.StatusUnauthorized {
			t.Errorf("secret %q: HTTP %d %s, want 401", secret, code, resp)
		}
		if strings.Contains(string(resp), "4111") {
			t.Errorf("error body echoes the value: %s", resp)
		}
		_, err := tvpb.NewTokenServiceClient(h.Conn).Tokenize(authCtx(secret), &tvpb.TokenizeRequest{Items: []*tvpb.TokenizeItem{{Value: "4111111111111111", Template: "pan"}}})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("gRPC secret %q: %v, want Unauthenticated", secret, err)
		}
	}
	// A tokenizer may tokenize but not detokenize.
	_, secret, err := h.Vault.CreateCredential(context.Background(), vault.CredentialSpec{Name: "svc", Role: vault.RoleTokenizer})
	if err != nil {
		t.Fatal(err)
	}
	if code, resp := h.Post("/v1/tokens:tokenize", secret, body); code != http.StatusOK {
		t.Errorf("tokenizer tokenize: HTTP %d %s", code, resp)
	}
	if code, resp := h.Post("/v1/tokens:detokenize", secret, map[string]any{"items": []map[string]string{{"token": "x"}}}); code != http.StatusForbidden {
		t.Errorf("tokenizer detokenize: HTTP %d %s, want 403", code, resp)
	}
	h.AssertNotLogged(secret, rootSecret, "wrong-secret")
}

func TestBadRequests(t *testing.T) {
	h := testenv.Start(t)
	const pii = "4111111111111111"
	many := make([]map[string]string, 10001)
	for i := range many {
		many[i] = map[string]string{"value": "1234567", "template": "digits"}
	}
	cases := []struct {
		name string
		body any
		want int
	}{
		{"malformed JSON", `{"items": [{"value": "` + pii + `", "template": "pan"`, http.StatusBadRequest},
		{"wrong type echoes nothing", `{"items": [{"value": ` + pii + `, "template": "pan"}]}`, http.StatusBadRequest},
		{"unknown field", `{"items": [{"value": "` + pii + `", "template": "pan", "colour": "` + pii + `"}]}`, http.StatusBadRequest},
		{"invalid UTF-8", "{\"items\": [{\"value\": \"\xff" + pii + "\", \"template\": \"pan\"}]}", http.StatusBadRequest},
		{"unknown template", map[string]any{"items": []map[string]string{{"value": pii, "template": "nope"}}}, http.StatusBadRequest},
		{"bad domain", map[string]any{"items": []map[string]string{{"value": pii, "template": "pan", "domain": "Bad Domain!"}}}, http.StatusBadRequest},
		{"empty batch", map[string]any{"items": []map[string]string{}}, http.StatusBadRequest},
		{"batch over 10,000", map[string]any{"items": many}, http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := h.Post("/v1/tokens:tokenize", rootSecret, c.body)
			if code != c.want {
				t.Fatalf("HTTP %d %s, want %d", code, body, c.want)
			}
			if strings.Contains(string(body), pii) || strings.Contains(string(body), "411111") {
				t.Errorf("error body echoes the value: %s", body)
			}
			if !strings.Contains(string(body), `"message"`) {
				t.Errorf("error body has no message: %s", body)
			}
		})
	}
	// A value that does not fit is a per-item error; the others succeed.
	code, body := h.Post("/v1/tokens:tokenize", rootSecret, map[string]any{"items": []map[string]string{
		{"value": "4111-abcd-1111-1111", "template": "pan"},
		{"value": pii, "template": "pan"},
	}})
	if code != http.StatusOK {
		t.Fatalf("HTTP %d %s", code, body)
	}
	r := decode(t, body)
	if r.Results[0].Error == nil || r.Results[0].Error.Code != "INVALID_ARGUMENT" || r.Results[1].Token == "" {
		t.Fatalf("per-item results = %s", body)
	}
	if strings.Contains(string(body), "abcd") {
		t.Errorf("per-item error echoes the value: %s", body)
	}
	h.AssertNotLogged(pii, "abcd")
}

func TestConcurrentTokenizeAgreesOnOneToken(t *testing.T) {
	testenv.ForBackends(t, &pg, testConcurrentTokenizeAgreesOnOneToken)
}

func testConcurrentTokenizeAgreesOnOneToken(t *testing.T, backend testenv.Option) {
	h := testenv.Start(t, backend)
	const n = 32
	tokens := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := tvpb.NewTokenServiceClient(h.Conn).Tokenize(authCtx(rootSecret), &tvpb.TokenizeRequest{Items: []*tvpb.TokenizeItem{
				{Value: "5555555555554444", Template: "pan", Domain: "acme"},
				{Value: fmt.Sprintf("value-%d", i), Template: "opaque", Domain: "acme"},
			}})
			if err != nil {
				t.Error(err)
				return
			}
			tokens[i] = resp.GetResults()[0].GetToken()
		}(i)
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if tokens[i] != tokens[0] || tokens[i] == "" {
			t.Fatalf("concurrent tokenizes of one value disagree: %q vs %q", tokens[0], tokens[i])
		}
	}
}

// Issue 14: for an internal caller, NOT_FOUND for a token of another domain now says that
// tokens belong to one domain and to pass it. The vendor listener's denial stays the same
// whether the token exists or not (a hint there would be an oracle).
func TestNotFoundHintsAtTheDomain(t *testing.T) {
	v := setupVendors(t)
	code, body := v.h.Post("/v1/tokens:detokenize", rootSecret, map[string]any{"purpose": "p",
		"items": []map[string]string{{"token": v.acmePAN, "domain": "globex"}, {"token": v.acmePAN}}})
	if code != http.StatusOK {
		t.Fatalf("HTTP %d %s", code, body)
	}
	for _, want := range []string{`token not found in domain \"globex\"`, `token not found in domain \"default\"`, "pass that domain"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("detokenize in the wrong domain: %s lacks %q", body, want)
		}
	}
	v.grant(t, map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": "p"}, "ttl": "3600s"})
	_, r := v.reveal(t, v.acmeSecret, map[string]string{"token": v.acmePAN, "domain": "globex"}, map[string]string{"token": "4000000000000000", "domain": "acme"})
	for i, res := range r.Results {
		if res.Error == nil || strings.Contains(res.Error.Message, "domain") && strings.Contains(res.Error.Message, "pass") {
			t.Errorf("vendor item %d: %+v", i, res)
		}
	}
}

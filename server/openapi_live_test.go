package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/tokenvault/tokenvault/internal/testenv"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
)

// specVersion is the version the live tests give the server, which /openapi.json must carry.
const specVersion = "1.2.3-spec"

// liveSpec fetches /openapi.json from a running server and loads it with kin-openapi.
func liveSpec(t *testing.T, h *testenv.Env) *openapi3.T {
	t.Helper()
	code, body := h.Do("GET", "/openapi.json", "", nil)
	if code != http.StatusOK {
		t.Fatalf("/openapi.json = %d", code)
	}
	doc, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatalf("loading /openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("/openapi.json is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// specCall is one request of the live walk through the spec.
type specCall struct {
	path   string // concrete path
	secret string
	body   any
	vendor bool // sent to the vendor listener
	want   int
}

// specFixture holds the objects the calls name.
type specFixture struct {
	acmePAN, vendorSecret  string
	revokeCred, rotateCred string
	grantID, revokeGrant   string
	textTokens             string
	currentKey             uint32
	tokenized              map[string]any
}

func newSpecFixture(t *testing.T, h *testenv.Env) *specFixture {
	t.Helper()
	ctx := context.Background()
	// The walk erases subj-1: the token it reveals has no subject.
	res, err := h.Vault.Tokenize(ctx, []vault.TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: "acme"}, {Value: "5555555555554444", Template: "pan", Domain: "acme", Subject: "subj-1"}})
	if err != nil {
		t.Fatal(err)
	}
	f := &specFixture{acmePAN: res[0].Token}
	if _, f.vendorSecret, err = h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "acme-api", Role: vault.RoleVendor, Vendor: "acme"}); err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]*string{"spec-revoke": &f.revokeCred, "spec-rotate": &f.rotateCred} {
		c, _, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: name, Role: vault.RoleTokenizer})
		if err != nil {
			t.Fatal(err)
		}
		*id = c.ID
	}
	grant := map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": "spec"}, "ttl": "3600s"}
	for _, id := range []*string{&f.grantID, &f.revokeGrant} {
		code, body := h.Post("/v1/grants", rootSecret, grant)
		var out struct {
			Grant struct{ ID string } `json:"grant"`
		}
		if code != http.StatusOK || json.Unmarshal(body, &out) != nil {
			t.Fatalf("create grant: %d %s", code, body)
		}
		*id = out.Grant.ID
	}
	code, body := h.Post("/v1/text:tokenize", rootSecret, map[string]any{"items": []map[string]any{{"text": "card 4111111111111111", "domain": "acme"}}})
	var text struct {
		Results []struct{ Text string } `json:"results"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &text) != nil || len(text.Results) != 1 {
		t.Fatalf("text tokenize: %d %s", code, body)
	}
	f.textTokens = text.Results[0].Text
	var keys struct {
		Keys []struct {
			KeyID   uint32 `json:"keyId"`
			Primary bool   `json:"primary"`
		} `json:"keys"`
	}
	code, body = h.Do("GET", "/v1/keys", rootSecret, nil)
	if code != http.StatusOK || json.Unmarshal(body, &keys) != nil || len(keys.Keys) == 0 {
		t.Fatalf("keys: %d %s", code, body)
	}
	f.currentKey = keys.Keys[0].KeyID
	return f
}

// calls are one successful (or documented-error) request for every operation of the spec, by
// "METHOD /path/template". The walk fails on an operation missing here.
func (f *specFixture) calls() map[string]specCall {
	root := rootSecret
	item := []map[string]string{{"token": f.acmePAN, "domain": "acme"}}
	key := fmt.Sprint(f.currentKey)
	return map[string]specCall{
		"GET /healthz":                      {path: "/healthz", want: 200},
		"GET /livez":                        {path: "/livez", want: 200},
		"GET /openapi.json":                 {path: "/openapi.json", want: 200},
		"GET /metrics":                      {path: "/metrics", secret: root, want: 200},
		"GET /v1/audit/events":              {path: "/v1/audit/events?pageSize=5", secret: root, want: 200},
		"GET /v1/audit/public-key":          {path: "/v1/audit/public-key", secret: root, want: 200},
		"GET /v1/audit:export":              {path: "/v1/audit:export", secret: root, want: 200},
		"GET /v1/backup":                    {path: "/v1/backup", secret: root, want: 200},
		"POST /v1/canaries":                 {path: "/v1/canaries", secret: root, body: map[string]any{"domain": "acme", "template": "pan", "value": "4000000000000002", "label": "spec"}, want: 200},
		"GET /v1/credentials":               {path: "/v1/credentials", secret: root, want: 200},
		"POST /v1/credentials":              {path: "/v1/credentials", secret: root, body: map[string]any{"name": "spec-new", "role": "detokenizer", "reveal": "masked"}, want: 200},
		"POST /v1/credentials/{id}:revoke":  {path: "/v1/credentials/" + f.revokeCred + ":revoke", secret: root, body: map[string]any{}, want: 200},
		"POST /v1/credentials/{id}:rotate":  {path: "/v1/credentials/" + f.rotateCred + ":rotate", secret: root, body: map[string]any{"overlap": "60s"}, want: 200},
		"GET /v1/grants":                    {path: "/v1/grants", secret: root, want: 200},
		"POST /v1/grants":                   {path: "/v1/grants", secret: root, body: map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": "spec", "reveal": "REVEAL_MASKED"}, "ttl": "60s"}, want: 200},
		"GET /v1/grants/{id}":               {path: "/v1/grants/" + f.grantID, secret: root, want: 200},
		"POST /v1/grants/{id}:revoke":       {path: "/v1/grants/" + f.revokeGrant + ":revoke", secret: root, body: map[string]any{}, want: 200},
		"GET /v1/keys":                      {path: "/v1/keys", secret: root, want: 200},
		"POST /v1/keys:rotate":              {path: "/v1/keys:rotate", secret: root, body: map[string]any{}, want: 200},
		"POST /v1/keys/{keyId}:enable":      {path: "/v1/keys/" + key + ":enable", secret: root, body: map[string]any{}, want: 200},
		"POST /v1/keys/{keyId}:disable":     {path: "/v1/keys/999:disable", secret: root, body: map[string]any{}, want: 404},
		"POST /v1/keys/{keyId}:destroy":     {path: "/v1/keys/" + key + ":destroy", secret: root, body: map[string]any{}, want: 400},
		"POST /v1/subjects/{subject}:erase": {path: "/v1/subjects/subj-1:erase", secret: root, body: map[string]any{}, want: 200},
		"GET /v1/templates":                 {path: "/v1/templates", secret: root, want: 200},
		"POST /v1/templates":                {path: "/v1/templates", secret: root, body: map[string]any{"name": "spec-digits", "base": "digits", "mode": "random"}, want: 200},
		"POST /v1/text:tokenize":            {path: "/v1/text:tokenize", secret: root, body: map[string]any{"items": []map[string]any{{"text": "mail a@example.org", "entities": []string{"email"}}}}, want: 200},
		"POST /v1/text:detokenize":          {path: "/v1/text:detokenize", secret: root, body: map[string]any{"items": []map[string]any{{"text": f.textTokens, "domain": "acme"}}, "purpose": "spec"}, want: 200},
		"POST /v1/tokens:tokenize":          {path: "/v1/tokens:tokenize", secret: root, body: map[string]any{"items": []map[string]any{{"value": "4111111111111111", "template": "pan", "domain": "acme"}, {"value": "x", "template": "pan"}}}, want: 200},
		"POST /v1/tokens:detokenize":        {path: "/v1/tokens:detokenize", secret: root, body: map[string]any{"items": item, "purpose": "spec"}, want: 200},
		"POST /v1/tokens:delete":            {path: "/v1/tokens:delete", secret: root, body: map[string]any{"items": []map[string]string{{"token": "nope", "domain": "acme"}}}, want: 200},
		"POST /v1/records:tokenize":         {path: "/v1/records:tokenize", secret: root, body: map[string]any{"documents": []any{map[string]any{"card": "4111111111111111"}}, "policy": map[string]string{"$.card": "pan"}, "domain": "acme"}, want: 200},
		"POST /v1/records:detokenize":       {path: "/v1/records:detokenize", secret: root, body: map[string]any{"documents": []any{map[string]any{"card": f.acmePAN}}, "policy": "$.card: pan", "domain": "acme", "purpose": "spec"}, want: 200},
	}
}

// specOps lists the spec's operations as "METHOD /path".
func specOps(doc *openapi3.T) map[string]*routers.Route {
	ops := map[string]*routers.Route{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			method = strings.ToUpper(method)
			ops[method+" "+path] = &routers.Route{Spec: doc, Path: path, PathItem: item, Method: method, Operation: op}
		}
	}
	return ops
}

// checkSpecResponse sends req and checks the response against route: the status is one the
// operation lists (not only default), and headers and body validate against it; ndjson
// bodies line by line. It returns the status.
func checkSpecResponse(t *testing.T, h *testenv.Env, route *routers.Route, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := h.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	name := route.Method + " " + route.Path
	documented := route.Operation.Responses.Status(resp.StatusCode)
	if documented == nil {
		t.Errorf("%s: status %d is not documented (%s)", name, resp.StatusCode, body)
		return resp.StatusCode, body
	}
	ct := resp.Header.Get("Content-Type")
	ndjson := strings.HasPrefix(ct, "application/x-ndjson")
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: ndjson, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s: %d response does not match the spec: %v\n%s", name, resp.StatusCode, err, body)
	}
	if documented.Value.Content.Get(ct) == nil {
		t.Errorf("%s: %d answered Content-Type %q, the spec says %v", name, resp.StatusCode, ct, slices.Collect(mapKeys(documented.Value.Content)))
	}
	if ndjson {
		schema := documented.Value.Content.Get(ct).Schema.Value
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 64<<20)
		lines := 0
		for sc.Scan() {
			var v any
			if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
				t.Fatalf("%s: line %d is not JSON: %v", name, lines+1, err)
			}
			if err := schema.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.VisitAsResponse()); err != nil {
				t.Errorf("%s: line %d does not match the spec: %v", name, lines+1, err)
			}
			lines++
		}
		if lines == 0 {
			t.Errorf("%s: an empty stream", name)
		}
	}
	return resp.StatusCode, body
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// specRequest builds c's request for route on the listener route's path item serves it on.
func specRequest(h *testenv.Env, route *routers.Route, c specCall) *http.Request {
	url := h.URL(c.path)
	if c.vendor {
		url = h.VendorURL(c.path)
	}
	body := c.body
	if body == nil && route.Operation.RequestBody != nil {
		body = map[string]any{}
	}
	return h.Request(route.Method, url, c.secret, body)
}

// TestOpenAPIEveryPathOnALiveServer calls every operation of /openapi.json on a live server
// and checks each answer against the document: a documented status, the documented headers
// (X-Request-Id, …) and a body that validates against the response schema. Then every
// operation that needs a credential is called without one (401 with WWW-Authenticate, as
// documented), every operation with a body is sent text/plain (415), and the vendor
// listener's detokenize is checked as its own server.
func TestOpenAPIEveryPathOnALiveServer(t *testing.T) {
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) { c.Version = specVersion }))
	doc := liveSpec(t, h)
	f := newSpecFixture(t, h)
	calls := f.calls()
	ops := specOps(doc)
	if len(ops) < 30 {
		t.Fatalf("the spec has only %d operations", len(ops))
	}
	names := slices.Sorted(mapKeys(ops))
	for _, name := range names {
		route := ops[name]
		c, ok := calls[name]
		if !ok {
			t.Errorf("%s: no call in the live walk: add one", name)
			continue
		}
		if code, body := checkSpecResponse(t, h, route, specRequest(h, route, c)); code != c.want {
			t.Errorf("%s %s = %d, want %d: %s", route.Method, c.path, code, c.want, body)
		}
		if sec := route.Operation.Security; sec == nil || len(*sec) == 0 {
			continue // public (the document has no global security)
		}
		anon := c
		anon.secret = ""
		if code, _ := checkSpecResponse(t, h, route, specRequest(h, route, anon)); code != http.StatusUnauthorized {
			t.Errorf("%s without a credential = %d, want 401", name, code)
		}
		if route.Operation.RequestBody != nil {
			req := specRequest(h, route, c)
			req.Header.Set("Content-Type", "text/plain")
			if code, _ := checkSpecResponse(t, h, route, req); code != http.StatusUnsupportedMediaType {
				t.Errorf("%s with text/plain = %d, want 415", name, code)
			}
		}
	}
	for name := range calls {
		if ops[name] == nil {
			t.Errorf("the live walk calls %s, which the spec lacks", name)
		}
	}

	// The vendor listener: its own server entry, the same operation.
	route := ops["POST /v1/tokens:detokenize"]
	if route == nil {
		t.Fatal("no POST /v1/tokens:detokenize")
	}
	vendor := specCall{path: "/v1/tokens:detokenize", secret: f.vendorSecret, vendor: true,
		body: map[string]any{"items": []map[string]string{{"token": f.acmePAN, "domain": "acme", "template": "pan"}}, "purpose": "order-42", "grantId": f.grantID}}
	code, body := checkSpecResponse(t, h, route, specRequest(h, route, vendor))
	if code != http.StatusOK || !strings.Contains(string(body), "4111111111111111") {
		t.Errorf("vendor detokenize = %d %s", code, body)
	}
	vendor.body = map[string]any{"items": []map[string]string{{"token": f.acmePAN, "domain": "acme"}}} // no purpose
	if code, body := checkSpecResponse(t, h, route, specRequest(h, route, vendor)); code != http.StatusBadRequest {
		t.Errorf("vendor detokenize without purpose = %d %s, want 400 (purpose is required)", code, body)
	}
	health := ops["GET /healthz"]
	if code, _ := checkSpecResponse(t, h, health, specRequest(h, health, specCall{path: "/healthz", vendor: true})); code != http.StatusOK {
		t.Errorf("vendor /healthz = %d", code)
	}
}

// TestOpenAPISealedAnswersAreDocumented: on a sealed server every operation's answer (503
// with Retry-After for the vault's calls and /healthz) is one the document lists, with its
// headers and body.
func TestOpenAPISealedAnswersAreDocumented(t *testing.T) {
	live := testenv.Start(t)
	f := newSpecFixture(t, live)
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) { c.Vault = nil }))
	doc := liveSpec(t, h)
	ops := specOps(doc)
	unavailable := 0
	for name, c := range f.calls() {
		route := ops[name]
		if route == nil {
			t.Errorf("%s is not in the spec", name)
			continue
		}
		code, _ := checkSpecResponse(t, h, route, specRequest(h, route, c))
		if code == http.StatusServiceUnavailable {
			unavailable++
		}
	}
	if unavailable < 20 {
		t.Errorf("only %d operations answered 503 while sealed", unavailable)
	}
}

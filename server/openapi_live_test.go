package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
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
	acmePAN, vendorSecret, tokenizer string
	ratedPAN, ratedGrant             string // a token and a grant of one item a minute
	revokeCred, rotateCred           string
	grantID, revokeGrant             string
	textTokens                       string
	currentKey                       uint32
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
	if _, f.tokenizer, err = h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "spec-tokenizer", Role: vault.RoleTokenizer}); err != nil {
		t.Fatal(err)
	}
	rated, err := h.Vault.Tokenize(ctx, []vault.TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: "rated"}})
	if err != nil {
		t.Fatal(err)
	}
	f.ratedPAN = rated[0].Token
	for name, id := range map[string]*string{"spec-revoke": &f.revokeCred, "spec-rotate": &f.rotateCred} {
		c, _, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: name, Role: vault.RoleTokenizer})
		if err != nil {
			t.Fatal(err)
		}
		*id = c.ID
	}
	grant := map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": "spec"}
	rate := map[string]any{"vendor": "acme", "domains": []string{"rated"}, "templates": []string{"pan"}, "purpose": "spec", "ratePerMinute": 1}
	for id, g := range map[*string]map[string]any{&f.grantID: grant, &f.revokeGrant: grant, &f.ratedGrant: rate} {
		code, body := h.Post("/v1/grants", rootSecret, map[string]any{"grant": g, "ttl": "3600s"})
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
		"GET /v1/audit/events/{seq}":        {path: "/v1/audit/events/1", secret: root, want: 200},
		"GET /v1/audit/stats":               {path: "/v1/audit/stats?window=7d", secret: root, want: 200},
		"GET /v1/audit/status":              {path: "/v1/audit/status", secret: root, want: 200},
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

// closedBody reports whether route's request body is an object without additional properties.
func closedBody(route *routers.Route) bool {
	rb := route.Operation.RequestBody
	if rb == nil || rb.Value.Content.Get("application/json") == nil {
		return false
	}
	ap := rb.Value.Content.Get("application/json").Schema.Value.AdditionalProperties
	return ap.Has != nil && !*ap.Has
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
		if closedBody(route) {
			// additionalProperties: false: the server refuses an unknown field.
			extra := specCall{path: c.path, secret: c.secret, body: map[string]any{"bogusField": 1}}
			if m, ok := c.body.(map[string]any); ok {
				extra.body = maps.Clone(m)
				extra.body.(map[string]any)["bogusField"] = 1
			}
			if code, body := checkSpecResponse(t, h, route, specRequest(h, route, extra)); code != http.StatusBadRequest {
				t.Errorf("%s with an unknown field = %d %s, want 400", name, code, body)
			}
		}
		if route.Operation.RequestBody != nil {
			req := specRequest(h, route, c)
			req.Header.Set("Content-Type", "text/plain")
			if code, _ := checkSpecResponse(t, h, route, req); code != http.StatusUnsupportedMediaType {
				t.Errorf("%s with text/plain = %d, want 415", name, code)
			}
		}
	}
	// A tokenizer may call little: the other operations answer 403, as documented.
	forbidden := 0
	for _, name := range names {
		route := ops[name]
		c := calls[name]
		if sec := route.Operation.Security; sec == nil || len(*sec) == 0 {
			continue
		}
		c.secret = f.tokenizer
		if code, _ := checkSpecResponse(t, h, route, specRequest(h, route, c)); code == http.StatusForbidden {
			forbidden++
		}
	}
	if forbidden < 20 {
		t.Errorf("only %d operations refused a tokenizer", forbidden)
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
	// A grant of one item a minute: the second call is refused whole, 429 with Retry-After.
	rated := specCall{path: "/v1/tokens:detokenize", secret: f.vendorSecret, vendor: true,
		body: map[string]any{"items": []map[string]string{{"token": f.ratedPAN, "domain": "rated"}}, "purpose": "order-43", "grantId": f.ratedGrant}}
	for i, want := range []int{http.StatusOK, http.StatusTooManyRequests} {
		if code, body := checkSpecResponse(t, h, route, specRequest(h, route, rated)); code != want {
			t.Errorf("rated vendor call %d = %d %s, want %d", i+1, code, body, want)
		}
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

// TestOpenAPIDocument checks what the document promises beyond the routes: OpenAPI 3.1 with a
// real title and the server's version, the vendor listener as a server, security on every
// operation, the error responses and their headers, ndjson streams and the protovalidate
// limits.
func TestOpenAPIDocument(t *testing.T) {
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) { c.Version = specVersion }))
	doc := liveSpec(t, h)
	if doc.OpenAPI != "3.1.0" || doc.Info.Title != "tokenvault API" || doc.Info.Version != specVersion {
		t.Errorf("openapi %q, info %q %q", doc.OpenAPI, doc.Info.Title, doc.Info.Version)
	}
	committed, err := openapi3.NewLoader().LoadFromFile("openapi/tokenvault.openapi.json")
	if err != nil || committed.Info.Version != "0.0.0-dev" {
		t.Errorf("the committed document: %v, version %v", err, committed)
	}
	schemes := doc.Components.SecuritySchemes
	if b := schemes["bearer"]; b == nil || b.Value.Type != "http" || b.Value.Scheme != "bearer" {
		t.Errorf("bearer scheme = %+v", b)
	}
	if m := schemes["vendorMutualTLS"]; m == nil || m.Value.Type != "mutualTLS" {
		t.Errorf("mutual TLS scheme = %+v", m)
	}
	for _, p := range []string{"/v1/tokens:detokenize", "/healthz"} {
		var urls []string
		for _, s := range doc.Paths.Value(p).Servers {
			urls = append(urls, s.URL)
		}
		if len(urls) != 2 || !strings.HasSuffix(urls[1], ":8443") {
			t.Errorf("%s servers = %v, want the internal and the vendor listener", p, urls)
		}
	}
	public := map[string]bool{}
	for name, route := range specOps(doc) {
		op := route.Operation
		if op.Security == nil {
			t.Errorf("%s declares no security", name)
			continue
		}
		if len(*op.Security) == 0 {
			public[route.Path] = true
		} else if (*op.Security)[0]["bearer"] == nil {
			t.Errorf("%s: first security requirement %v, want bearer", name, (*op.Security)[0])
		}
		for code, r := range op.Responses.Map() {
			if r.Value.Headers["X-Request-Id"] == nil {
				t.Errorf("%s %s: no X-Request-Id header", name, code)
			}
			want := map[string]string{"401": "WWW-Authenticate", "429": "Retry-After", "503": "Retry-After"}[code]
			if hdr := r.Value.Headers[want]; want != "" && (hdr == nil || !hdr.Value.Required) {
				t.Errorf("%s %s: %s is not a required header", name, code, want)
			}
			if code != "200" && r.Value.Content.Get("application/json") == nil {
				t.Errorf("%s %s: no JSON error body", name, code)
			}
		}
		if public[route.Path] {
			continue
		}
		codes := []string{"401", "403", "default"}
		if op.RequestBody != nil {
			codes = append(codes, "400", "413", "415", "503")
		}
		for _, c := range codes {
			if op.Responses.Value(c) == nil {
				t.Errorf("%s does not document %s", name, c)
			}
		}
	}
	if len(public) != 3 || !public["/healthz"] || !public["/livez"] || !public["/openapi.json"] {
		t.Errorf("operations without security: %v, want /healthz, /livez, /openapi.json", public)
	}
	vendorSec := *specOps(doc)["POST /v1/tokens:detokenize"].Operation.Security
	if len(vendorSec) != 2 || vendorSec[1]["vendorMutualTLS"] == nil {
		t.Errorf("vendor detokenize security = %v, want bearer, or bearer and mutual TLS", vendorSec)
	}
	if ct := specOps(doc)["GET /metrics"].Operation.Responses.Status(200).Value.Content; ct.Get("text/plain") == nil {
		t.Errorf("/metrics 200 is not text/plain")
	}
	for _, p := range []string{"/v1/audit:export", "/v1/backup"} {
		content := doc.Paths.Value(p).Get.Responses.Status(200).Value.Content
		if len(content) != 1 || content.Get("application/x-ndjson") == nil {
			t.Errorf("%s 200 content = %v, want application/x-ndjson only", p, slices.Collect(mapKeys(content)))
		}
	}
	schemas := doc.Components.Schemas
	for _, name := range []string{"TokenizeRequest", "DetokenizeRequest", "VendorDetokenizeRequest", "DeleteTokensRequest"} {
		items := schemas[name].Value.Properties["items"].Value
		if items.MinItems != 1 || items.MaxItems == nil || *items.MaxItems != 10000 {
			t.Errorf("%s.items: minItems %d, maxItems %v; want 1 and 10000", name, items.MinItems, items.MaxItems)
		}
		if ap := schemas[name].Value.AdditionalProperties.Has; ap == nil || *ap {
			t.Errorf("%s accepts unknown fields", name)
		}
	}
	if v := schemas["VendorDetokenizeRequest"].Value; !slices.Contains(v.Required, "purpose") || v.Properties["purpose"].Value.MinLength != 1 {
		t.Errorf("the vendor's purpose is not required: %v", v.Required)
	}
	if tmpl := schemas["TokenizeItem"].Value.Properties["template"].Value; tmpl.Pattern == "" || tmpl.MaxLength == nil || !slices.Contains(schemas["TokenizeItem"].Value.Required, "template") {
		t.Errorf("TokenizeItem.template has no pattern, maxLength or required: %+v", tmpl)
	}
	if reveal := schemas["Reveal"].Value; !slices.Contains(reveal.Enum, any("REVEAL_MASKED")) || !strings.Contains(reveal.Description, "short name") {
		t.Errorf("Reveal enum = %v %q", reveal.Enum, reveal.Description)
	}
	if st := schemas["Status"].Value; !slices.Contains(st.Required, "code") || st.Properties["details"] == nil {
		t.Errorf("Status schema = %+v", st)
	}
}

// TestOpenAPITooLargeIsDocumented: every operation with a body answers a body over the
// listener's limit with 413, as documented.
func TestOpenAPITooLargeIsDocumented(t *testing.T) {
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) { c.Limits.HTTPMaxBody, c.Limits.VendorMaxBody = 512, 512 }))
	doc := liveSpec(t, h)
	big := map[string]any{"items": []map[string]string{{"value": strings.Repeat("4", 1024)}}}
	n := 0
	for name, route := range specOps(doc) {
		if route.Operation.RequestBody == nil {
			continue
		}
		path := strings.NewReplacer("{id}", "x", "{keyId}", "1", "{subject}", "s").Replace(route.Path)
		if code, body := checkSpecResponse(t, h, route, specRequest(h, route, specCall{path: path, secret: rootSecret, body: big})); code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s with a large body = %d %s, want 413", name, code, body)
		}
		n++
	}
	if n < 15 {
		t.Errorf("only %d operations take a body", n)
	}
	route := specOps(doc)["POST /v1/tokens:detokenize"]
	if code, _ := checkSpecResponse(t, h, route, specRequest(h, route, specCall{path: "/v1/tokens:detokenize", secret: rootSecret, body: big, vendor: true})); code != http.StatusRequestEntityTooLarge {
		t.Errorf("vendor detokenize with a large body = %d, want 413", code)
	}
}

package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

// Outcomes of one item in the scope matrix.
const (
	oToken   = "token"       // tokenized
	oValue   = "value"       // revealed in full
	oMasked  = "masked"      // revealed masked by its template
	oErased  = "erased"      // deleted
	oDenied  = "denied"      // per-item PERMISSION_DENIED
	oRefused = "call-denied" // the whole call refused (role or listener)
)

// scopeCase is one item of the matrix: in scope, or out of a scoped credential's scope by
// domain or by template.
type scopeCase struct {
	name             string
	domain, template string
	value            string
}

var scopeCases = []scopeCase{
	{"in-scope", "a", "pan", "4111111111111111"},
	{"out-domain", "b", "pan", "5500000000000004"},
	{"out-template", "a", "email", "jo@example.com"},
}

// scopeOps are the item-level operations; "vendor" is the vendor listener's detokenize, the
// others run on the internal listener (over gRPC and over HTTP).
var scopeOps = []string{"tokenize", "detokenize", "records-tokenize", "records-detokenize", "delete", "vendor"}

// scopeMatrix is the expected table: caller → operation → outcome of each scopeCase. The
// scoped credentials are tokenizer "a/pan" (domains a, templates pan), detokenizer "a/pan" and
// detokenizer "a/masked" (domains a, reveal masked); vendor acme holds a full grant on domain
// a, template pan.
var scopeMatrix = map[string]map[string][3]string{
	"admin": {
		"tokenize": {oToken, oToken, oToken}, "detokenize": {oValue, oValue, oValue},
		"records-tokenize": {oToken, oToken, oToken}, "records-detokenize": {oValue, oValue, oValue},
		"delete": {oErased, oErased, oErased}, "vendor": {oRefused, oRefused, oRefused},
	},
	"auditor": {},
	"vendor": {
		"vendor": {oValue, oDenied, oDenied},
	},
	"tokenizer": {
		"tokenize": {oToken, oToken, oToken}, "records-tokenize": {oToken, oToken, oToken},
	},
	"tokenizer a/pan": {
		"tokenize": {oToken, oDenied, oDenied}, "records-tokenize": {oToken, oDenied, oDenied},
	},
	"detokenizer": {
		"detokenize": {oValue, oValue, oValue}, "records-detokenize": {oValue, oValue, oValue},
	},
	"detokenizer a/pan": {
		"detokenize": {oValue, oDenied, oDenied}, "records-detokenize": {oValue, oDenied, oDenied},
	},
	"detokenizer a/masked": {
		"detokenize": {oMasked, oDenied, oMasked}, "records-detokenize": {oMasked, oDenied, oMasked},
	},
}

// scopedCallers creates one credential for each caller of scopeMatrix and returns their
// secrets by name.
func scopedCallers(t *testing.T, h *testenv.Env) map[string]string {
	t.Helper()
	specs := map[string]vault.CredentialSpec{
		"admin":                {Role: vault.RoleAdmin},
		"auditor":              {Role: vault.RoleAuditor},
		"vendor":               {Role: vault.RoleVendor, Vendor: "acme"},
		"tokenizer":            {Role: vault.RoleTokenizer},
		"tokenizer a/pan":      {Role: vault.RoleTokenizer, Scope: vault.Scope{Domains: []string{"a"}, Templates: []string{"pan"}}},
		"detokenizer":          {Role: vault.RoleDetokenizer},
		"detokenizer a/pan":    {Role: vault.RoleDetokenizer, Scope: vault.Scope{Domains: []string{"a"}, Templates: []string{"pan"}}},
		"detokenizer a/masked": {Role: vault.RoleDetokenizer, Scope: vault.Scope{Domains: []string{"a"}, Reveal: vault.RevealMasked}},
	}
	out := map[string]string{}
	for name, spec := range specs {
		spec.Name = strings.NewReplacer(" ", "-", "/", "-").Replace(name)
		_, secret, err := h.Vault.CreateCredential(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = secret
	}
	return out
}

// luhn returns a valid card number: prefix (15 digits) and its check digit.
func luhn(prefix string) string {
	sum := 0
	for i := len(prefix) - 1; i >= 0; i-- {
		d := int(prefix[i] - '0')
		if (len(prefix)-1-i)%2 == 0 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return prefix + fmt.Sprint((10-sum%10)%10)
}

// scopeFixture is the server and the tokens of scopeCases.
type scopeFixture struct {
	h      *testenv.Env
	tokens [3]string
	fresh  int // counter for fresh values to delete
}

// freshTokens tokenizes a fresh value for each case (for deletes) and returns the tokens.
func (f *scopeFixture) freshTokens(t *testing.T) [3]string {
	t.Helper()
	f.fresh++
	vals := []string{luhn(fmt.Sprintf("400000%09d", f.fresh)), luhn(fmt.Sprintf("510000%09d", f.fresh)), fmt.Sprintf("u%d@example.com", f.fresh)}
	return f.tokenize(t, vals)
}

func (f *scopeFixture) tokenize(t *testing.T, vals []string) [3]string {
	t.Helper()
	items := make([]vault.TokenizeItem, len(scopeCases))
	for i, c := range scopeCases {
		items[i] = vault.TokenizeItem{Value: vals[i], Template: c.template, Domain: c.domain}
	}
	res, err := f.h.Vault.Tokenize(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	var out [3]string
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("tokenizing case %d: %v", i, r.Err)
		}
		out[i] = r.Token
	}
	return out
}

// classify names one item's outcome from its token or value and its error code.
func classify(c scopeCase, tok, got, code string) string {
	switch {
	case code == "PERMISSION_DENIED":
		return oDenied
	case code != "":
		return "error " + code
	case got == c.value:
		return oValue
	case got != "" && got == tok:
		return oToken
	case strings.Contains(got, "*") && got != c.value:
		return oMasked
	case got != "":
		return oToken
	}
	return oErased
}

// refusedCall reports whether err (gRPC) or status (HTTP) refuses the whole call for the
// caller's role or listener.
func refusedCall(err error) bool {
	c := status.Code(err)
	return c == codes.PermissionDenied || c == codes.Unauthenticated
}

func refusedHTTP(code int) bool {
	return code == http.StatusForbidden || code == http.StatusUnauthorized || code == http.StatusNotFound
}

func all3(s string) [3]string { return [3]string{s, s, s} }

// viaGRPC runs op for the three cases on the internal gRPC listener.
func (f *scopeFixture) viaGRPC(t *testing.T, op, secret string) [3]string {
	t.Helper()
	ctx, conn := authCtx(secret), f.h.Conn
	toks := f.tokens
	if op == "delete" {
		toks = f.freshTokens(t)
	}
	var out [3]string
	refs := make([]*tvpb.DetokenizeItem, len(scopeCases))
	for i, c := range scopeCases {
		refs[i] = &tvpb.DetokenizeItem{Token: toks[i], Domain: c.domain}
	}
	switch op {
	case "tokenize":
		items := make([]*tvpb.TokenizeItem, len(scopeCases))
		for i, c := range scopeCases {
			items[i] = &tvpb.TokenizeItem{Value: c.value, Template: c.template, Domain: c.domain}
		}
		resp, err := tvpb.NewTokenServiceClient(conn).Tokenize(ctx, &tvpb.TokenizeRequest{Items: items})
		if refusedCall(err) {
			return all3(oRefused)
		} else if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		for i, r := range resp.GetResults() {
			out[i] = classify(scopeCases[i], toks[i], r.GetToken(), r.GetError().GetCode())
		}
	case "detokenize":
		resp, err := tvpb.NewTokenServiceClient(conn).Detokenize(ctx, &tvpb.DetokenizeRequest{Items: refs, Purpose: "matrix"})
		if refusedCall(err) {
			return all3(oRefused)
		} else if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		for i, r := range resp.GetResults() {
			out[i] = classify(scopeCases[i], toks[i], r.GetValue(), r.GetError().GetCode())
		}
	case "delete":
		resp, err := tvpb.NewTokenServiceClient(conn).DeleteTokens(ctx, &tvpb.DeleteTokensRequest{Items: refs})
		if refusedCall(err) {
			return all3(oRefused)
		} else if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		for i, r := range resp.GetResults() {
			out[i] = classify(scopeCases[i], toks[i], "", r.GetError().GetCode())
		}
	case "records-tokenize", "records-detokenize":
		rc := tvpb.NewRecordServiceClient(conn)
		for i, c := range scopeCases {
			policy := `{"$.v": "` + c.template + `"}`
			var docs []string
			var errs []*tvpb.RecordFieldError
			var err error
			if op == "records-tokenize" {
				var resp *tvpb.TokenizeRecordsResponse
				resp, err = rc.TokenizeRecords(ctx, &tvpb.TokenizeRecordsRequest{Documents: []string{`{"v":"` + c.value + `"}`}, Policy: policy, Domain: c.domain})
				docs, errs = resp.GetDocuments(), resp.GetErrors()
			} else {
				var resp *tvpb.DetokenizeRecordsResponse
				resp, err = rc.DetokenizeRecords(ctx, &tvpb.DetokenizeRecordsRequest{Documents: []string{`{"v":"` + toks[i] + `"}`}, Policy: policy, Domain: c.domain, Purpose: "matrix"})
				docs, errs = resp.GetDocuments(), resp.GetErrors()
			}
			if refusedCall(err) {
				return all3(oRefused)
			} else if err != nil {
				t.Fatalf("%s: %v", op, err)
			}
			out[i] = recordOutcome(c, toks[i], docs, errs)
		}
	case "vendor":
		return all3(oRefused) // not served on the internal gRPC listener
	}
	return out
}

// recordOutcome classifies the one field of a one-document record call.
func recordOutcome(c scopeCase, tok string, docs []string, errs []*tvpb.RecordFieldError) string {
	if len(errs) > 0 {
		return classify(c, tok, "", errs[0].GetCode())
	}
	if len(docs) != 1 {
		return "no document"
	}
	v := strings.TrimSuffix(strings.TrimPrefix(docs[0], `{"v":"`), `"}`)
	return classify(c, tok, v, "")
}

// viaHTTP runs op for the three cases on the internal HTTP listener, or the vendor listener
// for op "vendor".
func (f *scopeFixture) viaHTTP(t *testing.T, op, secret string) [3]string {
	t.Helper()
	toks := f.tokens
	if op == "delete" {
		toks = f.freshTokens(t)
	}
	var out [3]string
	refs := make([]map[string]string, len(scopeCases))
	for i, c := range scopeCases {
		refs[i] = map[string]string{"token": toks[i], "domain": c.domain}
	}
	itemCall := func(url string, body any) {
		code, data := f.h.Post(url, secret, body)
		if refusedHTTP(code) {
			out = all3(oRefused)
			return
		}
		if code != http.StatusOK {
			t.Fatalf("%s: HTTP %d %s", op, code, data)
		}
		for i, r := range decode(t, data).Results {
			ec := ""
			if r.Error != nil {
				ec = r.Error.Code
			}
			out[i] = classify(scopeCases[i], toks[i], r.Token+r.Value, ec)
		}
	}
	switch op {
	case "tokenize":
		items := make([]map[string]string, len(scopeCases))
		for i, c := range scopeCases {
			items[i] = map[string]string{"value": c.value, "template": c.template, "domain": c.domain}
		}
		itemCall(f.h.URL("/v1/tokens:tokenize"), map[string]any{"items": items})
	case "detokenize":
		itemCall(f.h.URL("/v1/tokens:detokenize"), map[string]any{"items": refs, "purpose": "matrix"})
	case "delete":
		itemCall(f.h.URL("/v1/tokens:delete"), map[string]any{"items": refs})
	case "vendor":
		itemCall(f.h.VendorURL("/v1/tokens:detokenize"), map[string]any{"items": refs, "purpose": "matrix"})
	case "records-tokenize", "records-detokenize":
		for i, c := range scopeCases {
			doc, path := `{"v":"`+c.value+`"}`, "/v1/records:tokenize"
			if op == "records-detokenize" {
				doc, path = `{"v":"`+toks[i]+`"}`, "/v1/records:detokenize"
			}
			body := `{"documents":[` + doc + `],"policy":{"$.v":"` + c.template + `"},"domain":"` + c.domain + `","purpose":"matrix"}`
			code, data := f.h.Post(path, secret, body)
			if refusedHTTP(code) {
				return all3(oRefused)
			}
			if code != http.StatusOK {
				t.Fatalf("%s: HTTP %d %s", op, code, data)
			}
			var resp struct {
				Documents []any                    `json:"documents"`
				Errors    []*tvpb.RecordFieldError `json:"errors"`
			}
			decodeInto(t, data, &resp)
			var docs []string
			for _, d := range resp.Documents {
				if m, ok := d.(map[string]any); ok {
					docs = append(docs, `{"v":"`+fmt.Sprint(m["v"])+`"}`)
				}
			}
			out[i] = recordOutcome(c, toks[i], docs, resp.Errors)
		}
	}
	return out
}

// TestScopeMatrix runs every item-level operation (tokenize, detokenize, the record calls,
// delete, vendor detokenize) for every caller (each role; tokenizers and detokenizers
// unscoped, scoped to a domain and template, and masked) on every case (in scope, out of scope
// by domain, out of scope by template) over every listener (internal gRPC, internal HTTP,
// vendor HTTP), and compares each item's outcome with scopeMatrix. TestAllowMatrix checks the
// same scoped credentials method by method.
func TestScopeMatrix(t *testing.T) { testenv.ForBackends(t, &pg, testScopeMatrix) }

func testScopeMatrix(t *testing.T, backend testenv.Option) {
	h := testenv.Start(t, backend)
	f := &scopeFixture{h: h}
	vals := make([]string, len(scopeCases))
	for i, c := range scopeCases {
		vals[i] = c.value
	}
	f.tokens = f.tokenize(t, vals)
	if _, err := h.Vault.CreateGrant(context.Background(), vault.Grant{Vendor: "acme", Domains: []string{"a"}, Templates: []string{"pan"},
		Purpose: "matrix", ExpireTime: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	secrets := scopedCallers(t, h)
	for name, secret := range secrets {
		for _, op := range scopeOps {
			want, ok := scopeMatrix[name][op]
			if !ok {
				want = all3(oRefused)
			}
			transports := map[string]func(*testing.T, string, string) [3]string{"http": f.viaHTTP}
			if op != "vendor" {
				transports["grpc"] = f.viaGRPC
			}
			for tr, call := range transports {
				if got := call(t, op, secret); got != want {
					t.Errorf("%s %s over %s: got %v, want %v (cases %s, %s, %s)", name, op, tr, got, want,
						scopeCases[0].name, scopeCases[1].name, scopeCases[2].name)
				}
			}
		}
	}
}

// TestScopeBOLA: a detokenizer scoped to domain a and template pan, asking (in calls of
// 10,000, the batch limit) for 10^5 tokens of other domains and of other templates in its own
// domain, gets no value at all, and the error it gets for each is identical, code and
// message, to the one it gets for tokens that do not exist.
func TestScopeBOLA(t *testing.T) {
	const total, batch = 100_000, vault.MaxBatch
	h := testenv.Start(t, testenv.NoSync(), testenv.DiscardLogs())
	ctx := context.Background()
	// The tokens: a quarter each of pan in domain b, opaque in domain c, email in domain a and
	// digits in domain a. One more pan in domain a is in scope.
	kinds := []struct{ domain, template string }{{"b", "pan"}, {"c", "opaque"}, {"a", "email"}, {"a", "digits"}}
	value := func(k, n int) string {
		switch kinds[k].template {
		case "pan":
			return luhn(fmt.Sprintf("4%014d", n))
		case "email":
			return fmt.Sprintf("p%d@example.com", n)
		case "digits":
			return fmt.Sprintf("%012d", n)
		}
		return fmt.Sprintf("secret-%d", n)
	}
	refs := make([]*tvpb.DetokenizeItem, 0, total)
	for start := 0; start < total; start += batch {
		items := make([]vault.TokenizeItem, batch)
		for i := range items {
			n := start + i
			k := n % len(kinds)
			items[i] = vault.TokenizeItem{Value: value(k, n), Template: kinds[k].template, Domain: kinds[k].domain}
		}
		res, err := h.Vault.Tokenize(ctx, items)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("tokenizing item %d: %v", start+i, r.Err)
			}
			refs = append(refs, &tvpb.DetokenizeItem{Token: r.Token, Domain: items[i].Domain})
		}
	}
	inScope, err := h.Vault.Tokenize(ctx, []vault.TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: "a"}})
	if err != nil || inScope[0].Err != nil {
		t.Fatal(err, inScope)
	}
	_, secret, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "bola", Role: vault.RoleDetokenizer,
		Scope: vault.Scope{Domains: []string{"a"}, Templates: []string{"pan"}}})
	if err != nil {
		t.Fatal(err)
	}
	client := tvpb.NewTokenServiceClient(h.Conn)
	// detokenize asks for items in calls of batch and returns how many values came back and
	// the distinct errors (code and message).
	detokenize := func(items []*tvpb.DetokenizeItem) (int, map[string]int) {
		values, errs := 0, map[string]int{}
		for start := 0; start < len(items); start += batch {
			resp, err := client.Detokenize(authCtx(secret), &tvpb.DetokenizeRequest{Items: items[start:min(start+batch, len(items))], Purpose: "bola"})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range resp.GetResults() {
				if r.GetValue() != "" {
					values++
					continue
				}
				errs[r.GetError().GetCode()+": "+r.GetError().GetMessage()]++
			}
		}
		return values, errs
	}
	values, existing := detokenize(refs)
	if values != 0 {
		t.Fatalf("a detokenizer scoped to a/pan got %d values of %d out-of-scope tokens", values, total)
	}
	// The same number of tokens that do not exist, in the same domains.
	missing := make([]*tvpb.DetokenizeItem, len(refs))
	for i, r := range refs {
		missing[i] = &tvpb.DetokenizeItem{Token: "x" + r.GetToken(), Domain: r.GetDomain()}
	}
	values, absent := detokenize(missing)
	if values != 0 || len(existing) != 1 || fmt.Sprint(existing) != fmt.Sprint(absent) {
		t.Fatalf("errors for existing tokens %v, for missing ones %v (values %d): they must be one and the same", existing, absent, values)
	}
	for e := range existing {
		if !strings.HasPrefix(e, "PERMISSION_DENIED: ") {
			t.Errorf("out-of-scope error %q, want PERMISSION_DENIED", e)
		}
	}
	// The credential works in scope: the zero above is the scope's doing.
	resp, err := client.Detokenize(authCtx(secret), &tvpb.DetokenizeRequest{Items: []*tvpb.DetokenizeItem{{Token: inScope[0].Token, Domain: "a"}}, Purpose: "bola"})
	if err != nil || resp.GetResults()[0].GetValue() != "4111111111111111" {
		t.Fatalf("in scope: %v %v", resp, err)
	}
}

// testClock is a settable clock for testenv.Clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestCredentialExpiryThroughServer: a credential created with expires works until then and
// is refused afterwards exactly like an unknown secret, over gRPC and HTTP; the list marks
// it expired; rotation keeps its expiry and scope.
func TestCredentialExpiryThroughServer(t *testing.T) {
	clk := &testClock{t: time.Now().UTC()}
	h := testenv.Start(t, testenv.Clock(clk.now))
	cc := tvpb.NewCredentialServiceClient(h.Conn)
	created, err := cc.CreateCredential(authCtx(rootSecret), &tvpb.CreateCredentialRequest{Name: "app", Role: "detokenizer",
		Domains: []string{"a"}, Templates: []string{"pan"}, Reveal: "masked", Expires: durationpb.New(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	cr := created.GetCredential()
	if !cr.GetExpireTime().AsTime().Equal(clk.now().Add(24*time.Hour)) || cr.GetReveal() != "masked" || cr.GetDomains()[0] != "a" || cr.GetTemplates()[0] != "pan" {
		t.Fatalf("created %v", cr)
	}
	rot, err := cc.RotateCredential(authCtx(rootSecret), &tvpb.RotateCredentialRequest{Id: cr.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(rot.GetCredential().GetExpireTime(), cr.GetExpireTime()) || rot.GetCredential().GetReveal() != "masked" || len(rot.GetCredential().GetDomains()) != 1 {
		t.Errorf("rotation lost scope or expiry: %v", rot.GetCredential())
	}
	secret := rot.GetSecret()
	detok := func(secret string) (int, []byte, error) {
		_, err := tvpb.NewTokenServiceClient(h.Conn).Detokenize(authCtx(secret), &tvpb.DetokenizeRequest{Items: []*tvpb.DetokenizeItem{{Token: "t", Domain: "a"}}})
		code, body := h.Post("/v1/tokens:detokenize", secret, `{"items":[{"token":"t","domain":"a"}]}`)
		return code, body, err
	}
	if code, _, err := detok(secret); err != nil || code != http.StatusOK {
		t.Fatalf("before expiry: %v, HTTP %d", err, code)
	}
	unknownCode, unknownBody, unknownErr := detok("tvs_not-a-secret")
	clk.add(24 * time.Hour)
	code, body, err := detok(secret)
	if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != status.Convert(unknownErr).Message() {
		t.Errorf("gRPC after expiry: %v, want what an unknown secret gets: %v", err, unknownErr)
	}
	if code != unknownCode || string(body) != string(unknownBody) || code != http.StatusUnauthorized {
		t.Errorf("HTTP after expiry: %d %s, want what an unknown secret gets: %d %s", code, body, unknownCode, unknownBody)
	}
	list, err := cc.ListCredentials(authCtx(rootSecret), &tvpb.ListCredentialsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.GetCredentials() {
		if want := c.GetId() == cr.GetId(); c.GetExpired() != want {
			t.Errorf("%s: expired=%v, want %v", c.GetId(), c.GetExpired(), want)
		}
	}
	if _, err := cc.RotateCredential(authCtx(rootSecret), &tvpb.RotateCredentialRequest{Id: cr.GetId()}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("rotating an expired credential: %v, want FailedPrecondition", err)
	}
}

// TestCreateCredentialScopeErrors: scope and expiry mistakes are InvalidArgument (HTTP 400)
// with a message that says what is wrong, and nothing is created.
func TestCreateCredentialScopeErrors(t *testing.T) {
	h := testenv.Start(t)
	for _, tc := range []struct {
		name string
		body map[string]any
		msg  string
	}{
		{"scope on admin", map[string]any{"role": "admin", "domains": []string{"a"}}, "only tokenizer and detokenizer"},
		{"scope on vendor", map[string]any{"role": "vendor", "vendor": "acme", "templates": []string{"pan"}}, "only tokenizer and detokenizer"},
		{"reveal on tokenizer", map[string]any{"role": "tokenizer", "reveal": "masked"}, "only to detokenizer"},
		{"bad reveal", map[string]any{"role": "detokenizer", "reveal": "some"}, "reveal"},
		{"bad domain", map[string]any{"role": "detokenizer", "domains": []string{"Not A Domain"}}, "domains"},
		{"unknown template", map[string]any{"role": "detokenizer", "templates": []string{"nosuch"}}, "existing templates"},
		{"zero expiry", map[string]any{"role": "tokenizer", "expires": "0s"}, "expires"},
		{"expiry over 10 years", map[string]any{"role": "tokenizer", "expires": "315360001s"}, "expires"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.body["name"] = "bad"
			code, body := h.Post("/v1/credentials", rootSecret, tc.body)
			if code != http.StatusBadRequest || !contains(body, tc.msg) {
				t.Errorf("HTTP %d %s, want 400 saying %q", code, body, tc.msg)
			}
		})
	}
	list, err := h.Vault.ListCredentials(context.Background())
	if err != nil || len(list) != 1 {
		t.Errorf("credentials after refused creates: %d %v", len(list), err)
	}
}

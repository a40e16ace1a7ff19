package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
)

const (
	testIssuerURL = "https://oidc.issuer.test"
	testAudience  = "tokenvault"
	billingSub    = "system:serviceaccount:payments:billing"
)

// testIssuer is an OIDC issuer for the tests: real signing keys (RSA 2048, ECDSA P-256,
// Ed25519) and the JWKS that publishes some of them, served on loopback or written to a file.
type testIssuer struct {
	t         *testing.T
	mu        sync.Mutex
	keys      map[string]crypto.Signer // kid → private key
	published []string                 // kids in the JWKS
	fetches   atomic.Int64             // JWKS requests served
	down      atomic.Bool              // answer 503 instead of the JWKS
}

func newIssuer(t *testing.T) *testIssuer {
	t.Helper()
	is := &testIssuer{t: t, keys: map[string]crypto.Signer{}}
	is.addKey("rsa-1", newRSAKey(t))
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is.addKey("ec-1", ec)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is.addKey("ed-1", ed)
	is.publish("rsa-1", "ec-1", "ed-1")
	return is
}

func newRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func (is *testIssuer) addKey(kid string, k crypto.Signer) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys[kid] = k
}

// publish makes the JWKS hold exactly these keys.
func (is *testIssuer) publish(kids ...string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.published = kids
}

func algOf(k crypto.Signer) jose.SignatureAlgorithm {
	switch k.(type) {
	case *rsa.PrivateKey:
		return jose.RS256
	case *ecdsa.PrivateKey:
		return jose.ES256
	}
	return jose.EdDSA
}

func (is *testIssuer) jwks() []byte {
	is.mu.Lock()
	defer is.mu.Unlock()
	var set jose.JSONWebKeySet
	for _, kid := range is.published {
		k := is.keys[kid]
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public(), KeyID: kid, Algorithm: string(algOf(k)), Use: "sig"})
	}
	data, err := json.Marshal(set)
	if err != nil {
		is.t.Fatal(err)
	}
	return data
}

// serve serves the JWKS over HTTP on loopback until the test ends.
func (is *testIssuer) serve() *httptest.Server {
	srv := httptest.NewServer(is)
	is.t.Cleanup(srv.Close)
	return srv
}

func (is *testIssuer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	is.fetches.Add(1)
	if is.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(is.jwks())
}

// writeFile writes the JWKS to path (atomically: a reader never sees half of it).
func (is *testIssuer) writeFile(path string) {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, is.jwks(), 0o600); err != nil {
		is.t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		is.t.Fatal(err)
	}
}

// claims are a valid token's claims for billingSub; edits change them.
func validClaims(edits ...func(*jwt.Claims)) jwt.Claims {
	now := time.Now()
	c := jwt.Claims{Issuer: testIssuerURL, Audience: jwt.Audience{"other", testAudience}, Subject: billingSub,
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(10 * time.Minute))}
	for _, e := range edits {
		e(&c)
	}
	return c
}

// token signs claims with key kid of the issuer, its key id in the header.
func (is *testIssuer) token(kid string, edits ...func(*jwt.Claims)) string {
	is.mu.Lock()
	k := is.keys[kid]
	is.mu.Unlock()
	return signJWT(is.t, algOf(k), k, kid, validClaims(edits...))
}

func signJWT(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, c jwt.Claims) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// unsignedJWT is a token with "alg": "none" and the given signature segment.
func unsignedJWT(t *testing.T, kid, sig string) string {
	t.Helper()
	payload, err := json.Marshal(validClaims())
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT","kid":"`+kid+`"}`)) + "." + enc(payload) + "." + sig
}

// startJWT starts a server trusting is (through cfg's key source) with a tokenizer credential
// bound to billingSub, created over the API.
func startJWT(t *testing.T, cfg server.JWTConfig) (*testenv.Env, *tvpb.Credential) {
	t.Helper()
	cfg.Issuer, cfg.Audience = testIssuerURL, testAudience
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) { c.JWT = cfg }))
	resp, err := tvpb.NewCredentialServiceClient(h.Conn).CreateCredential(authCtx(rootSecret),
		&tvpb.CreateCredentialRequest{Name: "billing", Role: "tokenizer", JwtSubject: billingSub})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetSecret() != "" || resp.GetCredential().GetJwtSubject() != billingSub {
		t.Fatalf("CreateCredential with a JWT subject = %v; want the subject and no secret", resp)
	}
	return h, resp.GetCredential()
}

var tokenizeBody = map[string]any{"items": []map[string]string{{"value": "4111111111111111", "template": "pan", "domain": "acme"}}}

func grpcTokenize(h *testenv.Env, ctx context.Context) error {
	_, err := tvpb.NewTokenServiceClient(h.Conn).Tokenize(ctx, &tvpb.TokenizeRequest{Items: []*tvpb.TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: "acme"}}})
	return err
}

// httpMessage is the message of an HTTP error body.
func httpMessage(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Message string `json:"message"`
	}
	decodeInto(t, body, &e)
	return e.Message
}

// TestJWTBoundSubject: a JWT signed by each accepted key type authenticates as the credential
// bound to its subject, over gRPC and HTTP, with that credential's role and nothing more
// (a tokenizer cannot detokenize or administer); the vendor listener takes no JWTs; audit
// events name the method and subject; the token is logged nowhere.
func TestJWTBoundSubject(t *testing.T) {
	is := newIssuer(t)
	h, cred := startJWT(t, server.JWTConfig{JWKSURL: is.serve().URL})
	var tokens []string
	for _, kid := range []string{"rsa-1", "ec-1", "ed-1"} {
		tok := is.token(kid)
		tokens = append(tokens, tok)
		if err := grpcTokenize(h, authCtx(tok)); err != nil {
			t.Errorf("%s: gRPC tokenize: %v", kid, err)
		}
		if code, body := h.Post("/v1/tokens:tokenize", tok, tokenizeBody); code != http.StatusOK || !contains(body, `"token"`) {
			t.Errorf("%s: HTTP tokenize: %d %s", kid, code, body)
		}
	}
	tok := tokens[0]
	_, err := tvpb.NewTokenServiceClient(h.Conn).Detokenize(authCtx(tok), &tvpb.DetokenizeRequest{Items: []*tvpb.DetokenizeItem{{Token: "4111110000001111", Domain: "acme"}}})
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("tokenizer JWT detokenizes over gRPC: %v", err)
	}
	if code, body := h.Post("/v1/tokens:detokenize", tok, map[string]any{"items": []map[string]string{{"token": "4111110000001111", "domain": "acme"}}}); code != http.StatusForbidden {
		t.Errorf("tokenizer JWT detokenizes over HTTP: %d %s", code, body)
	}
	if _, err := tvpb.NewCredentialServiceClient(h.Conn).CreateCredential(authCtx(tok), &tvpb.CreateCredentialRequest{Name: "x", Role: "admin"}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("tokenizer JWT creates credentials: %v", err)
	}
	if code, body := h.Post(h.VendorURL("/v1/tokens:detokenize"), tok, `{"items":[{"token":"4111110000001111","domain":"acme"}]}`); code != http.StatusUnauthorized {
		t.Errorf("JWT on the vendor listener: %d %s, want 401", code, body)
	}
	// Unscoped bearer secrets work as before beside JWTs.
	if err := grpcTokenize(h, authCtx(rootSecret)); err != nil {
		t.Errorf("root secret: %v", err)
	}

	evs, _, err := h.Vault.ListAudit(context.Background(), vault.AuditFilter{Credential: cred.GetId(), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for _, ev := range evs {
		outcomes[ev.Method+" "+ev.Outcome]++
		if ev.Actor.AuthMethod != "jwt" || ev.Actor.AuthSubject != billingSub || ev.Actor.Role != "tokenizer" {
			t.Errorf("audit actor %+v, want jwt and %s", ev.Actor, billingSub)
		}
	}
	if outcomes[tvpb.TokenService_Tokenize_FullMethodName+" allowed"] != 6 || outcomes[tvpb.TokenService_Detokenize_FullMethodName+" denied"] != 2 {
		t.Errorf("audit events of the JWT credential: %v", outcomes)
	}
	rootEvs, _, _ := h.Vault.ListAudit(context.Background(), vault.AuditFilter{Credential: vault.RootCredentialID, Method: tvpb.TokenService_Tokenize_FullMethodName})
	if len(rootEvs) != 1 || rootEvs[0].Actor.AuthMethod != "secret" || rootEvs[0].Actor.AuthSubject != "" {
		t.Errorf("root's tokenize events: %+v, want method secret", rootEvs)
	}
	all, _, _ := h.Vault.ListAudit(context.Background(), vault.AuditFilter{Limit: 1000})
	blob, _ := json.Marshal(all)
	for _, tok := range tokens {
		if strings.Contains(string(blob), tok) || strings.Contains(string(blob), strings.Split(tok, ".")[2]) {
			t.Error("the audit trail holds a JWT")
		}
	}
	h.AssertNotLogged(tokens...)
}

// TestJWTRefusedAlike: every invalid token (times, issuer, audience, key, algorithm, claims),
// an unbound subject and a revoked credential's subject are refused over gRPC and HTTP with
// exactly the answer a bad secret gets, and none of the tokens is logged. Tokens within the
// 30s clock-skew leeway pass.
func TestJWTRefusedAlike(t *testing.T) {
	is := newIssuer(t)
	h, _ := startJWT(t, server.JWTConfig{JWKSURL: is.serve().URL})
	ctx := context.Background()
	gone, _, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "gone", Role: vault.RoleAdmin, JWTSubject: "system:serviceaccount:old:gone"})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Vault.RevokeCredential(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	// A key the JWKS does not publish, and one posing under a published key id.
	is.addKey("rsa-unpublished", newRSAKey(t))
	impostor := newRSAKey(t)
	rsaPub, _ := x509.MarshalPKIXPublicKey(is.keys["rsa-1"].Public())
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: rsaPub})
	ago := func(d time.Duration) *jwt.NumericDate { return jwt.NewNumericDate(time.Now().Add(-d)) }

	refused := map[string]string{
		"expired":                       is.token("rsa-1", func(c *jwt.Claims) { c.Expiry = ago(2 * time.Minute) }),
		"not yet valid":                 is.token("ec-1", func(c *jwt.Claims) { c.NotBefore = ago(-2 * time.Minute) }),
		"issued in the future":          is.token("ed-1", func(c *jwt.Claims) { c.IssuedAt = ago(-2 * time.Minute) }),
		"no exp":                        is.token("rsa-1", func(c *jwt.Claims) { c.Expiry = nil }),
		"other audience":                is.token("rsa-1", func(c *jwt.Claims) { c.Audience = jwt.Audience{"someone-else"} }),
		"no audience":                   is.token("rsa-1", func(c *jwt.Claims) { c.Audience = nil }),
		"other issuer":                  is.token("rsa-1", func(c *jwt.Claims) { c.Issuer = "https://evil.test" }),
		"issuer prefix":                 is.token("rsa-1", func(c *jwt.Claims) { c.Issuer = testIssuerURL + "/" }),
		"no subject":                    is.token("rsa-1", func(c *jwt.Claims) { c.Subject = "" }),
		"unbound subject":               is.token("ec-1", func(c *jwt.Claims) { c.Subject = "system:serviceaccount:payments:intruder" }),
		"revoked credential":            is.token("ed-1", func(c *jwt.Claims) { c.Subject = "system:serviceaccount:old:gone" }),
		"unknown key":                   is.token("rsa-unpublished"),
		"impostor key":                  signJWT(t, jose.RS256, impostor, "rsa-1", validClaims()),
		"alg none":                      unsignedJWT(t, "rsa-1", "c2ln"),
		"alg none, no sig":              unsignedJWT(t, "rsa-1", ""),
		"HS256 with the RSA public key": signJWT(t, jose.HS256, rsaPEM, "rsa-1", validClaims()),
		"HS256 with the RSA DER":        signJWT(t, jose.HS256, rsaPub, "rsa-1", validClaims()),
		"ES256 header on RSA key":       signJWT(t, jose.ES256, is.keys["ec-1"], "rsa-1", validClaims()),
		"bad secret":                    "tvs_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	}
	wantMsg := status.Convert(grpcTokenize(h, authCtx("tvs_not-a-secret"))).Message()
	_, badBody := h.Post("/v1/tokens:tokenize", "tvs_not-a-secret", tokenizeBody)
	wantHTTP := httpMessage(t, badBody)
	var all []string
	for name, tok := range refused {
		all = append(all, tok)
		err := grpcTokenize(h, authCtx(tok))
		if st := status.Convert(err); st.Code() != codes.Unauthenticated || st.Message() != wantMsg {
			t.Errorf("%s over gRPC: %v; want Unauthenticated %q", name, err, wantMsg)
		}
		code, body := h.Post("/v1/tokens:tokenize", tok, tokenizeBody)
		if code != http.StatusUnauthorized || httpMessage(t, body) != wantHTTP {
			t.Errorf("%s over HTTP: %d %s; want 401 %q", name, code, body, wantHTTP)
		}
	}
	// Within the leeway (30s): accepted.
	skewed := map[string]string{
		"expired 10s ago":     is.token("rsa-1", func(c *jwt.Claims) { c.Expiry = ago(10 * time.Second) }),
		"valid in 10s":        is.token("ec-1", func(c *jwt.Claims) { c.NotBefore = ago(-10 * time.Second) }),
		"issued in 10s":       is.token("ed-1", func(c *jwt.Claims) { c.IssuedAt = ago(-10 * time.Second) }),
		"audience among many": is.token("rsa-1", func(c *jwt.Claims) { c.Audience = jwt.Audience{"a", "b", testAudience} }),
	}
	for name, tok := range skewed {
		all = append(all, tok)
		if err := grpcTokenize(h, authCtx(tok)); err != nil {
			t.Errorf("%s: %v, want accepted", name, err)
		}
	}
	h.AssertNotLogged(all...)
	logs := h.Logs.String()
	for _, reason := range []string{"bearer JWT refused", "expired", "its subject is bound to no live internal credential"} {
		if !strings.Contains(logs, reason) {
			t.Errorf("the logs do not say %q", reason)
		}
	}
}

// TestJWKSRotationAndRefreshLimit: a key added to the issuer's JWKS (URL) is picked up when a
// token first names it, and such unknown-key reloads are rate-limited: a second unknown key
// within the limit's interval reloads nothing and is refused.
func TestJWKSRotationAndRefreshLimit(t *testing.T) {
	is := newIssuer(t)
	is.publish("rsa-1")
	srv := is.serve()
	h, _ := startJWT(t, server.JWTConfig{JWKSURL: srv.URL, MinRefreshInterval: time.Hour, RefreshInterval: time.Hour})
	if n := is.fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches at start, want 1", n)
	}
	if err := grpcTokenize(h, authCtx(is.token("rsa-1"))); err != nil {
		t.Fatal(err)
	}
	is.addKey("rsa-2", newRSAKey(t))
	is.publish("rsa-1", "rsa-2") // the issuer rotates in a new key
	if err := grpcTokenize(h, authCtx(is.token("rsa-2"))); err != nil {
		t.Errorf("token of the new key: %v", err)
	}
	if n := is.fetches.Load(); n != 2 {
		t.Errorf("%d JWKS fetches after an unknown key id, want 2", n)
	}
	is.publish("rsa-1", "rsa-2", "ec-1")
	for range 5 {
		if err := grpcTokenize(h, authCtx(is.token("ec-1"))); status.Code(err) != codes.Unauthenticated {
			t.Errorf("unknown key within the refresh limit: %v, want Unauthenticated", err)
		}
	}
	if n := is.fetches.Load(); n != 2 {
		t.Errorf("%d JWKS fetches: unknown key ids reloaded past the rate limit", n)
	}
}

// TestJWKSOverHTTPS: a JWKS URL over https is fetched with the CA given (serve --jwt-jwks-ca),
// and not trusted without it.
func TestJWKSOverHTTPS(t *testing.T) {
	is := newIssuer(t)
	srv := httptest.NewTLSServer(is)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	h, _ := startJWT(t, server.JWTConfig{JWKSURL: srv.URL, HTTPClient: server.JWKSClient(&tls.Config{RootCAs: pool})})
	if err := grpcTokenize(h, authCtx(is.token("ec-1"))); err != nil {
		t.Errorf("JWKS over https with its CA: %v", err)
	}
	untrusted, _ := startJWT(t, server.JWTConfig{JWKSURL: srv.URL})
	if err := grpcTokenize(untrusted, authCtx(is.token("ec-1"))); status.Code(err) != codes.Unauthenticated {
		t.Errorf("JWKS from an untrusted https server: %v, want Unauthenticated", err)
	}
}

// TestJWKSURLDownAtStart: a JWKS URL that fails at start does not stop the server; JWTs are
// refused until a reload (the background retry, or one a token with an unknown key triggers)
// loads the keys.
func TestJWKSURLDownAtStart(t *testing.T) {
	is := newIssuer(t)
	is.down.Store(true)
	h, _ := startJWT(t, server.JWTConfig{JWKSURL: is.serve().URL, MinRefreshInterval: 100 * time.Millisecond})
	if err := grpcTokenize(h, authCtx(is.token("rsa-1"))); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("JWT while the JWKS is down: %v", err)
	}
	is.down.Store(false)
	waitFor(t, "the JWKS to load", func() bool { return grpcTokenize(h, authCtx(is.token("rsa-1"))) == nil })
}

// TestJWKSFileReloaded: a JWKS file is re-read at the refresh interval: a key added to it
// starts working and a key removed from it stops, without a restart.
func TestJWKSFileReloaded(t *testing.T) {
	is := newIssuer(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	is.publish("ed-1")
	is.writeFile(path)
	h, _ := startJWT(t, server.JWTConfig{JWKSFile: path, RefreshInterval: 100 * time.Millisecond, MinRefreshInterval: time.Hour})
	if err := grpcTokenize(h, authCtx(is.token("ed-1"))); err != nil {
		t.Fatal(err)
	}
	// ec-1 is unknown: the one unknown-key reload allowed an hour finds nothing.
	if err := grpcTokenize(h, authCtx(is.token("ec-1"))); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("unpublished key: %v", err)
	}
	is.publish("ec-1")
	is.writeFile(path)
	waitFor(t, "the added key to work", func() bool { return grpcTokenize(h, authCtx(is.token("ec-1"))) == nil })
	waitFor(t, "the removed key to stop", func() bool {
		return status.Code(grpcTokenize(h, authCtx(is.token("ed-1")))) == codes.Unauthenticated
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestJWTConfigValidate: issuer, audience and exactly one JWKS source go together; a JWKS
// file that cannot be read stops New; client CAs need TLS.
func TestJWTConfigValidate(t *testing.T) {
	good := filepath.Join(t.TempDir(), "jwks.json")
	newIssuer(t).writeFile(good)
	cases := map[string]server.JWTConfig{
		"issuer only":         {Issuer: testIssuerURL},
		"no audience":         {Issuer: testIssuerURL, JWKSFile: good},
		"no key source":       {Issuer: testIssuerURL, Audience: testAudience},
		"two key sources":     {Issuer: testIssuerURL, Audience: testAudience, JWKSFile: good, JWKSURL: "https://issuer.test/keys"},
		"URL scheme":          {Issuer: testIssuerURL, Audience: testAudience, JWKSURL: "file:///etc/keys"},
		"audience and source": {Audience: testAudience, JWKSFile: good},
	}
	for name, jc := range cases {
		cfg := server.Config{GRPCAddr: "127.0.0.1:0", JWT: jc}
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, jc)
		}
		if _, err := server.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, jc)
		}
	}
	ok := server.Config{GRPCAddr: "127.0.0.1:0", JWT: server.JWTConfig{Issuer: testIssuerURL, Audience: testAudience, JWKSFile: good}}
	if err := ok.Validate(); err != nil {
		t.Errorf("complete JWT settings: %v", err)
	}
	if _, err := server.New(ok); err != nil {
		t.Errorf("New: %v", err)
	}
	for name, content := range map[string]string{"missing": "", "not JSON": "{", "no usable key": `{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"}]}`} {
		bad := ok
		bad.JWT.JWKSFile = filepath.Join(t.TempDir(), "jwks.json")
		if content != "" {
			os.WriteFile(bad.JWT.JWKSFile, []byte(content), 0o600)
		}
		if _, err := server.New(bad); err == nil {
			t.Errorf("JWKS file %s: New accepted it", name)
		}
	}
	caOnly := server.Config{GRPCAddr: "127.0.0.1:0", ClientCAs: newCA(t).pool}
	if caOnly.Validate() == nil {
		t.Error("Validate accepted client CAs without TLS")
	}
}

// TestClientSANMetadataIgnoredOnNetworkCalls: on a plain-text internal gRPC listener, a caller
// cannot claim a certificate identity by sending the metadata key the gateway uses.
func TestClientSANMetadataIgnoredOnNetworkCalls(t *testing.T) {
	h := testenv.Start(t)
	if _, _, err := h.Vault.CreateCredential(context.Background(), vault.CredentialSpec{Name: "b", Role: vault.RoleAdmin, CertSAN: "admin.internal.test"}); err != nil {
		t.Fatal(err)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-tokenvault-client-san", "admin.internal.test")
	if err := grpcTokenize(h, ctx); status.Code(err) != codes.Unauthenticated {
		t.Errorf("claimed SAN in metadata: %v, want Unauthenticated", err)
	}
}

package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestServeJWTWorkloadIdentity: serve --jwt-issuer/--jwt-audience/--jwt-jwks-file wires JWT
// authentication end to end: credential create --jwt-subject issues no secret, a JWT of that
// subject tokenizes over HTTP and through the CLI's gRPC, credential list shows the binding,
// and audit list names the method and subject, never the token.
func TestServeJWTWorkloadIdentity(t *testing.T) {
	const iss, aud, sub = "https://kubernetes.default.svc", "tokenvault", "system:serviceaccount:payments:billing"
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k1", Algorithm: "EdDSA", Use: "sig"}}})
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, t.TempDir(), "--jwt-issuer", iss, "--jwt-audience", aud, "--jwt-jwks-file", jwksFile)
	env := childEnv()
	run := func(token string, args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, env, append(args, "--addr", srv.grpcAddr, "--token", token)...)
		if code != 0 {
			t.Fatalf("tokenvault %v with %s: exit %d: %s", args, map[bool]string{true: "the root token", false: "a JWT"}[token == rootToken], code, errOut)
		}
		return out
	}
	var created struct {
		Credential struct {
			ID         string `json:"id"`
			JWTSubject string `json:"jwt_subject"`
		} `json:"credential"`
		Secret string `json:"secret"`
	}
	out := run(rootToken, "credential", "create", "--name", "billing", "--role", "tokenizer", "--jwt-subject", sub, "-o", "json")
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Credential.JWTSubject != sub || created.Secret != "" {
		t.Fatalf("credential create --jwt-subject: %s (%v)", out, err)
	}
	if out := run(rootToken, "credential", "list"); !strings.Contains(out, "jwt:"+sub) {
		t.Errorf("credential list does not show the binding:\n%s", out)
	}

	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	token, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: iss, Audience: jwt.Audience{aud}, Subject: sub,
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Hour))}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	code, body, err := httpDo(newHTTPClient(), "POST", "http://"+srv.httpAddr+"/v1/tokens:tokenize", token, []byte(`{"items":[{"value":"4111111111111111","template":"pan"}]}`))
	if err != nil || code != http.StatusOK || !strings.Contains(string(body), `"token"`) {
		t.Fatalf("HTTP tokenize with the JWT: %d %s %v", code, body, err)
	}
	if out := run(token, "tokenize", "--template", "pan", "4111111111111111"); len(strings.TrimSpace(out)) != 16 {
		t.Errorf("CLI tokenize with the JWT: %q", out)
	}
	if _, errOut, code := runCLI(t, env, "detokenize", "--addr", srv.grpcAddr, "--token", token, "4111111111111111"); code == 0 || !strings.Contains(errOut, "PermissionDenied") && !strings.Contains(errOut, "may not") {
		t.Errorf("a tokenizer's JWT detokenizes: exit %d %s", code, errOut)
	}
	audit := run(rootToken, "audit", "list", "--credential", created.Credential.ID)
	if !strings.Contains(audit, `"auth_method":"jwt"`) || !strings.Contains(audit, `"auth_subject":"`+sub+`"`) {
		t.Errorf("audit list does not name the method and subject:\n%s", audit)
	}
	if strings.Contains(audit+srv.stderr.String()+srv.stdout.String(), token) {
		t.Error("the JWT appears in the audit trail or the server's output")
	}
}

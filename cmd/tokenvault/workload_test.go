package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
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
			JWTSubject string `json:"jwtSubject"`
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

// pemCA is a test CA that writes what it issues as PEM files.
type pemCA struct {
	t    *testing.T
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newPEMCA(t *testing.T) *pemCA {
	t.Helper()
	ca := &pemCA{t: t, dir: t.TempDir()}
	ca.cert, ca.key = ca.sign(&x509.Certificate{Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, "ca")
	return ca
}

// sign issues tmpl (self-signed while the CA has no certificate), writes NAME.crt and
// NAME.key (0600), and returns the certificate and its key.
func (ca *pemCA) sign(tmpl *x509.Certificate, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl.SerialNumber, _ = rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	parent, signer := tmpl, key
	if ca.cert != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	for file, blk := range map[string]*pem.Block{name + ".crt": {Type: "CERTIFICATE", Bytes: der}, name + ".key": {Type: "PRIVATE KEY", Bytes: kder}} {
		if err := os.WriteFile(filepath.Join(ca.dir, file), pem.EncodeToMemory(blk), 0o600); err != nil {
			ca.t.Fatal(err)
		}
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func (ca *pemCA) path(file string) string { return filepath.Join(ca.dir, file) }

// TestServeClientCA: serve --tls-cert/--tls-key --client-ca verifies client certificates on
// the internal listeners: a credential created with --cert-san SPIFFE-ID is used by the CLI
// with --cert-file/--key-file and no token, and over HTTPS with the certificate alone; audit
// list names the method and SAN; the root token keeps working without a certificate.
func TestServeClientCA(t *testing.T) {
	const spiffe = "spiffe://corp/ns/payments/sa/billing"
	ca := newPEMCA(t)
	ca.sign(&x509.Certificate{Subject: pkix.Name{CommonName: "tokenvault"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, "server")
	u, _ := url.Parse(spiffe)
	ca.sign(&x509.Certificate{Subject: pkix.Name{CommonName: "billing"}, URIs: []*url.URL{u},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, "billing")
	srv := startServer(t, t.TempDir(), "--tls-cert", ca.path("server.crt"), "--tls-key", ca.path("server.key"), "--client-ca", ca.path("ca.crt"))
	env := childEnv()
	run := func(args ...string) (string, string, int) {
		return runCLI(t, env, append(args, "--addr", srv.grpcAddr, "--ca-file", ca.path("ca.crt"))...)
	}
	var created struct {
		Credential struct {
			ID string `json:"id"`
		} `json:"credential"`
	}
	out, errOut, code := run("credential", "create", "--name", "billing", "--role", "tokenizer", "--cert-san", spiffe, "-o", "json", "--token", rootToken)
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil {
		t.Fatalf("credential create --cert-san: exit %d %s %s", code, out, errOut)
	}
	certArgs := []string{"--cert-file", ca.path("billing.crt"), "--key-file", ca.path("billing.key")}
	if out, errOut, code := run(append([]string{"tokenize", "--template", "pan", "4111111111111111"}, certArgs...)...); code != 0 || len(strings.TrimSpace(out)) != 16 {
		t.Fatalf("tokenize by client certificate: exit %d %q %s", code, out, errOut)
	}
	if _, errOut, code := run(append([]string{"detokenize", "4111111111111111"}, certArgs...)...); code == 0 {
		t.Errorf("a tokenizer's certificate detokenizes: %s", errOut)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	cert, err := tls.LoadX509KeyPair(ca.path("billing.crt"), ca.path("billing.key"))
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
	if code, body, err := httpDo(hc, "POST", "https://"+srv.httpAddr+"/v1/tokens:tokenize", "", []byte(`{"items":[{"value":"4111111111111111","template":"pan"}]}`)); err != nil || code != http.StatusOK {
		t.Errorf("HTTPS tokenize by client certificate: %d %s %v", code, body, err)
	}
	if out, errOut, code := run("audit", "list", "--credential", created.Credential.ID, "--token", rootToken); code != 0 || !strings.Contains(out, `"auth_method":"cert"`) || !strings.Contains(out, `"auth_subject":"`+spiffe+`"`) {
		t.Errorf("audit list: exit %d %s %s", code, out, errOut)
	}
	if _, errOut, code := run("tokenize", "--template", "pan", "--token", rootToken, "4111111111111111"); code != 0 {
		t.Errorf("root token without a certificate: %s", errOut)
	}
}

package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
)

const billingSPIFFE = "spiffe://corp/ns/payments/sa/billing"

// mtlsClient is a gRPC connection and an HTTP client to the internal listeners presenting one
// client certificate (or none).
type mtlsClient struct {
	conn *grpc.ClientConn
	http *http.Client
}

func newMTLSClient(t *testing.T, h *testenv.Env, base *tls.Config, cert *tls.Certificate) mtlsClient {
	t.Helper()
	cfg := base.Clone()
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	conn, err := grpc.NewClient(h.Addrs.GRPC, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	c := mtlsClient{conn: conn, http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}}
	t.Cleanup(func() { conn.Close(); c.http.CloseIdleConnections() })
	return c
}

func (c mtlsClient) tokenize(ctx context.Context) (string, error) {
	resp, err := tvpb.NewTokenServiceClient(c.conn).Tokenize(ctx, &tvpb.TokenizeRequest{Items: []*tvpb.TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: "acme"}}})
	if err != nil {
		return "", err
	}
	return resp.GetResults()[0].GetToken(), nil
}

func (c mtlsClient) detokenize(ctx context.Context, token string) error {
	_, err := tvpb.NewTokenServiceClient(c.conn).Detokenize(ctx, &tvpb.DetokenizeRequest{Items: []*tvpb.DetokenizeItem{{Token: token, Domain: "acme"}}, Purpose: "test"})
	return err
}

// post sends an HTTP POST with the extra headers; it returns the status (0 when the request
// failed, as in a refused handshake).
func (c mtlsClient) post(h *testenv.Env, path, secret string, body any, headers ...string) int {
	req := h.Request("POST", path, secret, body)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestInternalMTLS: with a client CA, the internal gRPC and HTTP listeners authenticate a
// verified client certificate whose SAN (a SPIFFE URI or a DNS name) is bound to an internal
// credential, with that credential's role only. An unbound certificate, one from another CA,
// SAN claims in metadata or headers, a bound credential's secret without its certificate and
// a revoked credential's certificate are refused; bearer secrets keep working with or without
// a certificate. Audit events name the method and SAN.
func TestInternalMTLS(t *testing.T) {
	ca, otherCA := newCA(t), newCA(t)
	srvCert := ca.issue(t, "tokenvault.test", true, time.Now().Add(time.Hour))
	base := &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS13}
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, MinVersion: tls.VersionTLS12}
		c.ClientCAs = ca.pool
	}), testenv.ClientTLS(base))
	ctx := context.Background()
	billing, billingSecret, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "billing", Role: vault.RoleTokenizer, CertSAN: billingSPIFFE})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "reports", Role: vault.RoleDetokenizer, CertSAN: "reports.internal.test"}); err != nil {
		t.Fatal(err)
	}
	spiffeCert := func(c *testCA, id string) tls.Certificate {
		u, _ := url.Parse(id)
		return c.issueFor(t, func(tmpl *x509.Certificate) { tmpl.URIs = []*url.URL{u} })
	}
	billingCert := spiffeCert(ca, billingSPIFFE)
	strangerCert := spiffeCert(ca, "spiffe://corp/ns/payments/sa/stranger")
	foreignCert := spiffeCert(otherCA, billingSPIFFE)
	reportsCert := ca.issue(t, "reports.internal.test", false, time.Now().Add(time.Hour))
	billingC := newMTLSClient(t, h, base, &billingCert)
	reportsC := newMTLSClient(t, h, base, &reportsCert)
	strangerC := newMTLSClient(t, h, base, &strangerCert)
	foreignC := newMTLSClient(t, h, base, &foreignCert)
	anonC := newMTLSClient(t, h, base, nil)
	detokBody := func(tok string) map[string]any {
		return map[string]any{"items": []map[string]string{{"token": tok, "domain": "acme"}}, "purpose": "test"}
	}

	// By certificate alone, with the role's permissions and nothing more.
	token, err := billingC.tokenize(ctx)
	if err != nil {
		t.Fatalf("tokenize with the bound SPIFFE certificate: %v", err)
	}
	if err := billingC.detokenize(ctx, token); status.Code(err) != codes.PermissionDenied {
		t.Errorf("tokenizer certificate detokenizes: %v", err)
	}
	if code := billingC.post(h, "/v1/tokens:tokenize", "", tokenizeBody); code != http.StatusOK {
		t.Errorf("HTTP tokenize with the bound certificate: %d", code)
	}
	if code := billingC.post(h, "/v1/tokens:detokenize", "", detokBody(token)); code != http.StatusForbidden {
		t.Errorf("HTTP detokenize with the tokenizer certificate: %d, want 403", code)
	}
	if err := reportsC.detokenize(ctx, token); err != nil {
		t.Errorf("detokenizer by DNS SAN certificate: %v", err)
	}
	if code := reportsC.post(h, "/v1/tokens:detokenize", "", detokBody(token)); code != http.StatusOK {
		t.Errorf("HTTP detokenize with the detokenizer certificate: %d", code)
	}

	// Refused: an unbound certificate, a certificate of another CA (at the handshake), and the
	// bound credential's secret without its certificate.
	if _, err := strangerC.tokenize(ctx); status.Code(err) != codes.Unauthenticated {
		t.Errorf("unbound certificate over gRPC: %v", err)
	}
	if code := strangerC.post(h, "/v1/tokens:tokenize", "", tokenizeBody); code != http.StatusUnauthorized {
		t.Errorf("unbound certificate over HTTP: %d", code)
	}
	if _, err := foreignC.tokenize(ctx); err == nil || status.Code(err) == codes.OK {
		t.Errorf("certificate of another CA over gRPC: %v", err)
	}
	if code := foreignC.post(h, "/v1/tokens:tokenize", "", tokenizeBody); code != 0 {
		t.Errorf("certificate of another CA over HTTP: %d, want a failed handshake", code)
	}
	if _, err := anonC.tokenize(authCtx(billingSecret)); status.Code(err) != codes.Unauthenticated {
		t.Errorf("the bound credential's secret without its certificate: %v", err)
	}

	// A vendor credential's certificate is no use on the internal listeners.
	if _, _, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "acme", Role: vault.RoleVendor, Vendor: "acme", CertSAN: "acme.vendors.test"}); err != nil {
		t.Fatal(err)
	}
	acmeCert := ca.issue(t, "acme.vendors.test", false, time.Now().Add(time.Hour))
	if _, err := newMTLSClient(t, h, base, &acmeCert).tokenize(ctx); status.Code(err) != codes.PermissionDenied {
		t.Errorf("vendor certificate on the internal listener: %v, want PermissionDenied", err)
	}

	// Nobody claims a SAN through metadata or headers: not over gRPC, not through the gateway.
	spoofed := metadata.AppendToOutgoingContext(ctx, "x-tokenvault-client-san", billingSPIFFE)
	for name, c := range map[string]mtlsClient{"no certificate": anonC, "unbound certificate": strangerC} {
		if _, err := c.tokenize(spoofed); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s, SAN in gRPC metadata: %v", name, err)
		}
		for _, hdr := range []string{"X-Tokenvault-Client-San", "Grpc-Metadata-X-Tokenvault-Client-San"} {
			if code := c.post(h, "/v1/tokens:tokenize", "", tokenizeBody, hdr, billingSPIFFE); code != http.StatusUnauthorized {
				t.Errorf("%s, SAN in header %s: %d, want 401", name, hdr, code)
			}
		}
	}

	// Bearer secrets work as before, with or without a (valid, unbound) certificate.
	if _, err := anonC.tokenize(authCtx(rootSecret)); err != nil {
		t.Errorf("root secret without a certificate: %v", err)
	}
	if _, err := strangerC.tokenize(authCtx(rootSecret)); err != nil {
		t.Errorf("root secret with an unbound certificate: %v", err)
	}
	if code := anonC.post(h, "/v1/tokens:tokenize", rootSecret, tokenizeBody); code != http.StatusOK {
		t.Errorf("HTTP root secret without a certificate: %d", code)
	}

	evs, _, err := h.Vault.ListAudit(ctx, vault.AuditFilter{Credential: billing.ID, Limit: 100})
	if err != nil || len(evs) < 4 {
		t.Fatalf("billing's audit events: %d, %v", len(evs), err)
	}
	for _, ev := range evs {
		if ev.Actor.AuthMethod != "cert" || ev.Actor.AuthSubject != billingSPIFFE {
			t.Errorf("audit actor %+v, want cert and %s", ev.Actor, billingSPIFFE)
		}
	}

	// Revoked: its certificate no longer authenticates.
	if err := h.Vault.RevokeCredential(ctx, billing.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := billingC.tokenize(ctx); status.Code(err) != codes.Unauthenticated {
		t.Errorf("revoked credential's certificate: %v", err)
	}
	if code := billingC.post(h, "/v1/tokens:tokenize", "", tokenizeBody); code != http.StatusUnauthorized {
		t.Errorf("revoked credential's certificate over HTTP: %d", code)
	}
}

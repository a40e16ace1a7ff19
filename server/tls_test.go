package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) issue(t *testing.T, dns string, server bool, notAfter time.Time) tls.Certificate {
	t.Helper()
	return ca.issueFor(t, func(tmpl *x509.Certificate) {
		tmpl.Subject, tmpl.DNSNames, tmpl.NotAfter = pkix.Name{CommonName: dns}, []string{dns}, notAfter
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
	})
}

// issueFor issues a client certificate valid for an hour, as edit changes it.
func (ca *testCA) issueFor(t *testing.T, edit func(*x509.Certificate)) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	edit(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestVendorMTLS(t *testing.T) {
	ca := newCA(t)
	srvCert := ca.issue(t, "tokenvault.test", true, time.Now().Add(time.Hour))
	clientTLS := &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS13}
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, MinVersion: tls.VersionTLS13}
		c.VendorTLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, MinVersion: tls.VersionTLS13,
			ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool}
	}), testenv.ClientTLS(clientTLS))
	ctx := context.Background()

	// Internal gRPC and HTTP over TLS.
	resp, err := tvpb.NewTokenServiceClient(h.Conn).Tokenize(authCtx(rootSecret), &tvpb.TokenizeRequest{Items: []*tvpb.TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: "acme"}}})
	if err != nil {
		t.Fatalf("Tokenize over TLS: %v", err)
	}
	token := resp.GetResults()[0].GetToken()
	if code, body := h.Do("GET", "/healthz", "", nil); code != http.StatusOK {
		t.Fatalf("internal HTTPS healthz: %d %s", code, body)
	}

	// acme's credential is bound to its certificate's SAN; globex has a secret only.
	if _, _, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "acme-mtls", Role: vault.RoleVendor, Vendor: "acme", CertSAN: "acme.vendors.test"}); err != nil {
		t.Fatal(err)
	}
	_, globexSecret, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "globex-api", Role: vault.RoleVendor, Vendor: "globex"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Vault.CreateGrant(ctx, vault.Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"pan"}, Purpose: "refunds", ExpireTime: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	vendorURL := "https://" + h.Addrs.Vendor + "/v1/tokens:detokenize"
	body := `{"items":[{"token":"` + token + `","domain":"acme"}],"purpose":"order-7"}`
	vendorCall := func(cert *tls.Certificate, secret string) (int, string, error) {
		cfg := clientTLS.Clone()
		if cert != nil {
			cfg.Certificates = []tls.Certificate{*cert}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		resp, err := c.Do(h.Request("POST", vendorURL, secret, body))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		out, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out), err
	}

	acmeCert := ca.issue(t, "acme.vendors.test", false, time.Now().Add(time.Hour))
	code, out, err := vendorCall(&acmeCert, "")
	if err != nil || code != http.StatusOK || !strings.Contains(out, "4111111111111111") {
		t.Fatalf("acme by certificate: %d %s %v", code, out, err)
	}
	// A valid certificate of another vendor, with acme's grant in play: refused.
	globexCert := ca.issue(t, "globex.vendors.test", false, time.Now().Add(time.Hour))
	if code, out, err := vendorCall(&globexCert, ""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("unbound certificate: %d %s %v, want 401", code, out, err)
	}
	// globex's secret with acme's certificate: the two identities disagree.
	if code, out, err := vendorCall(&acmeCert, globexSecret); err != nil || code != http.StatusUnauthorized {
		t.Errorf("globex secret with acme certificate: %d %s %v, want 401", code, out, err)
	}
	// globex's own secret with its own (unbound) certificate sees nothing of acme's.
	if code, out, err := vendorCall(&globexCert, globexSecret); err != nil || code != http.StatusOK || !strings.Contains(out, "PERMISSION_DENIED") {
		t.Errorf("globex: %d %s %v, want a per-item denial", code, out, err)
	}
	// No certificate, or an expired one: the handshake fails.
	if _, _, err := vendorCall(nil, globexSecret); err == nil {
		t.Errorf("no client certificate: request succeeded")
	}
	expired := ca.issue(t, "acme.vendors.test", false, time.Now().Add(-time.Minute))
	if _, _, err := vendorCall(&expired, ""); err == nil {
		t.Errorf("expired client certificate: request succeeded")
	}
	// A caller cannot claim a certificate identity through headers.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: func() *tls.Config {
		cfg := clientTLS.Clone()
		cfg.Certificates = []tls.Certificate{globexCert}
		return cfg
	}()}}
	req := h.Request("POST", vendorURL, "", body)
	req.Header.Set("Grpc-Metadata-X-Tokenvault-Client-San", "acme.vendors.test")
	req.Header.Set("X-Tokenvault-Client-San", "acme.vendors.test")
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("spoofed SAN header: %v %v, want 401", resp, err)
	}
}

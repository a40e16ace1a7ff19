package server_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
)

// Tests of finding 4 of issue 11: every listener bounds bodies, time and connections, and
// authenticates from the headers before it reads a body. Waits are bounded, generous (10 s
// against 1 s timeouts) and never assert that something is fast, only that it happens.

const bound = 10 * time.Second

// vendorSecret creates a vendor credential for acme with a grant on domain acme.
func vendorSecret(t *testing.T, h *testenv.Env) string {
	t.Helper()
	ctx := context.Background()
	_, s, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "acme-api", Role: vault.RoleVendor, Vendor: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Vault.CreateGrant(ctx, vault.Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"pan"}, Purpose: "refunds", ExpireTime: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return s
}

// hugeUpload sends a request declaring a body of size bytes and keeps writing it while
// reading the response. It returns the response's status line and how many body bytes the
// client had written when the status line arrived.
func hugeUpload(t *testing.T, addr, path, auth string, size int64) (statusLine string, sent int64) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(bound))
	hdr := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", path, size)
	if auth != "" {
		hdr += "Authorization: Bearer " + auth + "\r\n"
	}
	if _, err := io.WriteString(c, hdr+"\r\n"); err != nil {
		t.Fatal(err)
	}
	var written atomic.Int64
	go func() {
		chunk := bytes.Repeat([]byte(" "), 64<<10)
		for written.Load() < size {
			n, err := c.Write(chunk[:min(int64(len(chunk)), size-written.Load())])
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	line, err := bufio.NewReader(c).ReadString('\n')
	sent = written.Load()
	if err != nil {
		t.Fatalf("no response within %v (the client had sent %d of %d bytes): %v", bound, sent, size, err)
	}
	return strings.TrimSpace(line), sent
}

// An unauthenticated 60 MiB body is answered 401 from the headers: the server does not read
// it (the client cannot have sent much of it when the answer arrives).
func TestUnauthenticatedHugeBodyIsRefusedBeforeItIsRead(t *testing.T) {
	h := testenv.Start(t)
	const size = 60 << 20
	for _, c := range []struct{ name, addr, path, auth string }{
		{"vendor/no-credential", h.Addrs.Vendor, "/v1/tokens:detokenize", ""},
		{"vendor/bad-credential", h.Addrs.Vendor, "/v1/tokens:detokenize", "tvs_not-a-secret"},
		{"internal/no-credential", h.Addrs.HTTP, "/v1/tokens:tokenize", ""},
		{"internal/bad-credential", h.Addrs.HTTP, "/v1/tokens:tokenize", "tvs_not-a-secret"},
		{"internal/records", h.Addrs.HTTP, "/v1/records:tokenize", "tvs_not-a-secret"},
	} {
		t.Run(c.name, func(t *testing.T) {
			line, sent := hugeUpload(t, c.addr, c.path, c.auth, size)
			if !strings.Contains(line, " 401 ") {
				t.Errorf("status %q, want 401", line)
			}
			// Socket buffers on loopback hold a few MiB; reading the body would take all 60.
			if sent > 16<<20 {
				t.Errorf("the client had sent %d MiB of 60 when the 401 came: the server read the body", sent>>20)
			}
		})
	}
	// The denials are audited as before.
	evs, _, err := h.Vault.ListAudit(context.Background(), vault.AuditFilter{Outcome: "denied", Limit: 100})
	if err != nil || len(evs) < 5 {
		t.Errorf("denied audit events = %d, %v; want at least 5", len(evs), err)
	}
}

// An authenticated body over the listener's limit is 413 with a message saying the limit,
// whether it declares its length or is chunked.
func TestAuthenticatedOversizedBodyIs413(t *testing.T) {
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) { c.Limits.HTTPMaxBody = 256 << 10 }))
	vs := vendorSecret(t, h)
	big := `{"items":[{"token":"` + strings.Repeat("1", 5<<20) + `","domain":"acme"}],"purpose":"x"}`
	for _, c := range []struct {
		name, url, secret, body string
		chunked                 bool
		limit                   int
	}{
		// The vendor listener's default: 4 MiB.
		{"vendor/default-limit", "http://" + h.Addrs.Vendor + "/v1/tokens:detokenize", vs, big, false, server.DefaultVendorMaxBody},
		{"vendor/chunked", "http://" + h.Addrs.Vendor + "/v1/tokens:detokenize", vs, big, true, server.DefaultVendorMaxBody},
		{"internal/configured", "http://" + h.Addrs.HTTP + "/v1/tokens:tokenize", rootSecret, big, false, 256 << 10},
		{"internal/chunked", "http://" + h.Addrs.HTTP + "/v1/tokens:tokenize", rootSecret, big, true, 256 << 10},
		{"internal/records", "http://" + h.Addrs.HTTP + "/v1/records:tokenize", rootSecret, `{"documents":["` + strings.Repeat("a", 1<<20) + `"],"policy":{}}`, true, 256 << 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(c.body)
			if c.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			code, resp := h.For(t).Do("POST", c.url, c.secret, body)
			if code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d, want 413: %.200s", code, resp)
			}
			if !strings.Contains(string(resp), fmt.Sprint(c.limit)) {
				t.Errorf("413 body does not say the limit (%d): %s", c.limit, resp)
			}
		})
	}
	// Within the limit it works.
	code, resp := h.Post("/v1/tokens:tokenize", rootSecret, `{"items":[{"value":"4111111111111111","template":"pan"}]}`)
	if code != http.StatusOK {
		t.Errorf("small tokenize = %d %s", code, resp)
	}
}

// waitClosed reads from c until the server closes it (EOF or reset) or bound passes.
func waitClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(bound))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("%s: the server kept the connection open for %v", what, bound)
	}
}

func dialT(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Slow clients: headers never finished, a body trickled, an idle keep-alive connection: each
// is closed once its timeout passes (1 s here; the test waits up to 10 s).
func TestSlowClientsAreDisconnected(t *testing.T) {
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) {
		c.Limits.ReadHeaderTimeout = time.Second
		c.Limits.ReadTimeout = time.Second
		c.Limits.IdleTimeout = time.Second
	}))
	vs := vendorSecret(t, h)
	for _, l := range []struct{ name, addr, path, secret string }{
		{"vendor", h.Addrs.Vendor, "/v1/tokens:detokenize", vs},
		{"internal", h.Addrs.HTTP, "/v1/tokens:tokenize", rootSecret},
	} {
		t.Run(l.name+"/headers", func(t *testing.T) {
			c := dialT(t, l.addr)
			io.WriteString(c, "POST "+l.path+" HTTP/1.1\r\nHost: x\r\n")
			waitClosed(t, c, "unfinished headers")
		})
		t.Run(l.name+"/body", func(t *testing.T) {
			c := dialT(t, l.addr)
			io.WriteString(c, "POST "+l.path+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+l.secret+
				"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"items\":")
			waitClosed(t, c, "a trickled body")
		})
		t.Run(l.name+"/idle", func(t *testing.T) {
			c := dialT(t, l.addr)
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			r := bufio.NewReader(c)
			c.SetReadDeadline(time.Now().Add(bound))
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("healthz = %d", resp.StatusCode)
			}
			_, err = io.Copy(io.Discard, r)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("an idle keep-alive connection stayed open for %v", bound)
			}
		})
	}
	// gRPC: a connection that never sends its HTTP/2 preface is closed.
	t.Run("grpc/handshake", func(t *testing.T) {
		c := dialT(t, h.Addrs.GRPC)
		waitClosed(t, c, "a gRPC connection without a preface")
	})
}

// Over the connection cap an HTTP listener answers 503 with Retry-After at once, and the
// gRPC listener closes the connection; a freed slot is usable again.
func TestConnectionCap(t *testing.T) {
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) { c.Limits.MaxConns = 2 }))
	for _, l := range []struct{ name, addr string }{{"vendor", h.Addrs.Vendor}, {"internal", h.Addrs.HTTP}} {
		t.Run(l.name, func(t *testing.T) {
			a, b := dialT(t, l.addr), dialT(t, l.addr)
			// Make sure both are accepted (and counted): one request on each.
			for _, c := range []net.Conn{a, b} {
				io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
				c.SetReadDeadline(time.Now().Add(bound))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			third := dialT(t, l.addr)
			io.WriteString(third, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			third.SetReadDeadline(time.Now().Add(bound))
			resp, err := http.ReadResponse(bufio.NewReader(third), nil)
			if err != nil {
				t.Fatalf("third connection: no response within %v: %v", bound, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Errorf("third connection = %d (Retry-After %q), want 503 with Retry-After: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
			if !strings.Contains(string(body), "connections") {
				t.Errorf("the 503 does not say why: %s", body)
			}
			// Free a slot; a new connection is served again.
			a.Close()
			deadline := time.Now().Add(bound)
			for {
				code, err := healthOnce(l.addr)
				if err == nil && code == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("after closing a connection, healthz = %d, %v", code, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			b.Close()
		})
	}
	t.Run("grpc", func(t *testing.T) {
		// h.Conn may hold one slot; fill the rest with raw connections, then one more.
		if _, err := tvpb.NewTokenServiceClient(h.Conn).Tokenize(authCtx(rootSecret), &tvpb.TokenizeRequest{Items: []*tvpb.TokenizeItem{{Value: "4111111111111111", Template: "pan"}}}); err != nil {
			t.Fatal(err)
		}
		extra := dialT(t, h.Addrs.GRPC)
		io.WriteString(extra, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
		over := dialT(t, h.Addrs.GRPC)
		waitClosed(t, over, "a gRPC connection over the cap")
	})
}

func healthOnce(addr string) (int, error) {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: bound}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// The internal gRPC listener bounds one message (GRPCMaxRecv).
func TestGRPCMaxRecv(t *testing.T) {
	h := testenv.Start(t, testenv.Configure(func(c *server.Config) { c.Limits.GRPCMaxRecv = 1 << 20 }))
	items := make([]*tvpb.TokenizeItem, 300)
	for i := range items {
		items[i] = &tvpb.TokenizeItem{Value: strings.Repeat("a", 4000), Template: "opaque"}
	}
	_, err := tvpb.NewTokenServiceClient(h.Conn).Tokenize(authCtx(rootSecret), &tvpb.TokenizeRequest{Items: items})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a 1.2 MB message with GRPCMaxRecv 1 MiB: %v, want ResourceExhausted", err)
	}
}

// countingConn counts the bytes a client writes.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// The gRPC listener, too, refuses an unauthenticated call from its headers, before it reads
// the message: a 48 MiB Tokenize without valid credentials gets UNAUTHENTICATED while the
// client has sent only what flow control lets through, and the refusal is audited.
func TestGRPCUnauthenticatedRefusedBeforeMessageIsRead(t *testing.T) {
	h := testenv.Start(t)
	items := make([]*tvpb.TokenizeItem, 12)
	for i := range items {
		items[i] = &tvpb.TokenizeItem{Value: strings.Repeat("a", 4<<20), Template: "opaque"}
	}
	for _, secret := range []string{"", "tvs_not-a-secret"} {
		var sent atomic.Int64
		conn, err := grpc.NewClient(h.Addrs.GRPC,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)),
			grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
				if err != nil {
					return nil, err
				}
				return countingConn{Conn: c, n: &sent}, nil
			}))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), bound)
		if secret != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secret)
		}
		_, err = tvpb.NewTokenServiceClient(conn).Tokenize(ctx, &tvpb.TokenizeRequest{Items: items})
		cancel()
		conn.Close()
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("secret %q: %v, want UNAUTHENTICATED", secret, err)
		}
		if sent.Load() > 16<<20 {
			t.Errorf("secret %q: the client had sent %d MiB of 48 when refused: the server read the message", secret, sent.Load()>>20)
		}
	}
	evs, _, err := h.Vault.ListAudit(context.Background(), vault.AuditFilter{Outcome: "denied", Method: "/tokenvault.v1.TokenService/Tokenize", Limit: 100})
	if err != nil || len(evs) != 2 {
		t.Errorf("denied Tokenize audit events = %d, %v; want 2", len(evs), err)
	}
}

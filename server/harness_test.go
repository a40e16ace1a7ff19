package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/tokenvault/tokenvault/crypto/insecurekek"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/store"
)

const rootSecret = "test-root-secret-0123456789"

// logBuffer is a concurrency-safe sink for the server's JSON logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// harness is a real server on loopback ports over a real bbolt file and real Tink keys.
type harness struct {
	t      *testing.T
	srv    *server.Server
	vault  *vault.Vault
	addrs  server.Addrs
	conn   *grpc.ClientConn
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan error
	// http is the client for do/post; tests with TLS replace it.
	http      *http.Client
	clientTLS *tls.Config
}

func start(t *testing.T) *harness {
	t.Helper()
	return startWith(t, nil, nil)
}

// startWith starts a server after letting configure adjust its Config; clientTLS configures
// the harness's gRPC connection when the server has TLS.
func startWith(t *testing.T, configure func(*server.Config), clientTLS *tls.Config) *harness {
	t.Helper()
	dir := t.TempDir()
	kek, _, err := insecurekek.LoadOrCreate(filepath.Join(dir, "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(dir, store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	v, err := vault.Open(ctx, vault.Config{Store: st, KEK: kek, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.SetRootSecret(ctx, rootSecret); err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{Vault: v, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", VendorAddr: "127.0.0.1:0", Logger: log}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	h := &harness{t: t, srv: srv, vault: v, logs: logs, cancel: cancel, done: make(chan error, 1), clientTLS: clientTLS}
	h.http = http.DefaultClient
	go func() { h.done <- srv.Run(rctx) }()
	select {
	case <-srv.Ready():
	case err := <-h.done:
		t.Fatalf("server did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start in 10s")
	}
	h.addrs = srv.Addrs()
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(h.clientTLS)
	}
	h.conn, err = grpc.NewClient(h.addrs.GRPC, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.conn.Close()
		cancel()
		if err := <-h.done; err != nil {
			t.Errorf("Run returned %v", err)
		}
		if err := st.Check(); err != nil {
			t.Errorf("store consistency check: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("closing store: %v", err)
		}
	})
	return h
}

// authCtx returns a context carrying a bearer secret for gRPC calls.
func authCtx(secret string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+secret)
}

func (h *harness) tokens() tvpb.TokenServiceClient { return tvpb.NewTokenServiceClient(h.conn) }

// post sends a JSON body to the internal HTTP listener and returns status and body.
func (h *harness) post(path, secret string, body any) (int, []byte) {
	h.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	return h.do("POST", "http://"+h.addrs.HTTP+path, secret, r)
}

func (h *harness) do(method, url, secret string, body io.Reader) (int, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp.StatusCode, data
}

// assertNotLogged fails if any of the secrets appears in the captured logs.
func (h *harness) assertNotLogged(secrets ...string) {
	h.t.Helper()
	logs := h.logs.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			h.t.Errorf("logs contain a value, token or secret (%d bytes)", len(s))
		}
	}
}

type tokenizeResp struct {
	Results []struct {
		Token string `json:"token"`
		Value string `json:"value"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"results"`
}

func decode(t *testing.T, data []byte) tokenizeResp {
	t.Helper()
	var r tokenizeResp
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
	return r
}

func jsonReader(t *testing.T, v any) io.Reader {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(data)
}

func decodeInto(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
}

func contains(b []byte, s string) bool { return strings.Contains(string(b), s) }

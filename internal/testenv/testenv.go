// Package testenv starts real tokenvault servers for tests: listeners on loopback ports, a
// bbolt file in a temporary directory (or a PostgreSQL database: Postgres, ForBackends), real
// Tink keys, a root secret and captured logs. It is
// test support: only _test.go files import it (server/layering_test.go checks).
package testenv

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

	"github.com/tink-crypto/tink-go/v2/tink"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tokenvault/tokenvault/crypto/insecurekek"
	"github.com/tokenvault/tokenvault/internal/testpg"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/store/pgstore"
)

// RootSecret is the root credential of every server Start starts.
const RootSecret = "test-root-secret-0123456789"

// TB is the part of testing.TB that testenv uses: *testing.T, *testing.B and *testing.F have
// it, and so has *Detached, for examples.
type TB interface {
	Helper()
	TempDir() string
	Cleanup(func())
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}

// Option adjusts what Start starts.
type Option func(*options)

type options struct {
	configure   func(*server.Config)
	clientTLS   *tls.Config
	noSync      bool
	discardLogs bool
	now         func() time.Time
	storeURL    string    // PostgreSQL; empty: a new bbolt file
	replicaID   string    // vault.Config.ReplicaID
	kek         tink.AEAD // nil: a new one
	wrap        func(store.Store) store.Store
}

// Postgres runs the server on the PostgreSQL database at url (pgstore) instead of a new bbolt
// file. Several servers started on one url are replicas of one vault: give them the same KEK
// (KEKOf) and different ReplicaIDs.
func Postgres(url string) Option { return func(o *options) { o.storeURL = url } }

// ReplicaID sets the vault's Config.ReplicaID.
func ReplicaID(id string) Option { return func(o *options) { o.replicaID = id } }

// KEKOf makes the vault use kek (another Env's KEK, for a replica) instead of a new one.
func KEKOf(kek tink.AEAD) Option { return func(o *options) { o.kek = kek } }

// WrapStore makes the vault run on wrap(st) instead of the store st that Start opened (Env.Store
// stays st): a test's way of holding or failing the vault's transactions at a point of its
// choosing. The wrapper hides the optional interfaces of st it does not implement.
func WrapStore(wrap func(store.Store) store.Store) Option {
	return func(o *options) { o.wrap = wrap }
}

// Bolt is the option that keeps the default store, a new bbolt file: the bbolt side of
// ForBackends.
func Bolt() Option { return func(*options) {} }

// ForBackends runs f as two subtests, "bbolt" and "postgres", each with the Option that makes
// Start use that store: a new bbolt file, or a new database on pg (skipped, like every
// PostgreSQL test, when PostgreSQL is not installed). The end-to-end suites use it so that
// they hold on both backends in the same run.
func ForBackends(t *testing.T, pg *testpg.Shared, f func(t *testing.T, backend Option)) {
	t.Helper()
	t.Run("bbolt", func(t *testing.T) { f(t, Bolt()) })
	t.Run("postgres", func(t *testing.T) { f(t, Postgres(pg.DB(t))) })
}

// Clock makes now the vault's clock (vault.Config.Now), so a test can move time (credential
// and token expiry, rotation overlaps) without sleeping. now must be safe for concurrent use.
func Clock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Configure lets f change the server's Config before server.New (for example TLS, Alerts, or
// a nil Vault to start sealed).
func Configure(f func(*server.Config)) Option { return func(o *options) { o.configure = f } }

// ClientTLS is the TLS configuration of Env's gRPC connection and HTTP client, for a server
// configured with TLS.
func ClientTLS(c *tls.Config) Option { return func(o *options) { o.clientTLS = c } }

// NoSync makes the store's commits skip fsync: for fuzzing and load, where throughput matters
// and durability is not under test.
func NoSync() Option { return func(o *options) { o.noSync = true } }

// DiscardLogs drops the server's logs instead of keeping them in Env.Logs: for long runs
// (fuzzing, load), where every request's debug line would pile up in memory.
func DiscardLogs() Option { return func(o *options) { o.discardLogs = true } }

// Env is a running server and what a test needs to talk to it.
type Env struct {
	Server *server.Server
	Vault  *vault.Vault
	// Addrs are the bound addresses of the gRPC, HTTP and vendor listeners.
	Addrs server.Addrs
	// Conn is a gRPC connection to Addrs.GRPC (with ClientTLS when the server has TLS).
	Conn *grpc.ClientConn
	// HTTP is the client Do uses (with ClientTLS as its TLS configuration).
	HTTP *http.Client
	// Logs holds the server's JSON logs, at debug level; nil with DiscardLogs.
	Logs *Logs
	// KEK is the vault's key-encryption key (for KEKOf: a replica needs the same).
	KEK tink.AEAD
	// Store is the vault's store (a *store.Bolt, or a *pgstore.Postgres with Postgres).
	Store store.Store

	tb     TB
	scheme string // of the internal HTTP listener
}

// KEK returns a key-encryption key in a fresh keyset file (a real Tink AES-256-GCM key).
func KEK(tb TB) tink.AEAD {
	tb.Helper()
	kek, _, err := insecurekek.LoadOrCreate(filepath.Join(tb.TempDir(), "kek.json"))
	if err != nil {
		tb.Fatal(err)
	}
	return kek
}

// Start runs a server on 127.0.0.1 (gRPC, HTTP and vendor listeners on free ports) over a new
// bbolt file and KEK, with RootSecret set, until the test ends; it then stops the server and
// checks and closes the store, reporting any failure to tb.
func Start(tb TB, opts ...Option) *Env {
	tb.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	ctx := context.Background()
	st, err := openStore(ctx, tb, o)
	if err != nil {
		tb.Fatal(err)
	}
	e := &Env{tb: tb, scheme: "http", Store: st, KEK: o.kek}
	if e.KEK == nil {
		e.KEK = KEK(tb)
	}
	log := slog.New(slog.DiscardHandler)
	if !o.discardLogs {
		e.Logs = &Logs{}
		log = slog.New(slog.NewJSONHandler(e.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	vst := st
	if o.wrap != nil {
		vst = o.wrap(st)
	}
	if e.Vault, err = vault.Open(ctx, vault.Config{Store: vst, KEK: e.KEK, Logger: log, Now: o.now, ReplicaID: o.replicaID}); err != nil {
		st.Close()
		tb.Fatal(err)
	}
	if err := e.Vault.SetRootSecret(ctx, RootSecret); err != nil {
		st.Close()
		tb.Fatal(err)
	}
	cfg := server.Config{Vault: e.Vault, GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", VendorAddr: "127.0.0.1:0", Logger: log}
	if o.configure != nil {
		o.configure(&cfg)
	}
	if e.Server, err = server.New(cfg); err != nil {
		st.Close()
		tb.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.Server.Run(rctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run returned %v", err)
		}
		if b, ok := st.(*store.Bolt); ok {
			if err := b.Check(); err != nil {
				tb.Errorf("store consistency check: %v", err)
			}
		}
		if err := st.Close(); err != nil {
			tb.Errorf("closing store: %v", err)
		}
	}
	select {
	case <-e.Server.Ready():
	case err := <-done:
		done <- err
		stop()
		tb.Fatalf("server did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		tb.Fatal("server did not start in 30s")
	}
	e.Addrs = e.Server.Addrs()
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds, e.scheme = credentials.NewTLS(o.clientTLS), "https"
	}
	if e.Conn, err = grpc.NewClient(e.Addrs.GRPC, grpc.WithTransportCredentials(creds)); err != nil {
		stop()
		tb.Fatal(err)
	}
	e.HTTP = &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 4, TLSClientConfig: o.clientTLS}}
	tb.Cleanup(func() {
		e.Conn.Close()
		e.HTTP.CloseIdleConnections()
		stop()
	})
	return e
}

// openStore opens the store Start runs on: a new bbolt file, or the PostgreSQL database of
// Postgres.
func openStore(ctx context.Context, tb TB, o options) (store.Store, error) {
	if o.storeURL == "" {
		return store.Open(filepath.Join(tb.TempDir(), store.FileName), store.Options{NoSync: o.noSync})
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return pgstore.Open(ctx, o.storeURL, pgstore.Options{})
}

// For returns e reporting to tb instead of the test that started it: a fuzz target's inputs
// share one server but each has its own *testing.T.
func (e *Env) For(tb TB) *Env {
	c := *e
	c.tb = tb
	return &c
}

// URL returns the internal HTTP listener's URL for path.
func (e *Env) URL(path string) string { return e.scheme + "://" + e.Addrs.HTTP + path }

// VendorURL returns the vendor listener's URL for path (plain HTTP: the tests that give it TLS
// use clients of their own, with client certificates).
func (e *Env) VendorURL(path string) string { return "http://" + e.Addrs.Vendor + path }

// Request returns a request with a JSON body and, unless secret is empty, secret as its bearer
// token. url may be a path of the internal HTTP listener. body is nil (no body), a string,
// []byte or io.Reader sent as is, or any other value, sent as its JSON encoding.
func (e *Env) Request(method, url, secret string, body any) *http.Request {
	e.tb.Helper()
	if strings.HasPrefix(url, "/") {
		url = e.URL(url)
	}
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	case io.Reader:
		r = b
	default:
		data, err := json.Marshal(body)
		if err != nil {
			e.tb.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		e.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	return req
}

// Send sends req with e.HTTP and returns the response's status and body.
func (e *Env) Send(req *http.Request) (int, []byte) {
	e.tb.Helper()
	resp, err := e.HTTP.Do(req)
	if err != nil {
		e.tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.tb.Fatalf("%s %s: reading the response: %v", req.Method, req.URL.Path, err)
	}
	return resp.StatusCode, data
}

// Do sends a request made as Request makes it and returns the response's status and body.
func (e *Env) Do(method, url, secret string, body any) (int, []byte) {
	e.tb.Helper()
	return e.Send(e.Request(method, url, secret, body))
}

// Post is Do with POST.
func (e *Env) Post(url, secret string, body any) (int, []byte) {
	e.tb.Helper()
	return e.Do(http.MethodPost, url, secret, body)
}

// AssertNotLogged fails the test if any of the secrets (values, tokens, credentials) appears
// in the server's logs.
func (e *Env) AssertNotLogged(secrets ...string) {
	e.tb.Helper()
	if e.Logs == nil {
		e.tb.Fatal("AssertNotLogged: the logs are discarded (DiscardLogs)")
	}
	logs := e.Logs.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			e.tb.Errorf("logs contain a value, token or secret (%d bytes)", len(s))
		}
	}
}

// Logs is a concurrency-safe sink for a server's logs.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

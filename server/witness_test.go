package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testenv"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault/audit"
)

// Probe 7: with --audit-witness-url and --audit-witness-file the server sends every signed
// checkpoint to both; what they keep verifies under the audit key and checks an export. A
// failing witness is counted and gets the latest checkpoint at the next tick.
func TestAuditWitnessURLAndFile(t *testing.T) {
	testenv.ForBackends(t, &pg, testAuditWitnessURLAndFile)
}

func testAuditWitnessURLAndFile(t *testing.T, backend testenv.Option) {
	var mu sync.Mutex
	var received bytes.Buffer
	var failing atomic.Bool
	failing.Store(true)
	var posts atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		if failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		received.Write(append(b, '\n'))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	file := filepath.Join(t.TempDir(), "witness.jsonl")
	e := testenv.Start(t, backend, testenv.Configure(func(c *server.Config) {
		c.CheckpointInterval = 50 * time.Millisecond
		c.AuditWitnessURL = recv.URL + "/witness?token=s3cr3t-witness-credential"
		c.AuditWitnessFile = file
	}))
	tokenize := func(v string) {
		t.Helper()
		if code, body := e.Post("/v1/tokens:tokenize", testenv.RootSecret, map[string]any{"items": []map[string]string{{"value": v, "template": "ssn"}}}); code != 200 {
			t.Fatalf("tokenize = %d %s", code, body)
		}
	}
	tokenize("123-45-6789")
	if !waitUntil(10*time.Second, func() bool { return posts.Load() >= 2 }) {
		t.Fatal("the URL witness was never called")
	}
	code, metrics := e.Do("GET", "/metrics", testenv.RootSecret, nil)
	if code != 200 || !strings.Contains(string(metrics), `tokenvault_audit_witness_failures_total{witness="url"}`) || strings.Contains(string(metrics), `tokenvault_audit_witness_failures_total{witness="url"} 0`) {
		t.Fatalf("metrics after witness failures = %d, want a non-zero url failure count:\n%s", code, grepLines(string(metrics), "witness"))
	}
	e.AssertNotLogged("s3cr3t-witness-credential")
	failing.Store(false)
	tokenize("234-56-7890")
	var last uint64
	if !waitUntil(10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		cs, err := audit.ReadWitness(bytes.NewReader(received.Bytes()))
		if err != nil || len(cs) == 0 {
			return false
		}
		last = cs[len(cs)-1].Seq
		return last >= 3 // root secret, two tokenizations
	}) {
		t.Fatalf("the URL witness did not receive the latest checkpoint:\n%s", received.String())
	}
	pub, err := e.Vault.AuditPublicKeyset()
	if err != nil {
		t.Fatal(err)
	}
	var exp bytes.Buffer
	if err := e.Vault.ExportAudit(context.Background(), 1, &exp); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]func() []byte{
		"url":  func() []byte { mu.Lock(); defer mu.Unlock(); return append([]byte(nil), received.Bytes()...) },
		"file": func() []byte { b, _ := os.ReadFile(file); return b },
	} {
		cs, err := audit.ReadWitness(bytes.NewReader(src()))
		if err != nil || len(cs) == 0 {
			t.Fatalf("%s witness: %d checkpoints, %v", name, len(cs), err)
		}
		for _, c := range cs {
			if err := audit.VerifySignature(pub, mustB64(t, c.Signature), audit.CheckpointMessage(c.Seq, c.Hash, c.Time)); err != nil {
				t.Fatalf("%s witness: checkpoint %d does not verify: %v", name, c.Seq, err)
			}
		}
		rep, err := audit.Verify(bytes.NewReader(exp.Bytes()), audit.Options{PublicKeyset: pub, Witnessed: cs, Strict: true})
		if err != nil || rep.Witnessed == 0 {
			t.Fatalf("export checked against the %s witness: %+v, %v", name, rep, err)
		}
	}
	if info, err := os.Stat(file); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("witness file: %v %v, want 0600", info, err)
	}
}

func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

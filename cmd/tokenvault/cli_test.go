package main

// The client commands against a running server.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testenv"
)

// TestCLI drives the client commands against a running server over gRPC.
func TestCLI(t *testing.T) {
	srv := startServer(t, t.TempDir())
	env := childEnv()
	flags := []string{"--addr", srv.grpcAddr, "--token", rootToken}
	cli := func(args ...string) (string, string, int) {
		t.Helper()
		return runCLI(t, env, args...)
	}
	mustCLI := func(args ...string) string {
		t.Helper()
		out, errOut, code := cli(args...)
		if code != 0 {
			t.Fatalf("tokenvault %s: exit %d\nstderr:\n%s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	const pan = "4111111111111111"

	// tokenize: one token line.
	out := mustCLI(append([]string{"tokenize", "--template", "pan"}, append(flags, pan)...)...)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 1 || !regexp.MustCompile(`^[0-9]{16}$`).MatchString(lines[0]) || lines[0] == pan {
		t.Fatalf("tokenize printed %q, want one 16-digit token line", out)
	}
	tok := lines[0]

	// detokenize: the value back.
	if out := mustCLI(append([]string{"detokenize"}, append(flags, tok)...)...); out != pan+"\n" {
		t.Errorf("detokenize printed %q, want %q", out, pan+"\n")
	}

	// Several values: one line each, in order.
	out = mustCLI(append([]string{"tokenize", "--template", "email", "--domain", "acme"}, append(flags, "a.one@example.com", "b.two@example.com")...)...)
	if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); len(lines) != 2 || !strings.HasSuffix(lines[0], "@example.com") {
		t.Errorf("tokenize of two emails printed %q", out)
	} else if back := mustCLI(append([]string{"detokenize", "--domain", "acme"}, append(flags, lines...)...)...); back != "a.one@example.com\nb.two@example.com\n" {
		t.Errorf("detokenize of two emails printed %q", back)
	}

	// -o json.
	out = mustCLI(append([]string{"tokenize", "--template", "pan", "-o", "json"}, append(flags, pan)...)...)
	var jr resultsResp
	if err := json.Unmarshal([]byte(out), &jr); err != nil || len(jr.Results) != 1 || jr.Results[0].Token != tok {
		t.Errorf("tokenize -o json printed %q (%v), want results[0].token %q", out, err, tok)
	}
	out = mustCLI(append([]string{"detokenize", "-o", "json"}, append(flags, tok)...)...)
	jr = resultsResp{}
	if err := json.Unmarshal([]byte(out), &jr); err != nil || len(jr.Results) != 1 || jr.Results[0].Value != pan {
		t.Errorf("detokenize -o json printed %q (%v), want results[0].value %q", out, err, pan)
	}

	// Wrong token: non-zero exit, the error on stderr, nothing on stdout.
	out, errOut, code := cli("tokenize", "--addr", srv.grpcAddr, "--token", "wrong-secret", "--template", "pan", pan)
	if code == 0 || strings.TrimSpace(errOut) == "" || strings.TrimSpace(out) != "" {
		t.Errorf("tokenize with a wrong token: exit %d, stdout %q, stderr %q; want non-zero, an error on stderr, no output", code, out, errOut)
	}
	if strings.Contains(errOut, "wrong-secret") {
		t.Errorf("the error echoes the secret: %q", errOut)
	}
	// No token at all.
	if _, errOut, code := cli("tokenize", "--addr", srv.grpcAddr, "--template", "pan", pan); code == 0 || strings.TrimSpace(errOut) == "" {
		t.Errorf("tokenize without a token: exit %d, stderr %q; want non-zero with an error", code, errOut)
	}
	// A bad value: non-zero exit, the item error on stderr.
	if _, errOut, code := cli(append([]string{"tokenize", "--template", "pan"}, append(flags, "12")...)...); code == 0 || !strings.Contains(errOut, "item 1") {
		t.Errorf("tokenize of a bad pan: exit %d, stderr %q; want non-zero naming item 1", code, errOut)
	}
	// An unknown token.
	if _, errOut, code := cli(append([]string{"detokenize"}, append(flags, "9999999999999999")...)...); code == 0 || strings.TrimSpace(errOut) == "" {
		t.Errorf("detokenize of an unknown token: exit %d, stderr %q; want non-zero with an error", code, errOut)
	}

	// TOKENVAULT_ADDR / TOKENVAULT_TOKEN instead of flags.
	envOnly := childEnv("TOKENVAULT_ADDR="+srv.grpcAddr, "TOKENVAULT_TOKEN="+rootToken)
	out, errOut, code = runCLI(t, envOnly, "tokenize", "--template", "pan", pan)
	if code != 0 || out != tok+"\n" {
		t.Errorf("tokenize with TOKENVAULT_ADDR/TOKENVAULT_TOKEN: exit %d, stdout %q, stderr %q; want %q", code, out, errOut, tok+"\n")
	}
	out, errOut, code = runCLI(t, envOnly, "detokenize", tok)
	if code != 0 || out != pan+"\n" {
		t.Errorf("detokenize with TOKENVAULT_ADDR/TOKENVAULT_TOKEN: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Flags win over the environment.
	if _, errOut, code := runCLI(t, childEnv("TOKENVAULT_ADDR="+srv.grpcAddr, "TOKENVAULT_TOKEN=wrong"), "tokenize", "--token", rootToken, "--template", "pan", pan); code != 0 {
		t.Errorf("--token did not win over TOKENVAULT_TOKEN: exit %d, stderr %q", code, errOut)
	}

	// Templates.
	out = mustCLI(append([]string{"template", "create", "--name", "e2e-card", "--base", "pan", "--keep-suffix", "4", "--luhn", "valid"}, flags...)...)
	if !strings.Contains(out, "e2e-card") {
		t.Errorf("template create printed %q, want the template", out)
	}
	if _, errOut, code := cli(append([]string{"template", "create", "--name", "e2e-card", "--base", "pan"}, flags...)...); code == 0 || strings.TrimSpace(errOut) == "" {
		t.Errorf("creating e2e-card twice: exit %d, stderr %q; want non-zero with an error", code, errOut)
	}
	out = mustCLI(append([]string{"template", "list"}, flags...)...)
	for _, name := range []string{"e2e-card", "pan", "email", "opaque"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s`).MatchString(out) {
			t.Errorf("template list has no line for %s:\n%s", name, out)
		}
	}
	out = mustCLI(append([]string{"template", "list", "-o", "json"}, flags...)...)
	var tl struct {
		Templates []struct {
			Name, Base string
			Builtin    bool
		} `json:"templates"`
	}
	if err := json.Unmarshal([]byte(out), &tl); err != nil {
		t.Errorf("template list -o json: %v\n%s", err, out)
	}
	found := false
	for _, tt := range tl.Templates {
		if tt.Name == "e2e-card" {
			found = true
			if tt.Base != "pan" || tt.Builtin {
				t.Errorf("template list -o json: e2e-card is %+v", tt)
			}
		}
	}
	if !found {
		t.Errorf("template list -o json has no e2e-card:\n%s", out)
	}
	// The custom template tokenizes: 16 digits, the last four kept, Luhn-valid.
	out = mustCLI(append([]string{"tokenize", "--template", "e2e-card"}, append(flags, pan)...)...)
	if ct := strings.TrimSpace(out); len(ct) != 16 || ct[12:] != pan[12:] || ct == pan || !luhnOK(ct) {
		t.Errorf("tokenize with e2e-card printed %q, want 16 Luhn-valid digits ending 1111", out)
	}

	srv.stopClean()
}

// luhnOK reports whether a digit string passes the Luhn check.
func luhnOK(s string) bool {
	sum := 0
	for i := range len(s) {
		d := int(s[len(s)-1-i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if i%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// TestCLIRecords: record tokenize/detokenize read JSON lines on stdin, keep the documents'
// shape byte for byte, and report a failed field by path (never its value) with a non-zero exit.
func TestCLIRecords(t *testing.T) {
	srv := startServer(t, t.TempDir())
	defer srv.stopClean()
	conn := []string{"--addr", srv.grpcAddr, "--token", rootToken}
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte("$.customer.email: email\n$.payment.card: pan\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := `{"z":1,"customer":{"email":"jane@example.com"},"payment":{"card":"4111111111111111","amount":1.50}}` + "\n"
	out, errOut, code := runCLIStdin(t, childEnv(), in, append([]string{"record", "tokenize", "--policy", policy, "--domain", "acme"}, conn...)...)
	if code != 0 || strings.Contains(out, "jane@example.com") || strings.Contains(out, "4111111111111111") ||
		!strings.HasPrefix(out, `{"z":1,"customer":{"email":"`) || !strings.Contains(out, `"amount":1.50`) {
		t.Fatalf("record tokenize = %d %q %q", code, out, errOut)
	}
	back, errOut, code := runCLIStdin(t, childEnv(), out, append([]string{"record", "detokenize", "--policy", policy, "--domain", "acme", "--purpose", "t"}, conn...)...)
	if code != 0 || back != in {
		t.Fatalf("record detokenize = %d %q %q, want the original bytes", code, back, errOut)
	}
	bad := `{"customer":{"email":"NOT-AN-EMAIL-value"}}` + "\n"
	out, errOut, code = runCLIStdin(t, childEnv(), bad, append([]string{"record", "tokenize", "--policy", policy}, conn...)...)
	if code == 0 || strings.TrimSpace(out) != "null" || !strings.Contains(errOut, "$.customer.email") || strings.Contains(errOut+out, "NOT-AN-EMAIL") {
		t.Fatalf("record tokenize of a bad field = %d %q %q", code, out, errOut)
	}
}

// TestCLIAdminAndOffline: credential --cert-san, grant list/revoke, keys refusing to disable a
// key in use, offline audit verify --data, and restore --erasure-log re-applying an erasure.
func TestCLIAdminAndOffline(t *testing.T) {
	data := t.TempDir()
	srv := startServer(t, data)
	conn := []string{"--addr", srv.grpcAddr, "--token", rootToken}
	env := childEnv()
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, env, append(args, conn...)...)
		if code != 0 {
			t.Fatalf("tokenvault %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	var cred struct {
		Credential struct {
			CertSAN string `json:"certSan"`
		} `json:"credential"`
		Secret string `json:"secret"`
	}
	out := run("credential", "create", "--name", "acme-mtls", "--role", "vendor", "--vendor", "acme", "--cert-san", "acme.vendors.test", "-o", "json")
	if err := json.Unmarshal([]byte(out), &cred); err != nil || cred.Credential.CertSAN != "acme.vendors.test" || cred.Secret == "" {
		t.Fatalf("credential create --cert-san: %s (%v)", out, err)
	}
	// -o json prints zero values, laid out the same in every build: no grants yet is an empty list.
	if out := run("grant", "list", "-o", "json"); !strings.Contains(out, `"grants": []`) {
		t.Errorf("grant list -o json with no grants = %q, want \"grants\": []", out)
	}
	var g struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(run("grant", "create", "--vendor", "acme", "--domain", "acme", "--template", "pan", "--purpose", "p", "-o", "json")), &g); err != nil || g.ID == "" {
		t.Fatalf("grant create: %v", err)
	}
	run("grant", "revoke", g.ID)
	var gl struct {
		Grants []struct {
			Revoked bool `json:"revoked"`
		} `json:"grants"`
	}
	if err := json.Unmarshal([]byte(run("grant", "list", "-o", "json")), &gl); err != nil || len(gl.Grants) != 1 || !gl.Grants[0].Revoked {
		t.Fatalf("grant list does not show the revocation: %+v %v", gl, err)
	}
	tok := strings.TrimSpace(run("tokenize", "--template", "ssn", "--subject", "s1", "123-45-6789"))
	var rot struct {
		KeyID uint32 `json:"keyId"`
	}
	if err := json.Unmarshal([]byte(run("keys", "rotate", "-o", "json")), &rot); err != nil || rot.KeyID == 0 {
		t.Fatalf("keys rotate: %v", err)
	}
	if _, errOut, code := runCLI(t, env, append([]string{"keys", "disable", itoa(rot.KeyID)}, conn...)...); code == 0 || !strings.Contains(errOut, "primary") {
		t.Fatalf("keys disable of the primary = exit %d %s, want refused", code, errOut)
	}
	backup := filepath.Join(t.TempDir(), "vault.bak")
	run("backup", "--out", backup)
	run("erase-subject", "s1")
	srv.stopClean()

	if out, errOut, code := runCLI(t, env, "audit", "verify", "--data", data); code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify --data = %d %s %s", code, out, errOut)
	}
	restored := t.TempDir()
	if out, errOut, code := runCLI(t, env, "restore", "--in", backup, "--data", restored, "--erasure-log", filepath.Join(data, "erasure.log")); code != 0 || !strings.Contains(out, "copied the erasure log") {
		t.Fatalf("restore --erasure-log = %d %s %s", code, out, errOut)
	}
	kek, err := os.ReadFile(filepath.Join(data, "kek.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, "kek.json"), kek, 0o600); err != nil {
		t.Fatal(err)
	}
	srv2 := startServer(t, restored)
	defer srv2.stopClean()
	_, errOut, code := runCLI(t, env, "detokenize", "--addr", srv2.grpcAddr, "--token", rootToken, tok)
	if code == 0 || !strings.Contains(errOut, "NOT_FOUND") {
		t.Fatalf("the erased subject's token after restore: exit %d %s", code, errOut)
	}
}

func itoa(n uint32) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// Issue 14: tokenize took values only as arguments, so PANs landed in shell history and ps.
// Without arguments, tokenize and detokenize read one item a line from stdin (CRLF and empty
// lines tolerated); nothing at all is a usage error that says how to give values.
func TestCLIValuesFromStdin(t *testing.T) {
	srv := startServer(t, t.TempDir())
	defer srv.stopClean()
	conn := []string{"--addr", srv.grpcAddr, "--token", rootToken}
	in := "4111111111111111\r\n\n5555555555554444\n"
	out, errOut, code := runCLIStdin(t, childEnv(), in, append([]string{"tokenize", "--template", "pan", "--domain", "acme"}, conn...)...)
	toks := strings.Fields(out)
	if code != 0 || len(toks) != 2 || strings.Contains(out, "4111111111111111") {
		t.Fatalf("tokenize from stdin = %d %q %q", code, out, errOut)
	}
	// The same values as arguments give the same tokens (deterministic template).
	if argOut, _, _ := runCLI(t, childEnv(), append([]string{"tokenize", "--template", "pan", "--domain", "acme", "4111111111111111", "5555555555554444"}, conn...)...); strings.Fields(argOut)[0] != toks[0] {
		t.Errorf("stdin and argument tokens differ: %q vs %q", toks, argOut)
	}
	back, errOut, code := runCLIStdin(t, childEnv(), strings.Join(toks, "\n"), append([]string{"detokenize", "--domain", "acme", "--purpose", "t"}, conn...)...)
	if code != 0 || back != "4111111111111111\n5555555555554444\n" {
		t.Fatalf("detokenize from stdin = %d %q %q", code, back, errOut)
	}
	_, errOut, code = runCLIStdin(t, childEnv(), "\n\n", append([]string{"tokenize", "--template", "pan"}, conn...)...)
	if code == 0 || !strings.Contains(errOut, "one a line on stdin") {
		t.Errorf("tokenize with nothing = %d %q, want an error saying how to give values", code, errOut)
	}
}

// Issue 14: wrong-address errors did not say what to do (--addr at the HTTP port: "http2:
// frame too large"; a TLS server without --ca-file: "error reading server preface: EOF"). The
// CLI now recognises them and names the flag that fixes each.
func TestCLIConnectionHints(t *testing.T) {
	plain := startServer(t, t.TempDir())
	defer plain.stopClean()
	certPath, keyPath := writeTestCert(t, t.TempDir(), 0o600)
	tlsSrv := startServer(t, t.TempDir(), "--tls-cert", certPath, "--tls-key", keyPath)
	defer tlsSrv.stopClean()
	tok := []string{"tokenize", "--template", "pan", "--token", rootToken, "4111111111111111"}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"the HTTP port", []string{"--addr", plain.httpAddr}, "use the server's --grpc-addr"},
		{"TLS without --ca-file", []string{"--addr", tlsSrv.grpcAddr}, "--ca-file"},
		{"plain text with --ca-file", []string{"--addr", plain.grpcAddr, "--ca-file", certPath}, "drop --tls and --ca-file"},
		{"TLS with another CA", []string{"--addr", tlsSrv.grpcAddr, "--tls"}, "--ca-file must be the CA bundle"},
	} {
		_, stderr, code := runCLI(t, childEnv(), append(tok, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q, want a hint containing %q", c.name, code, stderr, c.want)
		}
	}
	// And the right flags work.
	if out, stderr, code := runCLI(t, childEnv(), append(tok, "--addr", tlsSrv.grpcAddr, "--ca-file", certPath)...); code != 0 || strings.TrimSpace(out) == "" {
		t.Errorf("TLS with --ca-file: exit %d %q %q", code, out, stderr)
	}
}

// Issue 14: exit codes did not tell a usage mistake from a refused credential from a batch
// with failed items. They do now (docs/api.md, "CLI exit codes").
func TestCLIExitCodes(t *testing.T) {
	srv := startServer(t, t.TempDir())
	defer srv.stopClean()
	conn := []string{"--addr", srv.grpcAddr}
	for _, c := range []struct {
		name string
		args []string
		want int
	}{
		{"success", append([]string{"tokenize", "--template", "pan", "--token", rootToken, "4111111111111111"}, conn...), 0},
		{"unknown command", []string{"tokenise"}, 2},
		{"unknown flag", []string{"tokenize", "--templat", "pan", "x"}, 2},
		{"missing required flag", append([]string{"tokenize", "--token", rootToken, "4111111111111111"}, conn...), 2},
		{"wrong arguments", []string{"version", "extra"}, 2},
		{"bad secret", append([]string{"tokenize", "--template", "pan", "--token", "tvs_wrong", "4111111111111111"}, conn...), 3},
		{"no secret (usage)", append([]string{"tokenize", "--template", "pan", "--token", "", "4111111111111111"}, conn...), 2},
		{"some items failed", append([]string{"tokenize", "--template", "pan", "--token", rootToken, "4111111111111111", "not-a-card"}, conn...), 4},
		{"unknown token", append([]string{"detokenize", "--purpose", "t", "--token", rootToken, "0000000000000000"}, conn...), 4},
		{"bad -o (usage)", []string{"version", "-o", "yaml"}, 2},
		{"no values (usage)", append([]string{"tokenize", "--template", "pan", "--token", rootToken}, conn...), 2},
		{"server unreachable", []string{"tokenize", "--template", "pan", "--token", rootToken, "--addr", "127.0.0.1:1", "4111111111111111"}, 1},
	} {
		_, stderr, code := runCLI(t, childEnv(), c.args...)
		if code != c.want {
			t.Errorf("%s: exit %d, want %d (stderr %q)", c.name, code, c.want, stderr)
		}
	}
}

// Issue 14: a server that accepts the connection but never answers made admin commands hang.
// Every call now waits at most --timeout: a unary call (keys status) and a stream (backup,
// where it is the idle limit) fail with DeadlineExceeded soon after it; a negative one is a
// usage error.
func TestCLITimeout(t *testing.T) {
	silent := testenv.Silent(t)
	out := filepath.Join(t.TempDir(), "b.db")
	for _, args := range [][]string{{"keys", "status"}, {"backup", "--out", out}} {
		start := time.Now()
		_, stderr, code := runCLI(t, childEnv(), append(args, "--addr", silent, "--token", rootToken, "--timeout", "300ms")...)
		if code != 1 || !strings.Contains(stderr, "DeadlineExceeded") || time.Since(start) > 10*time.Second {
			t.Errorf("%v on a silent server: exit %d after %s, stderr %q; want 1 and DeadlineExceeded", args, code, time.Since(start), stderr)
		}
	}
	if _, stderr, code := runCLI(t, childEnv(), "keys", "status", "--addr", silent, "--token", rootToken, "--timeout", "-1s"); code != 2 || !strings.Contains(stderr, "--timeout") {
		t.Errorf("--timeout -1s: exit %d %q, want a usage error", code, stderr)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCLIStdin is runCLI with stdin.
func runCLIStdin(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = childEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("tokenvault %s: did not finish in a minute", strings.Join(args, " "))
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
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
	out, errOut, code := runCLIStdin(t, in, append([]string{"record", "tokenize", "--policy", policy, "--domain", "acme"}, conn...)...)
	if code != 0 || strings.Contains(out, "jane@example.com") || strings.Contains(out, "4111111111111111") ||
		!strings.HasPrefix(out, `{"z":1,"customer":{"email":"`) || !strings.Contains(out, `"amount":1.50`) {
		t.Fatalf("record tokenize = %d %q %q", code, out, errOut)
	}
	back, errOut, code := runCLIStdin(t, out, append([]string{"record", "detokenize", "--policy", policy, "--domain", "acme", "--purpose", "t"}, conn...)...)
	if code != 0 || back != in {
		t.Fatalf("record detokenize = %d %q %q, want the original bytes", code, back, errOut)
	}
	bad := `{"customer":{"email":"NOT-AN-EMAIL-value"}}` + "\n"
	out, errOut, code = runCLIStdin(t, bad, append([]string{"record", "tokenize", "--policy", policy}, conn...)...)
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
			CertSAN string `json:"cert_san"`
		} `json:"credential"`
		Secret string `json:"secret"`
	}
	out := run("credential", "create", "--name", "acme-mtls", "--role", "vendor", "--vendor", "acme", "--cert-san", "acme.vendors.test", "-o", "json")
	if err := json.Unmarshal([]byte(out), &cred); err != nil || cred.Credential.CertSAN != "acme.vendors.test" || cred.Secret == "" {
		t.Fatalf("credential create --cert-san: %s (%v)", out, err)
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
		KeyID uint32 `json:"key_id"`
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

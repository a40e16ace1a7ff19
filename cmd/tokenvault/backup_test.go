package main

// Backup and restore with subject erasure.

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tokenvault/tokenvault/vault"
)

// TestBackupRestoreWithErasure: a backup taken before a subject erasure, restored into a new
// data directory with the KEK and the erasure log, comes back with the subject erased again;
// the erasure receipt verifies with the audit public key.
func TestBackupRestoreWithErasure(t *testing.T) {
	a := t.TempDir()
	srv := startServer(t, a)
	c := newHTTPClient()
	env := childEnv()
	flags := []string{"--addr", srv.grpcAddr, "--token", rootToken}

	items := []tokenizeItem{
		{Value: "4556737586899855", Template: "pan", Subject: "s1"},
		{Value: "one.s1@example.com", Template: "email", Domain: "acme", Subject: "s1"},
		{Value: "opaque value of s1", Template: "opaque", Subject: "s1"},
		{Value: "5555555555554444", Template: "pan", Subject: "s2"},
		{Value: "two.s2@example.com", Template: "email", Domain: "acme", Subject: "s2"},
		{Value: "opaque value of s2", Template: "opaque", Subject: "s2"},
		{Value: "no.subject@example.com", Template: "email"},
	}
	res, err := tokenize(c, srv.httpAddr, rootToken, items)
	if err != nil {
		t.Fatal(err)
	}
	var s1, rest []detokenizeItem
	var restValues []string
	var s1FPs []string
	for i, r := range res {
		if r.Error != nil {
			t.Fatalf("tokenizing %q: %+v", items[i].Value, r.Error)
		}
		d := detokenizeItem{Token: r.Token, Domain: items[i].Domain}
		if items[i].Subject == "s1" {
			s1 = append(s1, d)
			dom := items[i].Domain
			if dom == "" {
				dom = vault.DefaultDomain
			}
			s1FPs = append(s1FPs, vault.TokenFingerprint(dom, r.Token))
		} else {
			rest = append(rest, d)
			restValues = append(restValues, items[i].Value)
		}
	}
	s1Values := []string{items[0].Value, items[1].Value, items[2].Value}

	// expect checks that s1's tokens are erased (or, with s1Readable, still readable) and that
	// the others detokenize.
	expect := func(what, httpAddr string, s1Readable bool) {
		t.Helper()
		cl := newHTTPClient()
		defer cl.CloseIdleConnections()
		got, err := detokenize(cl, httpAddr, rootToken, append(append([]detokenizeItem{}, s1...), rest...))
		if err != nil {
			t.Fatalf("%s: detokenize: %v", what, err)
		}
		for i, r := range got[:len(s1)] {
			switch {
			case s1Readable && (r.Error != nil || r.Value != s1Values[i]):
				t.Errorf("%s: s1 token %d: %+v, want %q", what, i, r, s1Values[i])
			case !s1Readable && (r.Error == nil || r.Error.Code != "NOT_FOUND"):
				t.Errorf("%s: erased s1 token %d answered %+v, want NOT_FOUND", what, i, r)
			}
		}
		for i, r := range got[len(s1):] {
			if r.Error != nil || r.Value != restValues[i] {
				t.Errorf("%s: token of %q: %+v", what, restValues[i], r)
			}
		}
	}
	expect("before the backup", srv.httpAddr, true)
	// A console session, live in the backup and signed out after it.
	cookie := consoleSignIn(t, c, srv.httpAddr)

	backup := filepath.Join(t.TempDir(), "vault.backup")
	out, errOut, code := runCLI(t, env, append([]string{"backup", "--out", backup}, flags...)...)
	if code != 0 {
		t.Fatalf("backup: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Size() == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v %v", fi, err)
	}

	consoleSignOut(t, c, srv.httpAddr, cookie)
	out, errOut, code = runCLI(t, env, append([]string{"erase-subject", "s1"}, flags...)...)
	if code != 0 {
		t.Fatalf("erase-subject s1: exit %d\nstderr:\n%s", code, errOut)
	}
	var rc vault.Receipt
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &rc); err != nil {
		t.Fatalf("erase-subject printed no receipt JSON (%v):\n%s", err, out)
	}
	if rc.Kind != "subject" || rc.Subject == "" || rc.Signature == "" || rc.AuditSeq == 0 {
		t.Errorf("receipt %+v: want kind subject, a subject fingerprint, an audit seq and a signature", rc)
	}
	gotFPs, wantFPs := slices.Sorted(slices.Values(rc.Erased)), slices.Sorted(slices.Values(s1FPs))
	if !slices.Equal(gotFPs, wantFPs) {
		t.Errorf("receipt erased %v, want s1's token fingerprints %v", gotFPs, wantFPs)
	}
	code, data, err := httpDo(c, http.MethodGet, "http://"+srv.httpAddr+"/v1/audit/public-key", rootToken, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /v1/audit/public-key: %d %v %s", code, err, data)
	}
	var pk struct {
		PublicKeyset string `json:"publicKeyset"`
	}
	if err := json.Unmarshal(data, &pk); err != nil || pk.PublicKeyset == "" {
		t.Fatalf("GET /v1/audit/public-key: %v %s", err, data)
	}
	if err := vault.VerifyReceipt(rc, []byte(pk.PublicKeyset)); err != nil {
		t.Errorf("the erasure receipt does not verify with the audit public key: %v", err)
	}
	forged := rc
	forged.Erased = append([]string{}, rc.Erased[:max(len(rc.Erased)-1, 0)]...)
	if err := vault.VerifyReceipt(forged, []byte(pk.PublicKeyset)); err == nil {
		t.Errorf("a receipt with a fingerprint removed still verifies")
	}
	expect("after erase-subject s1", srv.httpAddr, false)
	srv.stopClean()
	c.CloseIdleConnections()
	if _, err := os.Stat(filepath.Join(a, "erasure.log")); err != nil {
		t.Fatalf("no erasure log in the data directory: %v", err)
	}

	restore := func(dst string) {
		t.Helper()
		out, errOut, code := runCLI(t, env, "restore", "--in", backup, "--data", dst)
		if code != 0 {
			t.Fatalf("restore --data %s: exit %d\nstdout:\n%s\nstderr:\n%s", dst, code, out, errOut)
		}
		copyFile(t, filepath.Join(a, "kek.json"), filepath.Join(dst, "kek.json"), 0o600)
	}

	// The premise: the backup predates the erasure (restored without the erasure log, s1's
	// originals are there).
	without := filepath.Join(t.TempDir(), "without-log")
	restore(without)
	srvC := startServer(t, without)
	expect("restored without the erasure log", srvC.httpAddr, true)
	if code := consoleSession(t, srvC.httpAddr, cookie); code != http.StatusUnauthorized {
		t.Errorf("a console session signed out after the backup: HTTP %d on the restored server, want 401", code)
	}
	srvC.stopClean()

	// Restored with the KEK and the erasure log: s1 is erased again at start.
	b := filepath.Join(t.TempDir(), "b")
	restore(b)
	copyFile(t, filepath.Join(a, "erasure.log"), filepath.Join(b, "erasure.log"), 0o600)
	if out, errOut, code := runCLI(t, env, "restore", "--in", backup, "--data", b); code == 0 {
		t.Errorf("restore into a directory that holds a store succeeded:\n%s%s", out, errOut)
	}
	srvB := startServer(t, b)
	expect("restored with the erasure log", srvB.httpAddr, false)
	srvB.stopClean()
	if !strings.Contains(srvB.stderr.String(), "re-applied erasures") {
		t.Errorf("the restored server did not log re-applying the erasure log:\n%s", srvB.stderr)
	}
	srvB.assertNoErrorLogs("restored server")
	checkStore(t, b)
}

// Issue 14: backup.md and erasure.md said that tokens removed with delete come back when an
// older backup is restored. They do not: delete appends each token to the erasure log, and a
// restored vault started with that log deletes them again. Only without the log (the premise:
// the backup predates the delete) does the deleted token come back.
func TestBackupRestoreKeepsDeletedTokensGone(t *testing.T) {
	a := t.TempDir()
	srv := startServer(t, a)
	env := childEnv("TOKENVAULT_TOKEN=" + rootToken)
	cli := func(addr string, args ...string) (string, string, int) {
		t.Helper()
		return runCLI(t, env, append(args, "--addr", addr)...)
	}
	const gone, kept = "4556737586899855", "5555555555554444"
	out, errOut, code := cli(srv.grpcAddr, "tokenize", "--template", "pan", "--domain", "acme", gone, kept)
	toks := strings.Fields(out)
	if code != 0 || len(toks) != 2 {
		t.Fatalf("tokenize: exit %d %q %s", code, out, errOut)
	}
	backup := filepath.Join(t.TempDir(), "vault.backup")
	if _, errOut, code := cli(srv.grpcAddr, "backup", "--out", backup); code != 0 {
		t.Fatalf("backup: exit %d %s", code, errOut)
	}
	if _, errOut, code := cli(srv.grpcAddr, "delete", "--domain", "acme", toks[0]); code != 0 {
		t.Fatalf("delete: exit %d %s", code, errOut)
	}
	srv.stopClean()
	logPath := filepath.Join(a, "erasure.log")
	if b, err := os.ReadFile(logPath); err != nil || !strings.Contains(string(b), toks[0]) || strings.Contains(string(b), gone) {
		t.Fatalf("the erasure log does not name the deleted token (or holds its value): %v\n%s", err, b)
	}

	// detokenize checks what a restored vault answers for both tokens.
	detokenize := func(what, addr string, goneReadable bool) {
		t.Helper()
		out, errOut, code := cli(addr, "detokenize", "--domain", "acme", toks[0], toks[1])
		lines := strings.Split(out, "\n")
		switch {
		case len(lines) < 2 || lines[1] != kept:
			t.Errorf("%s: the kept token answered %q (%s)", what, out, errOut)
		case goneReadable && (code != 0 || lines[0] != gone):
			t.Errorf("%s: the deleted token answered %q, exit %d (%s); want its value", what, lines[0], code, errOut)
		case !goneReadable && (code != exitPartialItem || lines[0] != "" || !strings.Contains(errOut, "item 1: NOT_FOUND")):
			t.Errorf("%s: the deleted token answered %q, exit %d (%s); want NOT_FOUND", what, lines[0], code, errOut)
		}
	}
	restore := func(extra ...string) *proc {
		t.Helper()
		dst := filepath.Join(t.TempDir(), "restored")
		if out, errOut, code := runCLI(t, env, append([]string{"restore", "--in", backup, "--data", dst}, extra...)...); code != 0 {
			t.Fatalf("restore %v: exit %d\n%s%s", extra, code, out, errOut)
		}
		copyFile(t, filepath.Join(a, "kek.json"), filepath.Join(dst, "kek.json"), 0o600)
		return startServer(t, dst)
	}
	// The premise: the backup predates the delete.
	without := restore()
	detokenize("restored without the erasure log", without.grpcAddr, true)
	without.stopClean()
	// With the erasure log, the delete is re-applied at start and the token stays gone.
	with := restore("--erasure-log", logPath)
	detokenize("restored with the erasure log", with.grpcAddr, false)
	with.stopClean()
	if !regexp.MustCompile(`re-applied erasures from the erasure log.*"tokens":1`).MatchString(with.stderr.String()) {
		t.Errorf("the restored server did not log re-applying one deleted token:\n%s", with.stderr)
	}
	with.assertNoErrorLogs("restored server")
}

// consoleSignIn signs in to the web console with the root token and returns the session cookie.
func consoleSignIn(t *testing.T, c *http.Client, httpAddr string) *http.Cookie {
	t.Helper()
	resp, err := c.Post("http://"+httpAddr+"/ui/api/login", "application/json", strings.NewReader(`{"secret":"`+rootToken+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "tv_session" && resp.StatusCode == http.StatusOK {
			return ck
		}
	}
	t.Fatalf("console sign-in: HTTP %d, no session cookie", resp.StatusCode)
	return nil
}

// consoleSession answers GET /ui/api/session with cookie: 200 while the session lives.
func consoleSession(t *testing.T, httpAddr string, cookie *http.Cookie) int {
	t.Helper()
	c := newHTTPClient()
	defer c.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/ui/api/session", nil)
	req.AddCookie(cookie)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// consoleSignOut ends the session of cookie (its CSRF token from the session API).
func consoleSignOut(t *testing.T, c *http.Client, httpAddr string, cookie *http.Cookie) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+httpAddr+"/ui/api/session", nil)
	req.AddCookie(cookie)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var sess struct {
		CSRFToken string `json:"csrfToken"`
	}
	err = json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	if err != nil || sess.CSRFToken == "" {
		t.Fatalf("console session: HTTP %d, %v", resp.StatusCode, err)
	}
	req, _ = http.NewRequest(http.MethodPost, "http://"+httpAddr+"/ui/api/logout", strings.NewReader("{}"))
	req.AddCookie(cookie)
	req.Header.Set("X-CSRF-Token", sess.CSRFToken)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("console sign-out: HTTP %d", resp.StatusCode)
	}
	if code := consoleSession(t, httpAddr, cookie); code != http.StatusUnauthorized {
		t.Fatalf("after sign-out: HTTP %d, want 401", code)
	}
}

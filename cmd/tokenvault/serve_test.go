package main

// serve: dev mode without --data, no PII in the logs, sealed while the KEK is missing.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// TestDevWithoutDataUsesTempDir: `serve --dev` without --data works in a fresh temporary
// directory, prints a root token, and removes the directory on SIGTERM.
func TestDevWithoutDataUsesTempDir(t *testing.T) {
	tmp := t.TempDir()
	srv := startProcess(t, childEnv("TMPDIR="+tmp), serveArgs()...)
	out := srv.stdout.String()
	dm := regexp.MustCompile(`(?m)^\s*data:\s+(\S+)\s*$`).FindStringSubmatch(out)
	tm := regexp.MustCompile(`(?m)^\s*root token:\s+(\S+)\s*$`).FindStringSubmatch(out)
	if dm == nil || tm == nil {
		t.Fatalf("serve --dev did not print its data directory and root token:\n%s", out)
	}
	dir, token := dm[1], tm[1]
	if !strings.HasPrefix(dir, tmp+string(filepath.Separator)) {
		t.Errorf("data directory %s is not under TMPDIR %s", dir, tmp)
	}
	if _, err := os.Stat(filepath.Join(dir, store.FileName)); err != nil {
		t.Errorf("data directory while serving: %v", err)
	}
	c := newHTTPClient()
	res, err := tokenize(c, srv.httpAddr, token, []tokenizeItem{{Value: "4111111111111111", Template: "pan"}})
	if err != nil || res[0].Error != nil {
		t.Fatalf("tokenize with the printed root token: %v %+v", err, res)
	}
	if _, err := tokenize(c, srv.httpAddr, token+"x", []tokenizeItem{{Value: "4111111111111111", Template: "pan"}}); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("tokenize with another token: %v, want HTTP 401", err)
	}
	srv.stopClean()
	c.CloseIdleConnections()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temporary data directory %s still there after SIGTERM (stat: %v)", dir, err)
	}
}

// TestNoPIIInLogs: through success and error paths, with debug logging, no value, token or
// secret reaches the server's logs.
func TestNoPIIInLogs(t *testing.T) {
	const secretRoot = "root-TOPSECRET-e2e-7f3a9c"
	dir := t.TempDir()
	srv := startProcess(t, childEnv(), append(serveArgs(), "--data", dir, "--dev-root-token", secretRoot, "--log-level", "debug")...)
	c := newHTTPClient()
	base := "http://" + srv.httpAddr
	secrets := []string{secretRoot}
	post := func(path, secret, body string) (int, string) {
		t.Helper()
		code, data, err := httpDo(c, http.MethodPost, base+path, secret, []byte(body))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		return code, string(data)
	}
	mustJSON := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// Successful tokenize and detokenize.
	good := []tokenizeItem{
		{Value: "4556737586899855", Template: "pan", Domain: "acme", Subject: "subject-PLUGH-4711"},
		{Value: "zanzibar.quixote.e2e@example.org", Template: "email"},
		{Value: "opaque-XYZZY-secret-31337", Template: "opaque"},
		{Value: "078-05-1120", Template: "ssn"},
		{Value: "+1 415 555 0199", Template: "phone"},
	}
	for _, it := range good {
		secrets = append(secrets, it.Value)
		if it.Subject != "" {
			secrets = append(secrets, it.Subject)
		}
	}
	res, err := tokenize(c, srv.httpAddr, secretRoot, good)
	if err != nil {
		t.Fatal(err)
	}
	panTok := res[0].Token
	var ditems []detokenizeItem
	for i, r := range res {
		if r.Error != nil {
			t.Fatalf("tokenizing %s: %+v", good[i].Template, r.Error)
		}
		secrets = append(secrets, r.Token)
		ditems = append(ditems, detokenizeItem{Token: r.Token, Domain: good[i].Domain})
	}
	// Plus unknown tokens, a wrong domain and a wrong template.
	ditems = append(ditems,
		detokenizeItem{Token: "tok_NOSUCHTOKENe2eQwErTy12"},
		detokenizeItem{Token: res[0].Token, Domain: "globex"},
		detokenizeItem{Token: res[0].Token, Domain: "acme", Template: "ssn"})
	secrets = append(secrets, "tok_NOSUCHTOKENe2eQwErTy12")
	if _, err := detokenize(c, srv.httpAddr, secretRoot, ditems); err != nil {
		t.Fatal(err)
	}

	// Error paths.
	badValues := []tokenizeItem{
		{Value: "4111-BADPAN-FROBOZZ-99", Template: "pan"},
		{Value: "not-an-email-GRUE-2025", Template: "email"},
		{Value: "ssn-ZORKMID-000", Template: "ssn"},
	}
	for _, it := range badValues {
		secrets = append(secrets, it.Value)
	}
	res, err = tokenize(c, srv.httpAddr, secretRoot, badValues)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Error == nil {
			t.Errorf("bad value %d was accepted", i)
		}
	}
	cases := []struct{ name, path, secret, body, secretIn string }{
		{"unknown template", "/v1/tokens:tokenize", secretRoot, mustJSON(map[string]any{"items": []tokenizeItem{{Value: "UNKNOWNTMPL-secret-8675309", Template: "nosuchtemplate"}}}), "UNKNOWNTMPL-secret-8675309"},
		{"malformed JSON", "/v1/tokens:tokenize", secretRoot, `{"items":[{"value":"MALFORMED-secret-24601","template":"pan"`, "MALFORMED-secret-24601"},
		{"wrong type", "/v1/tokens:tokenize", secretRoot, `{"items":[{"value":["WRONGTYPE-secret-1138"],"template":"pan"}]}`, "WRONGTYPE-secret-1138"},
		{"unknown field", "/v1/tokens:tokenize", secretRoot, `{"items":[{"value":"4111111111111111","template":"pan","UNKNOWNFIELD-secret-42":"x"}]}`, "UNKNOWNFIELD-secret-42"},
		{"invalid UTF-8", "/v1/tokens:tokenize", secretRoot, "{\"items\":[{\"value\":\"BADUTF8-secret-\xff\xfe-777\",\"template\":\"pan\"}]}", "BADUTF8-secret-"},
		{"bad domain", "/v1/tokens:tokenize", secretRoot, mustJSON(map[string]any{"items": []tokenizeItem{{Value: "BADDOMAIN-secret-5150", Template: "pan", Domain: "Not A Domain"}}}), "BADDOMAIN-secret-5150"},
		{"oversized value", "/v1/tokens:tokenize", secretRoot, mustJSON(map[string]any{"items": []tokenizeItem{{Value: "OVERSIZED-secret-" + strings.Repeat("q", 70000), Template: "opaque"}}}), "OVERSIZED-secret-"},
		{"wrong credentials", "/v1/tokens:tokenize", "WRONGCRED-secret-424242", mustJSON(map[string]any{"items": []tokenizeItem{{Value: "WRONGCREDVAL-secret-9001", Template: "pan"}}}), "WRONGCRED-secret-424242"},
		{"no credentials", "/v1/tokens:tokenize", "", mustJSON(map[string]any{"items": []tokenizeItem{{Value: "NOCRED-secret-6502", Template: "pan"}}}), "NOCRED-secret-6502"},
		{"detokenize wrong credentials", "/v1/tokens:detokenize", "WRONGCRED2-secret-808", mustJSON(map[string]any{"items": []detokenizeItem{{Token: panTok}}}), "WRONGCRED2-secret-808"},
		{"detokenize malformed", "/v1/tokens:detokenize", secretRoot, `{"items":[{"token":"DETOKMALFORMED-secret-2112"`, "DETOKMALFORMED-secret-2112"},
	}
	for _, tc := range cases {
		secrets = append(secrets, tc.secretIn)
		code, body := post(tc.path, tc.secret, tc.body)
		if code == http.StatusOK || code >= 500 {
			t.Errorf("%s: HTTP %d, want a 4xx: %s", tc.name, code, body)
		}
		if strings.Contains(body, tc.secretIn) {
			t.Errorf("%s: the response echoes request data: %s", tc.name, body)
		}
	}
	// The gRPC path, through the CLI.
	if _, _, code := runCLI(t, childEnv(), "tokenize", "--addr", srv.grpcAddr, "--token", secretRoot, "--template", "email", "cli.value.e2e-HUNTER2@example.net"); code != 0 {
		t.Errorf("CLI tokenize failed")
	}
	if _, _, code := runCLI(t, childEnv(), "tokenize", "--addr", srv.grpcAddr, "--token", "CLIWRONG-secret-1701", "--template", "pan", "4111111111111111"); code == 0 {
		t.Errorf("CLI tokenize with a wrong token succeeded")
	}
	secrets = append(secrets, "cli.value.e2e-HUNTER2@example.net", "CLIWRONG-secret-1701")

	srv.stopClean()
	logs := srv.stderr.String()
	if !strings.Contains(logs, `"msg":"request"`) || !strings.Contains(logs, `"level":"DEBUG"`) {
		t.Fatalf("the debug request logs were not captured:\n%s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("stderr contains a value, token or secret: %q", s)
		}
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", logs)
	}
}

// initStore runs `tokenvault init --data dir --kek-file kekPath -o json` and returns the root
// token it prints.
func initStore(t *testing.T, dir, kekPath string) string {
	t.Helper()
	out, errOut, code := runCLI(t, childEnv(), "init", "--data", dir, "--kek-file", kekPath, "-o", "json")
	if code != 0 {
		t.Fatalf("init exited %d: %s", code, errOut)
	}
	var r struct {
		RootToken string `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.RootToken == "" {
		t.Fatalf("init -o json printed %q (%v)", out, err)
	}
	return r.RootToken
}

// TestSealedUntilKEKReturns: a non-dev server whose KEK file is missing or wrong starts
// sealed (health 503, calls Unavailable), keeps running, and unseals by itself once the right
// KEK is back.
func TestSealedUntilKEKReturns(t *testing.T) {
	dir := t.TempDir()
	kekDir := t.TempDir()
	kekPath := filepath.Join(kekDir, "kek.json")
	args := []string{"serve", "--data", dir, "--kek-file", kekPath,
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--vendor-addr", "127.0.0.1:0"}
	const value = "4556737586899855"

	// A new vault: init prints its root secret once, and makes the KEK file.
	secret := initStore(t, dir, kekPath)
	if _, err := os.Stat(kekPath); err != nil {
		t.Fatalf("the KEK file was not created: %v", err)
	}
	srv := startProcess(t, childEnv(), args...)
	c := newHTTPClient()
	res, err := tokenize(c, srv.httpAddr, secret, []tokenizeItem{{Value: value, Template: "pan"}})
	if err != nil || res[0].Error != nil {
		t.Fatalf("tokenize: %v %+v", err, res)
	}
	token := res[0].Token
	srv.stopClean()
	c.CloseIdleConnections()

	// checkSealed starts the server and checks that it is sealed and stays up through at least
	// one failed retry.
	checkSealed := func(what string) (*proc, *http.Client) {
		t.Helper()
		srv := startProcess(t, childEnv(), args...)
		c := newHTTPClient()
		assertNoSecretShaped(t, what+": stdout", srv.stdout.String())
		if code := healthCode(c, srv.httpAddr, "/healthz"); code != http.StatusServiceUnavailable {
			t.Errorf("%s: GET /healthz = %d, want 503", what, code)
		}
		if code := healthCode(c, srv.vendorAddr, "/healthz"); code != http.StatusServiceUnavailable {
			t.Errorf("%s: vendor GET /healthz = %d, want 503", what, code)
		}
		if code := healthCode(c, srv.httpAddr, "/livez"); code != http.StatusOK {
			t.Errorf("%s: GET /livez = %d, want 200 (the process is alive)", what, code)
		}
		body, _ := json.Marshal(map[string]any{"items": []tokenizeItem{{Value: value, Template: "pan"}}})
		code, data, err := httpDo(c, http.MethodPost, "http://"+srv.httpAddr+"/v1/tokens:tokenize", secret, body)
		if err != nil {
			t.Fatalf("%s: tokenize: %v", what, err)
		}
		var e struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		if code != http.StatusServiceUnavailable || e.Code != 14 || !strings.Contains(e.Message, "sealed") {
			t.Errorf("%s: tokenize answered HTTP %d %s; want 503, code 14 (UNAVAILABLE), a message saying sealed", what, code, data)
		}
		// The first retry comes after a second; the process must still be there after it.
		if !waitFor(30*time.Second, 50*time.Millisecond, func() bool {
			return strings.Contains(srv.stderr.String(), `"msg":"still sealed"`) || srv.exited()
		}) {
			t.Errorf("%s: no \"still sealed\" retry logged within 30s\nstderr:\n%s", what, srv.stderr)
		}
		if srv.exited() {
			t.Fatalf("%s: the sealed server exited (%v)\nstderr:\n%s", what, srv.waitErr, srv.stderr)
		}
		if code := healthCode(c, srv.httpAddr, "/healthz"); code != http.StatusServiceUnavailable {
			t.Errorf("%s: after a retry GET /healthz = %d, want 503", what, code)
		}
		return srv, c
	}
	// waitUnsealed waits for /healthz 200, then checks the earlier token and stops the server.
	waitUnsealed := func(what string, srv *proc, c *http.Client) {
		t.Helper()
		began := time.Now()
		if !waitFor(60*time.Second, 100*time.Millisecond, func() bool {
			return srv.exited() || healthCode(c, srv.httpAddr, "/healthz") == http.StatusOK
		}) || srv.exited() {
			t.Fatalf("%s: the server did not unseal within 60s of the KEK's return (exited: %v)\nstderr:\n%s", what, srv.exited(), srv.stderr)
		}
		t.Logf("%s: unsealed %v after the KEK came back", what, time.Since(began).Round(time.Millisecond))
		got, err := detokenize(c, srv.httpAddr, secret, []detokenizeItem{{Token: token}})
		if err != nil || got[0].Error != nil || got[0].Value != value {
			t.Errorf("%s: detokenize after unsealing: %v %+v", what, err, got)
		}
		if !strings.Contains(srv.stderr.String(), `"msg":"unsealed`) {
			t.Errorf("%s: no \"unsealed\" log line:\n%s", what, srv.stderr)
		}
		srv.stopClean()
		c.CloseIdleConnections()
	}

	// The KEK file is missing.
	away := filepath.Join(kekDir, "kek.json.away")
	if err := os.Rename(kekPath, away); err != nil {
		t.Fatal(err)
	}
	srv, c = checkSealed("KEK missing")
	if err := os.Rename(away, kekPath); err != nil {
		t.Fatal(err)
	}
	waitUnsealed("KEK missing", srv, c)

	// A wrong KEK: a valid keyset, from another (dev) vault.
	otherDir := t.TempDir()
	other := startServer(t, otherDir)
	other.stopClean()
	if err := os.Rename(kekPath, away); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(otherDir, "kek.json"), kekPath, 0o600)
	srv, c = checkSealed("wrong KEK")
	if err := os.Rename(away, kekPath); err != nil {
		t.Fatal(err)
	}
	waitUnsealed("wrong KEK", srv, c)
	checkStore(t, dir)
}

// Issue 14: a second dev server printed the whole banner, root token included, then failed on
// the busy port. It now binds first: it fails without printing a secret, and the error names
// the flag that moves the busy listener.
func TestSecondDevServerPrintsNoSecret(t *testing.T) {
	first := startServer(t, t.TempDir())
	defer first.stopClean()
	for _, c := range []struct{ flag, addr string }{
		{"--grpc-addr", first.grpcAddr}, {"--http-addr", first.httpAddr}, {"--vendor-addr", first.vendorAddr},
	} {
		stdout, stderr := serveMustRefuseOut(t, append(serveArgs(), c.flag, c.addr)...)
		if strings.Contains(stdout, "root token") || strings.Contains(stdout+stderr, "tvs_") {
			t.Errorf("%s busy: a secret was printed:\n%s\n%s", c.flag, stdout, stderr)
		}
		if !strings.Contains(stderr, "another process") || !strings.Contains(stderr, "another address with "+c.flag) {
			t.Errorf("%s busy: the error does not say what to do:\n%s", c.flag, stderr)
		}
	}
}

// Issue 14: a dev server started by `go run` kept running after go run was killed (go run
// does not pass signals on). On Linux a dev server now stops when the process that launched it
// dies; here the launcher is a shell killed with SIGKILL.
func TestDevServerStopsWithItsLauncher(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("PR_SET_PDEATHSIG is Linux-only")
	}
	launcher := exec.Command("bash", "-c", `"$0" serve --dev --grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --vendor-addr 127.0.0.1:0 & echo "pid=$!"; wait`, binPath)
	launcher.Env = childEnv()
	out, err := launcher.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := launcher.Start(); err != nil {
		t.Fatal(err)
	}
	pid := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if _, err := fmt.Sscanf(sc.Text(), "pid=%d", &pid); err == nil {
			continue
		}
		if strings.HasPrefix(sc.Text(), "listening:") {
			break
		}
	}
	if pid == 0 {
		t.Fatal("the launcher did not report the server's pid")
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	go io.Copy(io.Discard, out)
	if err := launcher.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = launcher.Wait()
	alive := func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return false
		}
		// Past the command name in parentheses: the state; a zombie has exited.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		return len(f) > 0 && f[0] != "Z"
	}
	if !waitFor(exitTimeout, 50*time.Millisecond, func() bool { return !alive() }) {
		t.Fatalf("the dev server (pid %d) outlived its launcher", pid)
	}
}

package main

// Security issue 11, item 5: the root credential could be neither rotated nor recovered, and a
// production `serve` printed the root token on stdout on its first start. These tests run the
// binary: `init`, production `serve` on a fresh directory, `credential rotate` (online, and
// offline for the root as break glass).

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/crypto/insecurekek"
	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/store"
)

// secretShapedRE matches anything that looks like a tokenvault secret.
var secretShapedRE = regexp.MustCompile(`tvs_[A-Za-z0-9_-]{8,}`)

// prodServeArgs are the arguments of a production (non-dev) server on ephemeral ports.
func prodServeArgs(data, kekPath string) []string {
	return []string{"serve", "--data", data, "--kek-file", kekPath,
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--vendor-addr", "127.0.0.1:0"}
}

// assertNoSecretShaped fails the test if out holds anything secret-shaped.
func assertNoSecretShaped(t *testing.T, what, out string) {
	t.Helper()
	if m := secretShapedRE.FindString(out); m != "" {
		t.Errorf("%s holds a secret-shaped string (%d bytes, prefix tvs_):\n%s", what, len(m), strings.ReplaceAll(out, m, "tvs_<REDACTED>"))
	}
}

// tokenizeCode tokenizes one card number with secret and returns the HTTP status.
func tokenizeCode(t *testing.T, c *http.Client, httpAddr, secret string) int {
	t.Helper()
	code, _, err := httpDo(c, http.MethodPost, "http://"+httpAddr+"/v1/tokens:tokenize", secret,
		[]byte(`{"items":[{"value":"4111111111111111","template":"pan"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// TestProductionServeNeedsInit: a production serve on a fresh directory refuses to start,
// names `tokenvault init`, and prints nothing secret-shaped on stdout or stderr. `init` prints
// the root token once (JSON with -o json), refuses a second time, and the server then starts
// without printing any secret.
func TestProductionServeNeedsInit(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	kekPath := filepath.Join(t.TempDir(), "kek.json")

	stdout, stderr := serveMustRefuseOut(t, prodServeArgs(data, kekPath)...)
	assertNoSecretShaped(t, "stdout of serve on a fresh directory", stdout)
	assertNoSecretShaped(t, "stderr of serve on a fresh directory", stderr)
	if !strings.Contains(stderr, "tokenvault init --data "+data) {
		t.Errorf("the refusal does not name `tokenvault init --data %s`:\n%s", data, stderr)
	}
	if _, err := os.Stat(kekPath); !os.IsNotExist(err) {
		t.Errorf("serve on an uninitialised store created a KEK file (stat: %v)", err)
	}

	out, errOut, code := runCLI(t, childEnv(), "init", "--data", data, "--kek-file", kekPath, "-o", "json")
	if code != 0 {
		t.Fatalf("init exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	var got struct {
		RootToken string `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || !strings.HasPrefix(got.RootToken, "tvs_") {
		t.Fatalf("init -o json printed %q (%v), want {\"root_token\": \"tvs_…\"}", out, err)
	}
	root := got.RootToken
	if info, err := os.Stat(kekPath); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("init's KEK file: %v, mode %v; want 0600", err, info)
	}

	out2, errOut2, code := runCLI(t, childEnv(), "init", "--data", data, "--kek-file", kekPath)
	if code == 0 {
		t.Errorf("a second init exited 0\nstdout:\n%s", out2)
	}
	if !strings.Contains(errOut2, "already initialised") {
		t.Errorf("a second init does not say the store is already initialised:\n%s", errOut2)
	}
	assertNoSecretShaped(t, "stdout of a second init", out2)

	srv := startProcess(t, childEnv(), prodServeArgs(data, kekPath)...)
	c := newHTTPClient()
	if code := tokenizeCode(t, c, srv.httpAddr, root); code != http.StatusOK {
		t.Errorf("tokenize with init's root token: HTTP %d", code)
	}
	srv.stopClean()
	c.CloseIdleConnections()
	assertNoSecretShaped(t, "stdout of production serve", srv.stdout.String())
	assertNoSecretShaped(t, "stderr of production serve", srv.stderr.String())

	// Text output names the token plainly, once.
	other := t.TempDir()
	out, _, code = runCLI(t, childEnv(), "init", "--data", other, "--kek-file", filepath.Join(other, "kek.json"))
	if code != 0 || len(secretShapedRE.FindAllString(out, -1)) != 1 {
		t.Errorf("init (text) exited %d and printed:\n%s\nwant the root token once", code, out)
	}
}

// TestCredentialRotate: `credential rotate ID [--overlap D]` against a running server.
func TestCredentialRotate(t *testing.T) {
	srv := startServer(t, t.TempDir())
	c := newHTTPClient()
	defer c.CloseIdleConnections()
	cli := func(args ...string) (string, string, int) {
		t.Helper()
		return runCLI(t, childEnv(), append(args, "--addr", srv.grpcAddr, "--token", rootToken)...)
	}
	type rotated struct {
		Credential struct {
			ID                 string `json:"id"`
			PreviousExpireTime string `json:"previousExpireTime"`
		} `json:"credential"`
		Secret             string `json:"secret"`
		PreviousExpireTime string `json:"previousExpireTime"`
	}
	rotate := func(args ...string) rotated {
		t.Helper()
		out, errOut, code := cli(append([]string{"credential", "rotate"}, append(args, "-o", "json")...)...)
		if code != 0 {
			t.Fatalf("credential rotate %v exited %d: %s", args, code, errOut)
		}
		var r rotated
		if err := json.Unmarshal([]byte(out), &r); err != nil || r.Secret == "" {
			t.Fatalf("credential rotate %v -o json printed %q (%v)", args, out, err)
		}
		return r
	}

	out, errOut, code := cli("credential", "create", "--name", "app", "--role", "tokenizer", "-o", "json")
	if code != 0 {
		t.Fatalf("credential create: %s", errOut)
	}
	var created struct {
		Credential struct{ ID string } `json:"credential"`
		Secret     string              `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatal(err)
	}
	id, first := created.Credential.ID, created.Secret

	// An overlap: both secrets work until it ends.
	r := rotate(id, "--overlap", "1h")
	second := r.Secret
	if second == first || !strings.HasPrefix(second, "tvs_") {
		t.Fatalf("rotate gave secret %q", second)
	}
	if exp, err := time.Parse(time.RFC3339Nano, r.PreviousExpireTime); err != nil || time.Until(exp) < 59*time.Minute || time.Until(exp) > 61*time.Minute {
		t.Errorf("previous_expire_time = %q (%v), want about an hour from now", r.PreviousExpireTime, err)
	}
	for name, s := range map[string]string{"old secret during the overlap": first, "new secret": second} {
		if code := tokenizeCode(t, c, srv.httpAddr, s); code != http.StatusOK {
			t.Errorf("%s: HTTP %d, want 200", name, code)
		}
	}
	// Rotating again without overlap: every earlier secret is dead at once.
	third := rotate(id).Secret
	for name, s := range map[string]string{"first secret": first, "second secret": second} {
		if code := tokenizeCode(t, c, srv.httpAddr, s); code != http.StatusUnauthorized {
			t.Errorf("%s after a rotation without overlap: HTTP %d, want 401", name, code)
		}
	}
	if code := tokenizeCode(t, c, srv.httpAddr, third); code != http.StatusOK {
		t.Errorf("newest secret: HTTP %d, want 200", code)
	}

	// Refusals.
	refused := func(why string, want string, args ...string) {
		t.Helper()
		out, errOut, code := cli(append([]string{"credential", "rotate"}, args...)...)
		if code == 0 {
			t.Errorf("%s: rotate %v exited 0: %s", why, args, out)
		}
		if !strings.Contains(errOut, want) {
			t.Errorf("%s: rotate %v said %q, want it to mention %q", why, args, errOut, want)
		}
		assertNoSecretShaped(t, why+": stdout", out)
	}
	refused("root with an overlap", "overlap", "root", "--overlap", "1m")
	refused("overlap over 30 days", "30 days", id, "--overlap", "721h")
	refused("negative overlap", "overlap", id, "--overlap", "-1s")
	refused("unknown credential", "NotFound", "cred_0000000000000000")
	if _, errOut, code := cli("credential", "create", "--name", "gone", "--role", "auditor", "-o", "json"); code != 0 {
		t.Fatal(errOut)
	} else {
		_ = errOut
	}
	out, _, _ = cli("credential", "list", "-o", "json")
	var list struct {
		Credentials []struct{ ID, Name string } `json:"credentials"`
	}
	_ = json.Unmarshal([]byte(out), &list)
	gone := ""
	for _, cr := range list.Credentials {
		if cr.Name == "gone" {
			gone = cr.ID
		}
	}
	if _, errOut, code := cli("credential", "revoke", gone); code != 0 {
		t.Fatalf("revoke: %s", errOut)
	}
	refused("revoked credential", "revoked", gone)
	out, errOut, code = cli("credential", "create", "--name", "mtls", "--role", "vendor", "--vendor", "acme", "--cert-san", "vendor.example.com", "-o", "json")
	if code != 0 {
		t.Fatal(errOut)
	}
	var mtls struct {
		Credential struct{ ID string } `json:"credential"`
	}
	_ = json.Unmarshal([]byte(out), &mtls)
	refused("certificate-bound vendor credential", "certificate", mtls.Credential.ID)

	// The root: a new secret, and the old one dead at once.
	newRoot := rotate("root").Secret
	if code := tokenizeCode(t, c, srv.httpAddr, rootToken); code != http.StatusUnauthorized {
		t.Errorf("old root token after rotate root: HTTP %d, want 401", code)
	}
	if code := tokenizeCode(t, c, srv.httpAddr, newRoot); code != http.StatusOK {
		t.Errorf("new root token: HTTP %d, want 200", code)
	}

	// Audited with the credential id as target, never the secret.
	audit, errOut, code := runCLI(t, childEnv(), "audit", "list", "--all", "--addr", srv.grpcAddr, "--token", newRoot)
	if code != 0 {
		t.Fatalf("audit list: %s", errOut)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(audit), "\n") {
		if strings.Contains(line, "RotateCredential") {
			n++
		}
	}
	if n != 3 || !strings.Contains(audit, `"target":"root"`) || !strings.Contains(audit, `"target":"`+id+`"`) {
		t.Errorf("want 3 audited rotations with their credential ids as targets, got %d:\n%s", n, audit)
	}
	for _, s := range []string{first, second, third, newRoot} {
		if strings.Contains(audit, s) {
			t.Errorf("the audit trail holds a secret")
		}
	}
	srv.stopClean()
	assertNoSecretShaped(t, "server stderr", srv.stderr.String())
}

// initProductionStore initialises a production vault in a new directory (through the vault
// package, as a first production start did) and returns the directory, the KEK path and the
// root secret.
func initProductionStore(t *testing.T) (data, kekPath, root string) {
	t.Helper()
	st, v, data, kekPath := openKeyedStore(t)
	defer st.Close()
	var err error
	if root, err = v.InitRoot(context.Background()); err != nil || root == "" {
		t.Fatalf("InitRoot = %q, %v", root, err)
	}
	return data, kekPath, root
}

// openKeyedStore creates a store in a new directory with its keysets (a new KEK beside it) but
// no root credential yet, as the first half of an init does.
func openKeyedStore(t *testing.T) (st *store.Bolt, v *vault.Vault, data, kekPath string) {
	t.Helper()
	data, kekPath = t.TempDir(), filepath.Join(t.TempDir(), "kek.json")
	kek, _, err := insecurekek.LoadOrCreate(kekPath)
	if err != nil {
		t.Fatal(err)
	}
	if st, err = store.Open(filepath.Join(data, store.FileName), store.Options{}); err != nil {
		t.Fatal(err)
	}
	if v, err = vault.Open(context.Background(), vault.Config{Store: st, KEK: kek}); err != nil {
		st.Close()
		t.Fatal(err)
	}
	return st, v, data, kekPath
}

// TestBreakGlassRotateRoot: with the server stopped, `credential rotate root --data DIR
// --kek-file FILE` sets a new root secret, prints it once, and audits the event; while a server
// runs on DIR it fails clearly.
func TestBreakGlassRotateRoot(t *testing.T) {
	data, kekPath, lost := initProductionStore(t)
	breakGlass := func(extra ...string) (string, string, int) {
		t.Helper()
		return runCLI(t, childEnv(), append([]string{"credential", "rotate", "root", "--data", data, "--kek-file", kekPath}, extra...)...)
	}

	srv := startProcess(t, childEnv(), prodServeArgs(data, kekPath)...)
	out, errOut, code := breakGlass()
	if code == 0 || !strings.Contains(errOut, "in use") || !strings.Contains(errOut, "stop") {
		t.Errorf("break glass while the server runs: exit %d, stderr %q; want a refusal saying the directory is in use and to stop the server", code, errOut)
	}
	assertNoSecretShaped(t, "stdout of a refused break glass", out)
	srv.stopClean()

	if _, errOut, code := breakGlass("--overlap", "1h"); code == 0 || !strings.Contains(errOut, "overlap") {
		t.Errorf("break glass with an overlap: exit %d, %q; want a refusal", code, errOut)
	}
	if _, errOut, code := runCLI(t, childEnv(), "credential", "rotate", "cred_1234", "--data", data, "--kek-file", kekPath); code == 0 || !strings.Contains(errOut, "root") {
		t.Errorf("offline rotation of another credential: exit %d, %q; want a refusal naming the root", code, errOut)
	}
	if _, errOut, code := runCLI(t, childEnv(), "credential", "rotate", "root", "--data", t.TempDir(), "--kek-file", kekPath); code == 0 || !strings.Contains(errOut, "tokenvault init") {
		t.Errorf("break glass on an uninitialised store: exit %d, %q; want a refusal naming tokenvault init", code, errOut)
	}

	out, errOut, code = breakGlass("-o", "json")
	if code != 0 {
		t.Fatalf("break glass exited %d: %s", code, errOut)
	}
	var r struct {
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || !strings.HasPrefix(r.Secret, "tvs_") || len(secretShapedRE.FindAllString(out, -1)) != 1 {
		t.Fatalf("break glass -o json printed %q (%v)", out, err)
	}
	assertNoSecretShaped(t, "stderr of break glass", errOut)

	srv = startProcess(t, childEnv(), prodServeArgs(data, kekPath)...)
	c := newHTTPClient()
	defer c.CloseIdleConnections()
	if code := tokenizeCode(t, c, srv.httpAddr, lost); code != http.StatusUnauthorized {
		t.Errorf("the lost root token after break glass: HTTP %d, want 401", code)
	}
	if code := tokenizeCode(t, c, srv.httpAddr, r.Secret); code != http.StatusOK {
		t.Errorf("the new root token: HTTP %d, want 200", code)
	}
	audit, errOut, code := runCLI(t, childEnv(), "audit", "list", "--all", "--addr", srv.grpcAddr, "--token", r.Secret)
	if code != 0 {
		t.Fatalf("audit list: %s", errOut)
	}
	if !regexp.MustCompile(`"credential_id":"break-glass \(offline\)".*"target":"root"`).MatchString(audit) {
		t.Errorf("no audit event by break-glass (offline) with target root:\n%s", audit)
	}
	if strings.Contains(audit, r.Secret) || strings.Contains(audit, lost) {
		t.Errorf("the audit trail holds a root secret")
	}
	srv.stopClean()
	checkStore(t, data)
}

// TestServeRefusesStoreWithoutRoot: a store whose keys exist but which has no root credential
// (an init interrupted between the two) is not initialised either: serve refuses it without
// printing a secret, and init completes it with the same KEK.
func TestServeRefusesStoreWithoutRoot(t *testing.T) {
	st, _, data, kekPath := openKeyedStore(t)
	st.Close()
	stdout, stderr := serveMustRefuseOut(t, prodServeArgs(data, kekPath)...)
	assertNoSecretShaped(t, "stdout", stdout)
	assertNoSecretShaped(t, "stderr", stderr)
	if !strings.Contains(stderr, "not initialised") {
		t.Errorf("the refusal does not say the store is not initialised:\n%s", stderr)
	}
	root := initStore(t, data, kekPath)
	srv := startProcess(t, childEnv(), prodServeArgs(data, kekPath)...)
	c := newHTTPClient()
	defer c.CloseIdleConnections()
	if code := tokenizeCode(t, c, srv.httpAddr, root); code != http.StatusOK {
		t.Errorf("tokenize with the completed init's root token: HTTP %d", code)
	}
	srv.stopClean()
}

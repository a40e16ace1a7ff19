package main

// Binary-level tests: the tokenvault binary (built once in TestMain) runs as a child process
// on 127.0.0.1:0 ports, and the tests talk to it over HTTP and through its own CLI.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// checkStore opens the data directory's bbolt file directly (the server must be stopped)
// and runs bbolt's consistency check.
func checkStore(t *testing.T, dataDir string) {
	t.Helper()
	st, err := store.Open(filepath.Join(dataDir, store.FileName), store.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("opening the store of the stopped server: %v", err)
	}
	if err := st.Check(); err != nil {
		t.Errorf("store consistency check: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("closing the store: %v", err)
	}
}

// testSeed is TOKENVAULT_E2E_SEED when set (to replay a failure), else a fresh seed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TOKENVAULT_E2E_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TOKENVAULT_E2E_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay the random choices with TOKENVAULT_E2E_SEED=%d)", seed, seed)
	return seed
}

var loadTemplates = []string{"pan", "opaque", "email"}
var loadDomains = []string{"", "acme"}

// loadValue is a valid value for tmpl, unique for (run, worker, seq).
func loadValue(tmpl string, run, worker, seq int) string {
	switch tmpl {
	case "pan":
		// 16 digits: 4, run, worker, 13-digit sequence number.
		return fmt.Sprintf("4%d%d%013d", run%10, worker%10, seq)
	case "email":
		return fmt.Sprintf("user.%d.%d.%d@example.com", run, worker, seq)
	default:
		return fmt.Sprintf("opaque value r%d w%d n%d", run, worker, seq)
	}
}

// loadStats counts what a load run saw.
type loadStats struct {
	batches, acked, transportErrs atomic.Int64
}

// load is a running runLoad.
type load struct {
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// halt tells the workers to send no more requests and waits for them to return.
func (l *load) halt() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// runLoad runs workers goroutines that tokenize batches of 1-50 fresh values until halted,
// and records in log every item of every 200 response. A transport error ends a worker
// (the server is expected to go away); any other failure is a test error. The workers are
// halted at the latest when the test ends.
func runLoad(t *testing.T, c *http.Client, httpAddr string, seed uint64, run, workers int, log *ackLog, st *loadStats) *load {
	l := &load{stop: make(chan struct{})}
	t.Cleanup(l.halt)
	wg, stop := &l.wg, l.stop
	var reported atomic.Int32
	report := func(format string, args ...any) {
		if reported.Add(1) <= 5 {
			t.Errorf(format, args...)
		}
	}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(run*1000+w)))
			seq := 0
			for {
				select {
				case <-stop:
					return
				default:
				}
				items := make([]tokenizeItem, 1+rng.IntN(50))
				for i := range items {
					tmpl := loadTemplates[rng.IntN(len(loadTemplates))]
					items[i] = tokenizeItem{Value: loadValue(tmpl, run, w, seq), Template: tmpl, Domain: loadDomains[rng.IntN(len(loadDomains))]}
					seq++
				}
				body, _ := json.Marshal(map[string]any{"items": items})
				code, data, err := postRaw(c, "http://"+httpAddr+"/v1/tokens:tokenize", rootToken, body)
				if err != nil {
					st.transportErrs.Add(1)
					return
				}
				st.batches.Add(1)
				if code != http.StatusOK {
					report("tokenize under load: HTTP %d: %s", code, data)
					return
				}
				var r resultsResp
				if err := json.Unmarshal(data, &r); err != nil || len(r.Results) != len(items) {
					report("tokenize under load: bad 200 body for %d items (%v): %s", len(items), err, data)
					return
				}
				var ok []acked
				for i, res := range r.Results {
					if res.Error != nil || res.Token == "" {
						report("tokenize under load: item %q (%s) failed: %+v", items[i].Value, items[i].Template, res.Error)
						continue
					}
					ok = append(ok, acked{value: items[i].Value, template: items[i].Template, domain: items[i].Domain, token: res.Token})
				}
				log.add(ok...)
				st.acked.Add(int64(len(ok)))
			}
		}()
	}
	return l
}

// TestCrashLosesNothing is the durability test: every tokenization acknowledged with a 200
// survives a SIGKILL at a random moment, three times over on the same data directory, and
// the bbolt file is consistent afterwards.
func TestCrashLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("durability test: starts and kills the server several times")
	}
	const cycles, workers = 3, 8
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	log := &ackLog{}
	begin := time.Now()

	for cycle := range cycles {
		srv := startServer(t, dir)
		c := newHTTPClient()
		if prev := log.snapshot(); len(prev) > 0 {
			verifyAcked(t, c, srv.httpAddr, prev)
			srv.assertNoErrorLogs(fmt.Sprintf("restart %d after SIGKILL", cycle))
			if t.Failed() {
				t.Fatalf("cycle %d: acknowledged tokens lost after SIGKILL (seed %d)", cycle, seed)
			}
		}
		delay := time.Duration(300+rng.IntN(1201)) * time.Millisecond
		var st loadStats
		ld := runLoad(t, c, srv.httpAddr, seed, cycle, workers, log, &st)
		time.Sleep(delay)
		// Kill first, so that the requests in flight at that moment are cut off; the
		// workers stop at their first transport error.
		srv.kill()
		ld.halt()
		c.CloseIdleConnections()
		t.Logf("cycle %d: SIGKILL after %v: %d batches answered, %d values acknowledged, %d requests cut off",
			cycle, delay, st.batches.Load(), st.acked.Load(), st.transportErrs.Load())
		if t.Failed() {
			t.FailNow()
		}
	}

	all := log.snapshot()
	if len(all) == 0 {
		t.Fatal("no tokenization was acknowledged in any cycle: the test proved nothing")
	}
	srv := startServer(t, dir)
	c := newHTTPClient()
	verifyAcked(t, c, srv.httpAddr, all)
	srv.stopClean()
	srv.assertNoErrorLogs("last restart and stop")
	c.CloseIdleConnections()
	checkStore(t, dir)
	t.Logf("%d acknowledged tokens checked after %d crashes, in %v", len(all), cycles, time.Since(begin).Round(time.Millisecond))
}

// TestSecondProcessGetsClearError: a second server on a data directory in use exits
// non-zero with a message saying so, instead of hanging, and the first one keeps serving.
func TestSecondProcessGetsClearError(t *testing.T) {
	dir := t.TempDir()
	first := startServer(t, dir)

	began := time.Now()
	args := append(serveArgs(), "--data", dir, "--dev-root-token", rootToken)
	stdout, stderr, code := runCLI(t, childEnv(), args...)
	t.Logf("second process exited %d after %v", code, time.Since(began).Round(time.Millisecond))
	if code == 0 {
		t.Errorf("second serve on %s exited 0, want non-zero\nstdout:\n%s\nstderr:\n%s", dir, stdout, stderr)
	}
	if !strings.Contains(stderr, "in use") || !strings.Contains(stderr, dir) {
		t.Errorf("second serve: stderr does not say that %s is in use:\n%s", dir, stderr)
	}
	if strings.Contains(stdout, "listening:") {
		t.Errorf("second serve started listening:\n%s", stdout)
	}
	// The same with the directory from TOKENVAULT_DATA instead of --data.
	stdout, stderr, code = runCLI(t, childEnv("TOKENVAULT_DATA="+dir), append(serveArgs(), "--dev-root-token", rootToken)...)
	if code == 0 || !strings.Contains(stderr, "in use") || strings.Contains(stdout, "listening:") {
		t.Errorf("second serve with TOKENVAULT_DATA=%s: exit %d, want non-zero saying it is in use\nstdout:\n%s\nstderr:\n%s", dir, code, stdout, stderr)
	}

	c := newHTTPClient()
	res, err := tokenize(c, first.httpAddr, rootToken, []tokenizeItem{{Value: "4111111111111111", Template: "pan"}})
	if err != nil || res[0].Error != nil {
		t.Fatalf("first server after the second one failed: %v %+v", err, res)
	}
	first.stopClean()
	c.CloseIdleConnections()
	checkStore(t, dir)
}

// TestSIGTERMStopsCleanly: SIGTERM during a stream of requests ends the server with exit
// code 0; every response that was sent is a complete 200 (the others fail at the transport
// level), every acknowledged token survives, and the store is consistent.
func TestSIGTERMStopsCleanly(t *testing.T) {
	const workers = 4
	seed := testSeed(t)
	dir := t.TempDir()
	srv := startServer(t, dir)
	c := newHTTPClient()
	log := &ackLog{}
	var st loadStats
	ld := runLoad(t, c, srv.httpAddr, seed, 0, workers, log, &st)

	// Let some requests complete first, so that the stream is really flowing.
	deadline := time.Now().Add(30 * time.Second)
	for st.acked.Load() < 200 && time.Now().Before(deadline) && !t.Failed() {
		time.Sleep(10 * time.Millisecond)
	}
	before := st.batches.Load()
	if code := srv.stop(); code != 0 {
		t.Errorf("after SIGTERM tokenvault exited %d (%v), want 0\nstderr:\n%s", code, srv.waitErr, srv.stderr)
	}
	// The workers stop at their first transport error (the listener is closed now).
	ld.halt()
	c.CloseIdleConnections()
	t.Logf("%d batches answered before SIGTERM, %d during shutdown; %d values acknowledged; %d requests cut off",
		before, st.batches.Load()-before, st.acked.Load(), st.transportErrs.Load())
	srv.assertNoErrorLogs("clean stop")
	if !strings.Contains(srv.stderr.String(), `"msg":"stopped"`) {
		t.Errorf("no \"stopped\" log line after SIGTERM:\n%s", srv.stderr)
	}
	if t.Failed() {
		t.FailNow()
	}

	checkStore(t, dir)
	all := log.snapshot()
	if len(all) == 0 {
		t.Fatal("no tokenization was acknowledged")
	}
	srv = startServer(t, dir)
	c = newHTTPClient()
	verifyAcked(t, c, srv.httpAddr, all)
	srv.stopClean()
	c.CloseIdleConnections()
}

// TestSIGINTStopsCleanly: SIGINT (Ctrl-C) stops the server like SIGTERM.
func TestSIGINTStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	c := newHTTPClient()
	res, err := tokenize(c, srv.httpAddr, rootToken, []tokenizeItem{{Value: "4111111111111111", Template: "pan"}})
	if err != nil || res[0].Error != nil {
		t.Fatalf("tokenize: %v %+v", err, res)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := srv.wait(); code != 0 {
		t.Fatalf("after SIGINT tokenvault exited %d (%v), want 0\nstderr:\n%s", code, srv.waitErr, srv.stderr)
	}
	c.CloseIdleConnections()
	checkStore(t, dir)
	srv = startServer(t, dir)
	c = newHTTPClient()
	verifyAcked(t, c, srv.httpAddr, []acked{{value: "4111111111111111", template: "pan", token: res[0].Token}})
	srv.stopClean()
	c.CloseIdleConnections()
}

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
		code, data, err := postRaw(c, base+path, secret, []byte(body))
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

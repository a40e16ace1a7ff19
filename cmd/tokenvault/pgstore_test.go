package main

// The binary on PostgreSQL: init --store, serve --store (replicas), the offline commands on
// a database, and failures under load: a replica killed with SIGKILL, PostgreSQL stopped and
// started again.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testpg"
)

// pg is the PostgreSQL cluster this package's tests share (a database per test); tests that
// stop PostgreSQL start their own.
var pg testpg.Shared

// fakePassword is put in store URLs: the test clusters trust local connections and never ask
// for it, so it must simply never be printed.
const fakePassword = "Sup3rSecretPw"

// withPassword returns a testpg URL (postgres://postgres@/db?…) with fakePassword.
func withPassword(url string) string {
	return strings.Replace(url, "postgres://postgres@", "postgres://postgres:"+fakePassword+"@", 1)
}

// initPostgres runs `tokenvault init --store url --kek-file kekPath -o json` and returns the
// root token it prints.
func initPostgres(t *testing.T, url, kekPath string) string {
	t.Helper()
	out, errOut, code := runCLI(t, childEnv(), "init", "--store", url, "--kek-file", kekPath, "-o", "json")
	if code != 0 {
		t.Fatalf("init --store exited %d: %s", code, errOut)
	}
	assertNoPassword(t, "init --store", out+errOut)
	return jsonSecret(t, "init --store -o json", out, "root_token")
}

// jsonSecret returns the non-empty string field of a command's JSON output.
func jsonSecret(t *testing.T, what, out, field string) string {
	t.Helper()
	var r map[string]any
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%s printed %q (%v)", what, out, err)
	}
	v, _ := r[field].(string)
	if v == "" {
		t.Fatalf("%s printed no %s: %q", what, field, out)
	}
	return v
}

// replicaArgs are the arguments of a production replica of the database at url.
func replicaArgs(url, kekPath, id string, extra ...string) []string {
	return append([]string{"serve", "--store", url, "--kek-file", kekPath, "--replica-id", id,
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--vendor-addr", "127.0.0.1:0"}, extra...)
}

func assertNoPassword(t *testing.T, what, out string) {
	t.Helper()
	if strings.Contains(out, fakePassword) {
		t.Errorf("%s printed the store URL's password:\n%s", what, out)
	}
}

// TestInitAndServeOnPostgres: serve refuses an uninitialised database naming init; init
// prints the root token once and refuses a second time; a replica serves; the audit trail
// verifies directly against the database and as an export; the root is rotated offline; the
// URL's password is never printed.
func TestInitAndServeOnPostgres(t *testing.T) {
	url := withPassword(pg.DB(t))
	kekPath := filepath.Join(t.TempDir(), "kek.json")

	_, errOut, code := runCLI(t, childEnv(), replicaArgs(url, kekPath, "r1")...)
	if code == 0 || !strings.Contains(errOut, "not initialised") || !strings.Contains(errOut, "tokenvault init --store") {
		t.Errorf("serve on an uninitialised database: exit %d, stderr %q; want a refusal naming tokenvault init --store", code, errOut)
	}
	assertNoPassword(t, "serve on an uninitialised database", errOut)

	root := initPostgres(t, url, kekPath)
	out, errOut, code := runCLI(t, childEnv(), "init", "--store", url, "--kek-file", kekPath)
	if code == 0 || !strings.Contains(errOut, "already initialised") {
		t.Errorf("second init --store: exit %d, stderr %q; want a refusal", code, errOut)
	}
	assertNoSecretShaped(t, "second init --store", out+errOut)
	assertNoPassword(t, "second init --store", out+errOut)
	if _, errOut, code := runCLI(t, childEnv(), "init", "--store", url, "--data", t.TempDir(), "--kek-file", kekPath); code == 0 || !strings.Contains(errOut, "not both") {
		t.Errorf("init --store --data: exit %d, stderr %q; want a refusal", code, errOut)
	}
	// TOKENVAULT_STORE names the database when no flag does.
	if _, errOut, code := runCLI(t, childEnv("TOKENVAULT_STORE="+url), "init", "--kek-file", kekPath); code == 0 || !strings.Contains(errOut, "already initialised") {
		t.Errorf("init with TOKENVAULT_STORE: exit %d, stderr %q; want already initialised", code, errOut)
	}

	srv := startProcess(t, childEnv("TOKENVAULT_STORE="+url), "serve", "--kek-file", kekPath,
		"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--vendor-addr", "127.0.0.1:0")
	if logs := srv.stderr.String(); !strings.Contains(logs, `"replica_id"`) || !strings.Contains(logs, `"backend":"postgres"`) {
		t.Errorf("serve --store does not log its backend and replica id:\n%s", logs)
	}
	host, _ := os.Hostname()
	if !strings.Contains(srv.stderr.String(), `"replica_id":"`+host+`"`) {
		t.Errorf("the default replica id is not the host name %q:\n%s", host, srv.stderr.String())
	}
	c := newHTTPClient()
	var vals []tokenizeItem
	for i := range 5 {
		vals = append(vals, tokenizeItem{Value: fmt.Sprintf("4%015d", 7000+i), Template: "pan"})
	}
	acks, err := tokenizeAckedAs(c, srv.httpAddr, root, vals)
	if err != nil {
		t.Fatal(err)
	}
	conn := []string{"--addr", srv.grpcAddr, "--token", root}
	export := filepath.Join(t.TempDir(), "audit.jsonl")
	if _, errOut, code := runCLI(t, childEnv(), append([]string{"audit", "export", "--out", export}, conn...)...); code != 0 {
		t.Fatalf("audit export: %d %s", code, errOut)
	}
	if out, errOut, code := runCLI(t, childEnv(), "audit", "verify", "--file", export); code != 0 {
		t.Errorf("audit verify --file of a PostgreSQL replica's export: exit %d\n%s%s", code, out, errOut)
	}
	// Directly against the database, while the replica runs.
	if out, errOut, code := runCLI(t, childEnv(), "audit", "verify", "--store", url); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("audit verify --store: exit %d\n%s%s", code, out, errOut)
	} else {
		assertNoPassword(t, "audit verify --store", out+errOut)
	}
	srv.stopClean()
	c.CloseIdleConnections()
	assertNoPassword(t, "serve --store", srv.stdout.String()+srv.stderr.String())

	// Break glass on the database: a new root, the old one dead.
	out, errOut, code = runCLI(t, childEnv(), "credential", "rotate", "root", "--store", url, "--kek-file", kekPath, "-o", "json")
	if code != 0 {
		t.Fatalf("credential rotate root --store: exit %d: %s", code, errOut)
	}
	assertNoPassword(t, "credential rotate root --store", out+errOut)
	newRoot := jsonSecret(t, "credential rotate root --store -o json", out, "secret")
	srv = startProcess(t, childEnv(), replicaArgs(url, kekPath, "r2")...)
	if code := tokenizeCode(t, c, srv.httpAddr, root); code != http.StatusUnauthorized {
		t.Errorf("the old root after break glass on the database: %d, want 401", code)
	}
	verifyAckedAs(t, c, srv.httpAddr, newRoot, acks)
	srv.stopClean()
}

// pgLoad is tokenize (and optionally detokenize) load on a set of replicas that tolerates
// the failures a test provokes: a transport error or a 503 is counted and the worker goes on
// after a pause (a killed replica's workers stop at their first transport error when
// stopOnTransport). Anything else is a test error.
type pgLoad struct {
	t       *testing.T
	c       *http.Client
	secret  string
	log     *ackLog
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	batches atomic.Int64 // answered 200
	unavail atomic.Int64 // answered 503
	cut     atomic.Int64 // transport errors
	bad     atomic.Int32

	revealMu sync.Mutex
	reveals  []string // request ids of detokenize calls answered 200 with values
}

func newPGLoad(t *testing.T, c *http.Client, secret string) *pgLoad {
	l := &pgLoad{t: t, c: c, secret: secret, log: &ackLog{}, stop: make(chan struct{})}
	t.Cleanup(l.halt)
	return l
}

func (l *pgLoad) halt() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

func (l *pgLoad) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *pgLoad) report(format string, args ...any) {
	if l.bad.Add(1) <= 5 {
		l.t.Errorf(format, args...)
	}
}

// post sends a JSON body with a request id; it classifies the answer: ok (200 and the body),
// or counted as a 503 or a transport error (false), or reported.
func (l *pgLoad) post(httpAddr, path, reqID string, body []byte) ([]byte, bool, bool) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+httpAddr+path, strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.secret)
	req.Header.Set("X-Request-Id", reqID)
	resp, err := l.c.Do(req)
	if err != nil {
		l.cut.Add(1)
		return nil, false, true
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.WriteString(string(buf[:n]))
		if err != nil {
			break
		}
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return []byte(b.String()), true, false
	case http.StatusServiceUnavailable:
		if resp.Header.Get("Retry-After") == "" {
			l.report("%s: 503 without Retry-After", path)
		}
		l.unavail.Add(1)
		return nil, false, false
	}
	l.report("%s under load: HTTP %d: %s", path, resp.StatusCode, b.String())
	return nil, false, false
}

// call posts req as JSON and returns the results of a 200 answer with want results (ok). A
// 503 or a transport error is counted and, after a pause, is not ok; stop tells the worker to
// end: a transport error with stopOnTransport, or a bad answer (reported).
func (l *pgLoad) call(httpAddr, path, id string, req any, want int, stopOnTransport bool) (res []result, ok, stop bool) {
	body, _ := json.Marshal(req)
	data, ok, cut := l.post(httpAddr, path, id, body)
	if cut && stopOnTransport {
		return nil, false, true
	}
	if !ok {
		time.Sleep(50 * time.Millisecond)
		return nil, false, false
	}
	var r resultsResp
	if err := json.Unmarshal(data, &r); err != nil || len(r.Results) != want {
		l.report("%s: bad 200 body for %d items (%v): %s", path, want, err, data)
		return nil, false, true
	}
	return r.Results, true, false
}

// tokenizer runs a worker tokenizing fresh values on httpAddr until halted (or, with
// stopOnTransport, until its first transport error).
func (l *pgLoad) tokenizer(httpAddr string, seed uint64, run, worker int, stopOnTransport bool) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		rng := rand.New(rand.NewPCG(seed, uint64(run*1000+worker)))
		seq := 0
		for n := 0; !l.stopped(); n++ {
			items := plainLoad.items(rng, run, worker, &seq, 1+rng.IntN(20))
			res, ok, stop := l.call(httpAddr, "/v1/tokens:tokenize", fmt.Sprintf("tk-%d-%d-%d", run, worker, n),
				map[string]any{"items": items}, len(items), stopOnTransport)
			if stop {
				return
			}
			if !ok {
				continue
			}
			ok2, failed := ackedOf(items, res)
			for _, f := range failed {
				l.report("tokenize under load: %v", f)
			}
			l.log.add(ok2...)
			l.batches.Add(1)
		}
	}()
}

// revealer runs a worker detokenizing acknowledged tokens on httpAddr, each call with its
// own request id, recording the ids of calls that revealed values.
func (l *pgLoad) revealer(httpAddr string, run, worker int, stopOnTransport bool) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for n := 0; !l.stopped(); n++ {
			acks := l.log.snapshot()
			if len(acks) == 0 {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			var items []detokenizeItem
			for i := range 10 {
				a := acks[(n*10+i)%len(acks)]
				items = append(items, detokenizeItem{Token: a.token, Domain: a.domain})
			}
			id := fmt.Sprintf("rv-%d-%d-%d", run, worker, n)
			res, ok, stop := l.call(httpAddr, "/v1/tokens:detokenize", id,
				map[string]any{"items": items, "purpose": "e2e-test"}, len(items), stopOnTransport)
			if stop {
				return
			}
			if !ok {
				continue
			}
			if res[0].Value != "" {
				l.revealMu.Lock()
				l.reveals = append(l.reveals, id)
				l.revealMu.Unlock()
			}
		}
	}()
}

// assertRevealsAudited exports the audit trail through a replica and checks that the
// request id of every call that revealed values is in it.
func assertRevealsAudited(t *testing.T, grpcAddr, secret string, ids []string) {
	t.Helper()
	export := filepath.Join(t.TempDir(), "audit.jsonl")
	if _, errOut, code := runCLI(t, childEnv(), "audit", "export", "--out", export, "--addr", grpcAddr, "--token", secret); code != 0 {
		t.Fatalf("audit export: exit %d: %s", code, errOut)
	}
	data, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		var ev struct {
			RequestID string `json:"request_id"`
			Method    string `json:"method"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.RequestID != "" {
			have[ev.RequestID] = true
		}
	}
	missing := 0
	for _, id := range ids {
		if !have[id] {
			missing++
			if missing <= 5 {
				t.Errorf("reveal %s answered with values but has no audit event", id)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d reveals have no audit event", missing, len(ids))
	}
}

// TestReplicaKilledUnderLoad: two replicas of one database under tokenize and detokenize
// load; one is killed with SIGKILL. Every token either acknowledged is served by the other
// replica (tokenizing the value again gives the same token), and every reveal that answered
// with values has its audit event.
func TestReplicaKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two replicas and kills one under load")
	}
	url := pg.DB(t)
	kekPath := filepath.Join(t.TempDir(), "kek.json")
	root := initPostgres(t, url, kekPath)
	a := startProcess(t, childEnv(), replicaArgs(url, kekPath, "a")...)
	b := startProcess(t, childEnv(), replicaArgs(url, kekPath, "b")...)
	seed := testSeed(t)
	c := newHTTPClient()
	l := newPGLoad(t, c, root)
	for w := range 3 {
		l.tokenizer(a.httpAddr, seed, 1, w, true)
		l.tokenizer(b.httpAddr, seed, 2, w, false)
	}
	l.revealer(a.httpAddr, 1, 0, true)
	l.revealer(b.httpAddr, 2, 0, false)
	if !waitFor(2*time.Minute, 20*time.Millisecond, func() bool { return l.batches.Load() >= 20 }) {
		t.Fatalf("the load made no progress: %d batches", l.batches.Load())
	}
	time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
	a.kill()
	before := l.batches.Load()
	// The survivor keeps serving.
	if !waitFor(2*time.Minute, 20*time.Millisecond, func() bool { return l.batches.Load() >= before+10 }) {
		t.Errorf("replica b made no progress after a was killed")
	}
	l.halt()
	c.CloseIdleConnections()
	if t.Failed() {
		t.FailNow()
	}
	all := l.log.snapshot()
	t.Logf("%d batches, %d values acknowledged, %d reveals, %d calls cut off, %d answered 503", l.batches.Load(), len(all), len(l.reveals), l.cut.Load(), l.unavail.Load())
	verifyAckedAs(t, c, b.httpAddr, root, all)
	assertRevealsAudited(t, b.grpcAddr, root, l.reveals)
	b.stopClean()
}

// TestPostgresRestartUnderLoad: two replicas under tokenize and detokenize load while
// PostgreSQL stops (immediate) and starts again: meanwhile both answer 503 with Retry-After
// (never another error) and /healthz 503; afterwards both serve again by themselves, and
// every acknowledged token is there on each, every reveal audited.
func TestPostgresRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and starts PostgreSQL under load")
	}
	cl := testpg.Start(t)
	url := cl.CreateDB(t, "restart")
	kekPath := filepath.Join(t.TempDir(), "kek.json")
	root := initPostgres(t, url, kekPath)
	reps := []*proc{
		startProcess(t, childEnv(), replicaArgs(url, kekPath, "a", "--request-timeout", "10s")...),
		startProcess(t, childEnv(), replicaArgs(url, kekPath, "b", "--request-timeout", "10s")...),
	}
	seed := testSeed(t)
	c := newHTTPClient()
	l := newPGLoad(t, c, root)
	for i, r := range reps {
		for w := range 2 {
			l.tokenizer(r.httpAddr, seed, i+1, w, false)
		}
		l.revealer(r.httpAddr, i+1, 0, false)
	}
	if !waitFor(2*time.Minute, 20*time.Millisecond, func() bool { return l.batches.Load() >= 20 }) {
		t.Fatalf("the load made no progress: %d batches", l.batches.Load())
	}
	cl.Stop(t)
	for _, r := range reps {
		if !waitFor(time.Minute, 50*time.Millisecond, func() bool { return healthCode(c, r.httpAddr, "/healthz") == http.StatusServiceUnavailable }) {
			t.Errorf("%s: /healthz did not turn 503 while PostgreSQL is down", r.httpAddr)
		}
	}
	if !waitFor(time.Minute, 50*time.Millisecond, func() bool { return l.unavail.Load() >= 4 }) {
		t.Errorf("no call answered 503 while PostgreSQL is down (%d)", l.unavail.Load())
	}
	cl.Start(t)
	for _, r := range reps {
		if !waitFor(time.Minute, 50*time.Millisecond, func() bool { return healthCode(c, r.httpAddr, "/healthz") == http.StatusOK }) {
			t.Errorf("%s: /healthz did not turn 200 after PostgreSQL came back", r.httpAddr)
		}
	}
	after := l.batches.Load()
	if !waitFor(2*time.Minute, 20*time.Millisecond, func() bool { return l.batches.Load() >= after+20 }) {
		t.Errorf("the load did not recover after PostgreSQL came back: %d batches since", l.batches.Load()-after)
	}
	l.halt()
	c.CloseIdleConnections()
	all := l.log.snapshot()
	t.Logf("%d batches, %d values acknowledged, %d reveals, %d answered 503, %d cut off", l.batches.Load(), len(all), len(l.reveals), l.unavail.Load(), l.cut.Load())
	for _, r := range reps {
		verifyAckedAs(t, c, r.httpAddr, root, all)
	}
	assertRevealsAudited(t, reps[0].grpcAddr, root, l.reveals)
	for _, r := range reps {
		r.stopClean()
		assertNoPassword(t, "replica logs", r.stderr.String())
	}
}

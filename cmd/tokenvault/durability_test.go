package main

// Durability: SIGKILL loses no acknowledged tokenization, SIGTERM and SIGINT stop cleanly, a
// second server on the same data directory is refused.

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"
)

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
		ld := runLoad(t, plainLoad, c, srv.httpAddr, seed, cycle, workers, log, &st)
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
	ld := runLoad(t, plainLoad, c, srv.httpAddr, seed, 0, workers, log, &st)

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

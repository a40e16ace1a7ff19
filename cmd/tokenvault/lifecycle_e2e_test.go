package main

// Binary-level key-lifecycle tests: rotation and rewrap across SIGKILLs, the sealed state
// while the KEK is missing or wrong, and backup/restore with subject erasure.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault"
)

// TestKill9DuringRotationAndRewrap: key rotations under tokenize traffic, each followed by a
// SIGKILL while the background rewrap is running. After the last restart the rewrap resumes
// and finishes; no acknowledged token is lost or changed; the keyring is consistent; the old
// keys can be disabled and destroyed without losing anything.
func TestKill9DuringRotationAndRewrap(t *testing.T) {
	if testing.Short() {
		t.Skip("lifecycle test: tokenizes 20,000 values and kills the server four times")
	}
	const (
		initial = 20_000
		cycles  = 4
		workers = 4
	)
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 7))
	dir := t.TempDir()
	serve := func() *proc {
		t.Helper()
		return startServer(t, dir, "--log-level", "warn")
	}
	log := &ackLog{}
	begin := time.Now()

	srv := serve()
	c := newHTTPClient()

	// 20,000 unique values, in batches of 1,000 from two goroutines.
	{
		const batch, par = 1000, 2
		var wg sync.WaitGroup
		errs := make(chan error, par)
		for w := range par {
			wg.Add(1)
			go func() {
				defer wg.Done()
				wrng := rand.New(rand.NewPCG(seed, uint64(w)))
				seq := 0
				for n := 0; n < initial/par; n += batch {
					got, err := tokenizeAcked(c, srv.httpAddr, lcItems(wrng, 0, w, &seq, batch))
					if err != nil {
						errs <- fmt.Errorf("initial tokenize: %v", err)
						return
					}
					log.add(got...)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	t.Logf("%d values tokenized in %v", len(log.snapshot()), time.Since(begin).Round(time.Millisecond))
	ks, err := getKeyStatus(c, srv.httpAddr, rootToken)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks.Keys) != 1 || len(ks.primaries()) != 1 {
		t.Fatalf("a fresh vault should have one primary data key: %v", ks)
	}

	// Rotations: acked counts those answered with a 200; unacked those cut off by the kill.
	acked, unacked := 0, 0
	var lastBefore keyStatusResp // the rewrap's progress just before the last SIGKILL
	for cycle := range cycles {
		var st loadStats
		ld := runSubjectLoad(t, c, srv.httpAddr, seed, cycle+1, workers, log, &st)
		id, err := rotateKey(c, srv.httpAddr, rootToken)
		if err != nil {
			t.Fatalf("cycle %d: rotate: %v\nstderr:\n%s", cycle, err, srv.stderr)
		}
		acked++
		delay := time.Duration(rng.IntN(401)) * time.Millisecond
		// Every other cycle on average, a second rotation races the kill.
		race := rng.IntN(2) == 0
		raceLead := time.Duration(rng.IntN(31)) * time.Millisecond
		time.Sleep(delay)
		before, err := getKeyStatus(c, srv.httpAddr, rootToken)
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		lastBefore = before
		srv.assertNoErrorLogs(fmt.Sprintf("cycle %d before SIGKILL", cycle))
		var raced chan error
		if race {
			raced = make(chan error, 1)
			go func() {
				_, err := rotateKey(c, srv.httpAddr, rootToken)
				raced <- err
			}()
			time.Sleep(raceLead)
		}
		srv.kill()
		ld.halt()
		raceNote := ""
		if race {
			switch err := <-raced; {
			case err == nil:
				acked++
				raceNote = "; a racing rotation was acknowledged"
			case strings.Contains(err.Error(), "HTTP "):
				t.Fatalf("cycle %d: racing rotate got an HTTP error: %v", cycle, err)
			default:
				unacked++
				raceNote = "; a racing rotation was cut off"
			}
		}
		c.CloseIdleConnections()
		t.Logf("cycle %d: rotated to key %d, SIGKILL %v later (rewrap then: %d rewrapped, %d remaining): %d batches, %d values acknowledged, %d requests cut off%s",
			cycle, id, delay, before.Rewrapped, before.Remaining, st.batches.Load(), st.acked.Load(), st.transportErrs.Load(), raceNote)
		if t.Failed() {
			t.FailNow()
		}
		srv = serve()
		c = newHTTPClient()
	}

	// The rewrap must resume after the restarts, from its stored progress, and finish.
	if ks, err := getKeyStatus(c, srv.httpAddr, rootToken); err != nil {
		t.Fatal(err)
	} else if ks.RewrapTarget == lastBefore.RewrapTarget && ks.Rewrapped < lastBefore.Rewrapped {
		t.Errorf("after the restart the rewrap of key %d reports %d records rewrapped, before the SIGKILL %d: its progress was lost", ks.RewrapTarget, ks.Rewrapped, lastBefore.Rewrapped)
	}
	waitBegin := time.Now()
	var last keyStatusResp
	var lastErr error
	// The rewrap is stuck when it reports done with records left under old keys, or when its
	// target is not the primary key (it then never runs again): neither changes without a new
	// rotation. Five polls in a row, over a second, are not a status call's two reads
	// straddling the last batch.
	stuck := 0
	finished := waitFor(60*time.Second, 250*time.Millisecond, func() bool {
		last, lastErr = getKeyStatus(c, srv.httpAddr, rootToken)
		if lastErr == nil && (last.RewrapDone && last.Remaining > 0 || !slices.Equal(last.primaries(), []uint32{last.RewrapTarget})) {
			stuck++
		} else {
			stuck = 0
		}
		return lastErr == nil && (last.RewrapDone && last.Remaining == 0 || stuck >= 5)
	})
	all := log.snapshot()
	switch {
	case stuck > 0:
		// Still check the tokens, then stop: the old keys cannot be disabled.
		if last.RewrapDone {
			t.Errorf("the rewrap reports done but %d record(s) stay under old keys (seed %d): %v", last.Remaining, seed, last)
		} else {
			t.Errorf("the rewrap is stuck: its target %d is not the primary key %v, so it never runs again; %d records stay under old keys (seed %d): %v",
				last.RewrapTarget, last.primaries(), last.Remaining, seed, last)
		}
		verifyAcked(t, c, srv.httpAddr, all)
		t.FailNow()
	case !finished:
		t.Fatalf("the rewrap did not finish within 60s after the last restart (seed %d): %v (last error %v)\nstderr:\n%s", seed, last, lastErr, srv.stderr)
	}
	t.Logf("rewrap finished %v after the last restart: %v", time.Since(waitBegin).Round(time.Millisecond), last)

	verifyAcked(t, c, srv.httpAddr, all)
	if t.Failed() {
		t.FailNow()
	}

	// The keyring: one primary, one key per committed rotation, nothing left under old keys.
	ks, err = getKeyStatus(c, srv.httpAddr, rootToken)
	if err != nil {
		t.Fatal(err)
	}
	prim := ks.primaries()
	if len(prim) != 1 {
		t.Fatalf("keys status lists %d primary keys, want exactly 1: %v", len(prim), ks)
	}
	if n := len(ks.Keys); n < acked+1 || n > acked+unacked+1 {
		t.Errorf("%d data keys after %d acknowledged and %d cut-off rotations; want %d to %d: %v", n, acked, unacked, acked+1, acked+unacked+1, ks)
	}
	if ks.RewrapTarget != prim[0] {
		t.Errorf("the rewrap's target is key %d, the primary is %d: %v", ks.RewrapTarget, prim[0], ks)
	}
	seen := map[uint32]bool{}
	var old []uint32
	for _, k := range ks.Keys {
		if seen[k.KeyID] {
			t.Errorf("key %d listed twice: %v", k.KeyID, ks)
		}
		seen[k.KeyID] = true
		if k.State != "primary" {
			if k.State != "enabled" {
				t.Errorf("key %d is %s after rotations, want enabled: %v", k.KeyID, k.State, ks)
			}
			if k.Records != 0 {
				t.Errorf("key %d still protects %d records after the rewrap: %v", k.KeyID, k.Records, ks)
			}
			old = append(old, k.KeyID)
		} else if k.Records != ks.Total {
			t.Errorf("the primary key %d protects %d of %d records: %v", k.KeyID, k.Records, ks.Total, ks)
		}
	}
	// The CLI sees the same keyring.
	out, errOut, code := runCLI(t, childEnv(), "keys", "status", "--addr", srv.grpcAddr, "--token", rootToken, "-o", "json")
	if code != 0 {
		t.Errorf("keys status -o json: exit %d\nstderr:\n%s", code, errOut)
	} else {
		var cj struct {
			Keys []struct {
				KeyID uint32 `json:"key_id"`
				State string `json:"state"`
			} `json:"keys"`
			RewrapDone bool `json:"rewrap_done"`
		}
		if err := json.Unmarshal([]byte(out), &cj); err != nil {
			t.Errorf("keys status -o json: %v\n%s", err, out)
		} else if len(cj.Keys) != len(ks.Keys) || !cj.RewrapDone {
			t.Errorf("keys status -o json disagrees with GET /v1/keys:\n%s\nvs %v", out, ks)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Disable and destroy every old key: nothing depends on them any more.
	for _, id := range old {
		if err := keyOp(c, srv.httpAddr, rootToken, "disable", id); err != nil {
			t.Fatalf("disabling old key %d: %v (%v)", id, err, ks)
		}
		if err := keyOp(c, srv.httpAddr, rootToken, "destroy", id); err != nil {
			t.Fatalf("destroying old key %d: %v (%v)", id, err, ks)
		}
	}
	if err := keyOp(c, srv.httpAddr, rootToken, "disable", prim[0]); err == nil {
		t.Errorf("disabling the primary key %d succeeded", prim[0])
	}
	verifyAcked(t, c, srv.httpAddr, all)
	ks, err = getKeyStatus(c, srv.httpAddr, rootToken)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range ks.Keys {
		if want := map[bool]string{true: "primary", false: "destroyed"}[k.KeyID == prim[0]]; k.State != want {
			t.Errorf("key %d is %s after destroying the old keys, want %s: %v", k.KeyID, k.State, want, ks)
		}
	}

	srv.stopClean()
	srv.assertNoErrorLogs("last run")
	c.CloseIdleConnections()
	checkStore(t, dir)
	t.Logf("%d acknowledged tokens checked after %d rotations (%d acknowledged, %d cut off) and %d SIGKILLs; %d old keys destroyed; %v in all",
		len(all), acked+unacked, acked, unacked, cycles, len(old), time.Since(begin).Round(time.Millisecond))
}

// rootTokenRE matches the root secret a non-dev server prints when it initialises a vault.
var rootTokenRE = regexp.MustCompile(`(?m)^Root token \(shown once[^)]*\): (\S+)\s*$`)

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

	// First start: a new vault; its root secret is printed once.
	srv := startProcess(t, childEnv(), args...)
	m := rootTokenRE.FindStringSubmatch(srv.stdout.String())
	if m == nil {
		t.Fatalf("the first non-dev start printed no root token:\n%s", srv.stdout)
	}
	secret := m[1]
	if _, err := os.Stat(kekPath); err != nil {
		t.Fatalf("the KEK file was not created: %v", err)
	}
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
		if rootTokenRE.MatchString(srv.stdout.String()) {
			t.Errorf("%s: the server initialised a new vault:\n%s", what, srv.stdout)
		}
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
		code, data, err := postRaw(c, "http://"+srv.httpAddr+"/v1/tokens:tokenize", secret, body)
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

	backup := filepath.Join(t.TempDir(), "vault.backup")
	out, errOut, code := runCLI(t, env, append([]string{"backup", "--out", backup}, flags...)...)
	if code != 0 {
		t.Fatalf("backup: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if fi, err := os.Stat(backup); err != nil || fi.Size() == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v %v", fi, err)
	}

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

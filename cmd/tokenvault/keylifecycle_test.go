package main

// Data key rotation and rewrap across SIGKILLs, then disabling and destroying the old keys.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
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
					got, err := tokenizeAcked(c, srv.httpAddr, subjectLoad.items(wrng, 0, w, &seq, batch))
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
		ld := runLoad(t, subjectLoad, c, srv.httpAddr, seed, cycle+1, workers, log, &st)
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
				KeyID uint32 `json:"keyId"`
				State string `json:"state"`
			} `json:"keys"`
			RewrapDone bool `json:"rewrapDone"`
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

package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOfflineCommandsRefuseLiveReplicas: a PostgreSQL store has no lock, so keys rewrap-kek
// and migrate --from check the replicas' heartbeats: while a replica runs both refuse,
// naming it, and change nothing; once it has stopped cleanly both run.
func TestOfflineCommandsRefuseLiveReplicas(t *testing.T) {
	url := pg.DB(t)
	dir := t.TempDir()
	kekPath := filepath.Join(dir, "kek.json")
	newKEK := filepath.Join(dir, "kek2.json")
	root := initPostgres(t, url, kekPath)
	srv := startProcess(t, childEnv(), replicaArgs(url, kekPath, "replica-a")...)
	c := newHTTPClient()
	acks, err := tokenizeAckedAs(c, srv.httpAddr, root, []tokenizeItem{{Value: "4556737586899855", Template: "pan"}})
	if err != nil {
		t.Fatal(err)
	}

	rewrap := []string{"keys", "rewrap-kek", "--store", url, "--old-kek-file", kekPath, "--new-kek-file", newKEK}
	migrate := []string{"migrate", "--from", url, "--to-data", filepath.Join(dir, "copy")}
	// The replica's first heartbeat is written in the background once it serves.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, errOut, code := runCLI(t, childEnv(), rewrap...)
		if code != 0 && strings.Contains(errOut, "replica-a") {
			if !strings.Contains(errOut, "stop every replica before keys rewrap-kek") {
				t.Errorf("rewrap-kek refusal does not say what to do: %q", errOut)
			}
			break
		}
		if code == 0 {
			t.Fatalf("keys rewrap-kek ran while replica-a serves")
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys rewrap-kek beside a running replica: exit %d, stderr %q; want a refusal naming replica-a", code, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if _, errOut, code := runCLI(t, childEnv(), migrate...); code == 0 || !strings.Contains(errOut, "replica-a") || !strings.Contains(errOut, "migrate --from") {
		t.Errorf("migrate --from beside a running replica: exit %d, stderr %q; want a refusal naming replica-a", code, errOut)
	}
	// Nothing changed: the replica still serves with its KEK.
	verifyAckedAs(t, c, srv.httpAddr, root, acks)
	srv.stopClean()
	c.CloseIdleConnections()

	if out, errOut, code := runCLI(t, childEnv(), rewrap...); code != 0 {
		t.Fatalf("keys rewrap-kek after the replica stopped: exit %d\n%s%s", code, out, errOut)
	}
	if out, errOut, code := runCLI(t, childEnv(), migrate...); code != 0 {
		t.Fatalf("migrate --from after the replica stopped: exit %d\n%s%s", code, out, errOut)
	}
	srv = startProcess(t, childEnv(), replicaArgs(url, newKEK, "replica-b")...)
	verifyAckedAs(t, c, srv.httpAddr, root, acks)
	srv.stopClean()
}

package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// keys status prints a REPLICAS table after the keys once the server has written its
// heartbeat: one row, "local" (bbolt, no replica id), live, with the primary key of the keys
// table; -o json carries the same replica under "replicas".
func TestKeysStatusShowsReplicas(t *testing.T) {
	srv := startServer(t, t.TempDir())
	defer srv.stopClean()
	env := childEnv("TOKENVAULT_ADDR="+srv.grpcAddr, "TOKENVAULT_TOKEN="+rootToken)
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, env, args...)
		if code != 0 {
			t.Fatalf("tokenvault %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}

	// The first heartbeat comes as the server starts its background work: poll for it.
	var out string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if out = run("keys", "status"); strings.Contains(out, "\nREPLICAS\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys status shows no REPLICAS table after 30s:\n%s", out)
		}
	}
	primary := regexp.MustCompile(`(?m)^(\d+)\s+primary\s`).FindStringSubmatch(out)
	if primary == nil {
		t.Fatalf("keys status: no primary key row:\n%s", out)
	}
	_, replicas, _ := strings.Cut(out, "\nREPLICAS\n")
	lines := strings.Split(strings.TrimSuffix(replicas, "\n"), "\n")
	if len(lines) != 2 || !regexp.MustCompile(`^ID\s+LIVE\s+PRIMARY\s+KEYRING\s+LAST SEEN$`).MatchString(lines[0]) {
		t.Fatalf("keys status REPLICAS table, want a header and one row:\n%s", out)
	}
	row := regexp.MustCompile(`^local\s+true\s+` + primary[1] + `\s+\d+\s+(\S+)$`).FindStringSubmatch(lines[1])
	if row == nil {
		t.Fatalf("keys status replica row %q, want local, live, primary key %s", lines[1], primary[1])
	}
	if _, err := time.Parse(time.RFC3339, row[1]); err != nil {
		t.Errorf("keys status replica LAST SEEN %q: %v", row[1], err)
	}

	var js struct {
		Replicas []struct {
			ID           string    `json:"id"`
			Live         bool      `json:"live"`
			PrimaryKeyID uint32    `json:"primaryKeyId"`
			LastSeen     time.Time `json:"lastSeen"`
			LeaseHolder  bool      `json:"leaseHolder"`
		} `json:"replicas"`
	}
	out = run("keys", "status", "-o", "json")
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("keys status -o json: %v\n%s", err, out)
	}
	if len(js.Replicas) != 1 {
		t.Fatalf("keys status -o json: %d replicas, want 1:\n%s", len(js.Replicas), out)
	}
	r := js.Replicas[0]
	if r.ID != "local" || !r.Live || !r.LeaseHolder || strconv.FormatUint(uint64(r.PrimaryKeyID), 10) != primary[1] || r.LastSeen.IsZero() {
		t.Errorf("keys status -o json replica = %+v, want local, live, lease holder, primary key %s, last seen set", r, primary[1])
	}
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The progress line: drawn in place with \r on a terminal, padded over a longer earlier line,
// throttled except for show, blanked by clear; nothing at all when not on a terminal.
func TestProgressPrinter(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, on: true}
	p.update("backup: %s bytes", thousands(1234567))
	p.update("x: %d", 1)
	p.clear()
	p.clear() // a second clear writes nothing
	want := "\rbackup: 1,234,567 bytes…" + "\rx: 1…" + strings.Repeat(" ", len("backup: 1,234,567 bytes…")-len("x: 1…")) +
		"\r" + strings.Repeat(" ", len("x: 1…")) + "\r"
	if buf.String() != want {
		t.Errorf("terminal progress wrote %q, want %q", buf.String(), want)
	}

	buf.Reset()
	p = &progress{w: &buf, on: true, every: time.Hour}
	p.update("a")
	p.update("b") // within the hour: skipped
	p.show("c")   // a phase: drawn anyway
	if got := buf.String(); got != "\ra…\rc…" {
		t.Errorf("throttled progress wrote %q, want %q", got, "\ra…\rc…")
	}

	buf.Reset()
	p = &progress{w: &buf, on: false}
	p.update("backup: %d", 1)
	p.show("phase")
	p.clear()
	var nilProgress *progress
	nilProgress.update("x")
	nilProgress.clear()
	if buf.Len() != 0 {
		t.Errorf("progress off a terminal wrote %q, want nothing", buf.String())
	}
	if newProgress(&buf).on {
		t.Error("a bytes.Buffer counts as a terminal")
	}

	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 12345: "12,345", 1234567: "1,234,567", -5: "0"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// Issue 14: long commands print progress only on a terminal. Run as the tests run them
// (stderr a pipe), backup, audit export and bench -o json write no progress to stderr, only
// their final lines; keys rotate --wait returns only once keys status shows the rewrap done,
// and prints the final counts (text and -o json).
func TestProgressCommands(t *testing.T) {
	srv := startServer(t, t.TempDir())
	defer srv.stopClean()
	env := childEnv("TOKENVAULT_ADDR="+srv.grpcAddr, "TOKENVAULT_TOKEN="+rootToken)
	run := func(args ...string) (string, string) {
		t.Helper()
		out, errOut, code := runCLI(t, env, args...)
		if code != 0 {
			t.Fatalf("tokenvault %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out, errOut
	}
	// Enough records for a rewrap of several batches (256 records each, 20 ms apart).
	const records = 3000
	var values strings.Builder
	for i := range records {
		fmt.Fprintf(&values, "progress value %d\n", i)
	}
	if _, errOut, code := runCLIStdin(t, env, values.String(), "tokenize", "--template", "opaque"); code != 0 {
		t.Fatalf("tokenize: exit %d: %s", code, errOut)
	}

	dir := t.TempDir()
	out, errOut := run("backup", "--out", filepath.Join(dir, "b.db"))
	if errOut != "" || !regexp.MustCompile(`^wrote \d+ bytes to `).MatchString(out) {
		t.Errorf("backup off a terminal: stdout %q, stderr %q; want only the final line", out, errOut)
	}
	out, errOut = run("audit", "export", "--out", filepath.Join(dir, "audit.jsonl"))
	if out != "" || !regexp.MustCompile(`^wrote \d+ lines to [^\r…]*\n$`).MatchString(errOut) {
		t.Errorf("audit export off a terminal: stdout %q, stderr %q; want only the final line", out, errOut)
	}
	out, errOut = run("bench", "--op", "detokenize", "--pool", "2000", "--batch", "10", "--concurrency", "2",
		"--duration", "200ms", "--warmup", "0s", "-o", "json")
	if errOut != "" || !json.Valid([]byte(out)) {
		t.Errorf("bench -o json off a terminal: stderr %q (want nothing), stdout valid JSON: %v", errOut, json.Valid([]byte(out)))
	}

	// keys rotate --wait, text.
	out, errOut = run("keys", "rotate", "--wait")
	m := regexp.MustCompile(`^new primary data key (\d+); rewrap done: (\d+) rewrapped, 0 of (\d+) not yet under it\n$`).FindStringSubmatch(out)
	if m == nil || errOut != "" {
		t.Fatalf("keys rotate --wait: stdout %q, stderr %q", out, errOut)
	}
	if n, _ := strconv.Atoi(m[2]); n < records {
		t.Errorf("keys rotate --wait rewrapped %d records, want at least %d", n, records)
	}
	type keyStatus struct {
		RewrapTarget uint32 `json:"rewrapTarget"`
		RewrapDone   bool   `json:"rewrapDone"`
		Remaining    string `json:"remaining"`
		Rewrapped    string `json:"rewrapped"`
	}
	status := func(out string) keyStatus {
		t.Helper()
		var ks keyStatus
		if err := json.Unmarshal([]byte(out), &ks); err != nil {
			t.Fatalf("key status JSON %q: %v", out, err)
		}
		return ks
	}
	// Right after it returned, keys status agrees: the rewrap to that key is done.
	out, _ = run("keys", "status", "-o", "json")
	if ks := status(out); strconv.Itoa(int(ks.RewrapTarget)) != m[1] || !ks.RewrapDone || ks.Remaining != "0" {
		t.Errorf("after keys rotate --wait, keys status = %+v, want the rewrap to %s done", ks, m[1])
	}
	// keys rotate --wait -o json: the final status of the new rotation.
	out, errOut = run("keys", "rotate", "--wait", "-o", "json")
	ks := status(out)
	if !ks.RewrapDone || ks.Remaining != "0" || strconv.Itoa(int(ks.RewrapTarget)) == m[1] || errOut != "" {
		t.Errorf("keys rotate --wait -o json = %+v, stderr %q; want a new key's finished rewrap", ks, errOut)
	}
	if n, _ := strconv.Atoi(ks.Rewrapped); n < records {
		t.Errorf("keys rotate --wait -o json rewrapped %s, want at least %d", ks.Rewrapped, records)
	}
}

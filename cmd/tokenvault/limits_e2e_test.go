package main

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var metricsLineRE = regexp.MustCompile(`(?m)^metrics: (\S+)$`)

// The limit flags reach the server from flags and TOKENVAULT_* variables, and
// --metrics-addr serves /metrics without credentials while the internal listener's needs one
// (finding 4 and 5 of issue 11).
func TestServeLimitFlagsAndMetricsListener(t *testing.T) {
	p := startProcess(t, childEnv("TOKENVAULT_HTTP_MAX_BODY=2048"),
		append(serveArgs(), "--data", t.TempDir(), "--dev-root-token", rootToken, "--metrics-addr", "127.0.0.1:0", "--max-conns", "50")...)
	defer p.stopClean()
	m := metricsLineRE.FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("no metrics: line in\n%s", p.stdout)
	}
	c := newHTTPClient()
	get := func(url, secret string) (int, string) {
		code, body, err := httpDo(c, "GET", url, secret, nil)
		if err != nil {
			t.Fatal(err)
		}
		return code, string(body)
	}
	if code, body := get("http://"+m[1]+"/metrics", ""); code != 200 || !strings.Contains(body, "tokenvault_sealed 0") {
		t.Errorf("metrics listener = %d", code)
	}
	if code, _ := get("http://"+p.httpAddr+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("internal /metrics without credentials = %d, want 401", code)
	}
	if code, _ := get("http://"+p.httpAddr+"/metrics", rootToken); code != 200 {
		t.Errorf("internal /metrics as admin = %d, want 200", code)
	}
	big := []byte(`{"items":[{"value":"` + strings.Repeat("1", 4096) + `","template":"opaque"}]}`)
	code, body, err := httpDo(c, "POST", "http://"+p.httpAddr+"/v1/tokens:tokenize", rootToken, big)
	if err != nil || code != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "2048") {
		t.Errorf("tokenize over TOKENVAULT_HTTP_MAX_BODY=2048 = %d %s %v, want 413", code, body, err)
	}
	code, _, err = httpDo(c, "POST", "http://"+p.httpAddr+"/v1/tokens:tokenize", rootToken, []byte(`{"items":[{"value":"4111111111111111","template":"pan"}]}`))
	if err != nil || code != 200 {
		t.Errorf("small tokenize = %d %v", code, err)
	}
}

func TestServeRefusesNonPositiveBodyLimits(t *testing.T) {
	stderr := serveMustRefuse(t, append(serveArgs(), "--data", t.TempDir(), "--vendor-max-body", "0")...)
	if !strings.Contains(stderr, "--vendor-max-body") {
		t.Errorf("refusal does not name the flag:\n%s", stderr)
	}
}

// --commit-delay is bounded: a negative or too long delay is refused with its range.
func TestServeRefusesCommitDelayOutOfRange(t *testing.T) {
	for _, d := range []string{"-1ms", "1s"} {
		stderr := serveMustRefuse(t, append(serveArgs(), "--data", t.TempDir(), "--commit-delay", d)...)
		if !strings.Contains(stderr, "--commit-delay must be between 0 and 100ms") {
			t.Errorf("--commit-delay %s: refusal does not name the flag and its range:\n%s", d, stderr)
		}
	}
}

// --commit-delay reaches the store: under many concurrent tokenize calls the server's
// committer holds groups back (tokenvault_store_commit_waits_total grows), and without the
// flag it never does; the writes per fsync show in the commit counters.
func TestServeCommitDelayFlag(t *testing.T) {
	waits := func(t *testing.T, extra ...string) (waits, commits, writes float64) {
		p := startProcess(t, nil, append(append(serveArgs(), "--data", t.TempDir(), "--dev-root-token", rootToken), extra...)...)
		defer p.stopClean()
		c := newHTTPClient()
		errs := make(chan error, 32)
		for g := range 32 {
			go func() {
				var err error
				for i := 0; i < 10 && err == nil; i++ {
					body := fmt.Appendf(nil, `{"items":[{"value":"4111111111%02d%04d","template":"pan"}]}`, g, i)
					var code int
					if code, _, err = httpDo(c, "POST", "http://"+p.httpAddr+"/v1/tokens:tokenize", rootToken, body); err == nil && code != 200 {
						err = fmt.Errorf("tokenize = %d", code)
					}
				}
				errs <- err
			}()
		}
		for range 32 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		code, body, err := httpDo(c, "GET", "http://"+p.httpAddr+"/metrics", rootToken, nil)
		if err != nil || code != 200 {
			t.Fatalf("/metrics = %d %v", code, err)
		}
		metric := func(name string) float64 { return metricValue(t, body, name) }
		if to, w := metric("tokenvault_store_commit_waits_timed_out_total"), metric("tokenvault_store_commit_waits_total"); to > w {
			t.Errorf("%v waits timed out of %v waits", to, w)
		}
		return metric("tokenvault_store_commit_waits_total"), metric("tokenvault_store_commits_total"), metric("tokenvault_store_writes_total")
	}
	if w, c, n := waits(t, "--commit-delay", "20ms"); w == 0 || c == 0 || n < 320 {
		t.Errorf("--commit-delay 20ms, 320 concurrent tokenize calls: %v groups waited, %v commits, %v writes; want waits, and at least 320 writes", w, c, n)
	}
	if w, c, n := waits(t); w != 0 || c == 0 || n < 320 {
		t.Errorf("no --commit-delay: %v groups waited, %v commits, %v writes; want no wait", w, c, n)
	}
}

// --store-key-filter reaches the store: by default the bbolt store builds its key filter
// (tokenvault_store_key_filter_bytes > 0) and new values' reads are answered by it
// (tokenvault_store_key_filter_skips_total grows with tokenize calls); with false, neither.
func TestServeKeyFilterFlag(t *testing.T) {
	run := func(t *testing.T, extra ...string) (bytes, skips float64) {
		p := startProcess(t, nil, append(append(serveArgs(), "--data", t.TempDir(), "--dev-root-token", rootToken), extra...)...)
		defer p.stopClean()
		c := newHTTPClient()
		metric := func(name string) float64 {
			t.Helper()
			code, body, err := httpDo(c, "GET", "http://"+p.httpAddr+"/metrics", rootToken, nil)
			if err != nil || code != 200 {
				t.Fatalf("/metrics = %d %v", code, err)
			}
			return metricValue(t, body, name)
		}
		// The first build runs in the background at start (an empty store: at once).
		for deadline := time.Now().Add(10 * time.Second); len(extra) == 0 && metric("tokenvault_store_key_filter_bytes") == 0; {
			if time.Now().After(deadline) {
				t.Fatal("tokenvault_store_key_filter_bytes still 0 after 10 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// New values are looked up in the B-tree once their bucket is there: after the
		// first merge (every second).
		tokenize := func(i int) {
			body := fmt.Appendf(nil, `{"items":[{"value":"41111111%08d","template":"pan"}]}`, i)
			if code, out, err := httpDo(c, "POST", "http://"+p.httpAddr+"/v1/tokens:tokenize", rootToken, body); err != nil || code != 200 {
				t.Fatalf("tokenize = %d %v %s", code, err, out)
			}
		}
		tokenize(0)
		time.Sleep(2 * time.Second)
		for i := 1; i <= 20; i++ {
			tokenize(i)
		}
		// Under load the first merge may come later: with the filter on, go on with new
		// values until it answers one (at most 20 s).
		for i, deadline := 21, time.Now().Add(20*time.Second); len(extra) == 0 && metric("tokenvault_store_key_filter_skips_total") == 0 && time.Now().Before(deadline); i++ {
			tokenize(i)
			time.Sleep(100 * time.Millisecond)
		}
		return metric("tokenvault_store_key_filter_bytes"), metric("tokenvault_store_key_filter_skips_total")
	}
	if b, s := run(t); b == 0 || s == 0 {
		t.Errorf("default: key filter %v bytes, %v reads answered after 20 new values; want both", b, s)
	}
	if b, s := run(t, "--store-key-filter=false"); b != 0 || s != 0 {
		t.Errorf("--store-key-filter=false: key filter %v bytes, %v reads answered; want none", b, s)
	}
}

// metricValue is the value of the unlabelled metric name in a /metrics body.
func metricValue(t *testing.T, body []byte, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	f, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

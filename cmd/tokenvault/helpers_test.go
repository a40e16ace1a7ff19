package main

// Helpers for the binary-level tests in e2e_test.go: TestMain builds the tokenvault binary
// once; startServer runs it as a child process on 127.0.0.1:0 ports.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// raceEnabled is set by race_test.go when the tests run with -race.
var raceEnabled bool

// binPath is the tokenvault binary built by TestMain.
var binPath string

const (
	rootToken = "root"
	// startTimeout and exitTimeout are generous: the machine may be small and busy, and
	// the binary may carry the race detector.
	startTimeout = 60 * time.Second
	exitTimeout  = 30 * time.Second
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokenvault-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(2)
	}
	binPath = filepath.Join(dir, "tokenvault")
	// go test puts its own GOROOT/bin first on the PATH of the test binary.
	goBin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the go command is needed to build the binary under test:", err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, ".")
	build := exec.Command(goBin, args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %s: %v\n", strings.Join(args, " "), err)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// childEnv is the test's environment without TOKENVAULT_* variables, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TOKENVAULT_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// syncBuffer is a bytes.Buffer safe for one writer (exec's copying goroutine) and
// concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a running `tokenvault serve` child process.
type proc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{} // closed when the process has exited and its output is read
	waitErr        error         // valid after done

	grpcAddr, httpAddr, vendorAddr string
}

var listeningRE = regexp.MustCompile(`(?m)^listening: grpc=(\S+) http=(\S+) vendor=(\S+)$`)

// serveArgs are the arguments of a dev server on ephemeral loopback ports, without --data.
func serveArgs() []string {
	return []string{"serve", "--dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--vendor-addr", "127.0.0.1:0"}
}

// startServer runs `tokenvault serve --dev --data dataDir --dev-root-token root` on
// ephemeral ports and waits for its `listening:` line.
func startServer(t *testing.T, dataDir string, extra ...string) *proc {
	t.Helper()
	args := append(serveArgs(), "--data", dataDir, "--dev-root-token", rootToken)
	return startProcess(t, childEnv(), append(args, extra...)...)
}

// startProcess runs the binary with args and waits for the `listening:` line on stdout.
// A cleanup kills the process if the test left it running.
func startProcess(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	s := &proc{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(binPath, args...)
	s.cmd.Env = env
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting tokenvault: %v", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	deadline := time.After(startTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := listeningRE.FindStringSubmatch(s.stdout.String()); m != nil {
			s.grpcAddr, s.httpAddr, s.vendorAddr = m[1], m[2], m[3]
			return s
		}
		select {
		case <-s.done:
			t.Fatalf("tokenvault exited before listening (%v)\nstdout:\n%s\nstderr:\n%s", s.waitErr, s.stdout, s.stderr)
		case <-deadline:
			_ = s.cmd.Process.Kill()
			<-s.done
			t.Fatalf("tokenvault did not print its listening line in %v\nstdout:\n%s\nstderr:\n%s", startTimeout, s.stdout, s.stderr)
		case <-tick.C:
		}
	}
}

// exited reports whether the process has exited.
func (s *proc) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *proc) kill() {
	s.t.Helper()
	if s.exited() {
		s.t.Fatalf("tokenvault had already exited (%v) before SIGKILL\nstderr:\n%s", s.waitErr, s.stderr)
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		s.t.Fatalf("SIGKILL: %v", err)
	}
	s.wait()
}

// stop sends SIGTERM, waits for the exit and returns the exit code.
func (s *proc) stop() int {
	s.t.Helper()
	if s.exited() {
		s.t.Fatalf("tokenvault had already exited (%v) before SIGTERM\nstderr:\n%s", s.waitErr, s.stderr)
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("SIGTERM: %v", err)
	}
	return s.wait()
}

// wait waits up to exitTimeout for the process to exit and returns its exit code (-1 when
// killed by a signal). On timeout it kills the process and fails the test.
func (s *proc) wait() int {
	s.t.Helper()
	select {
	case <-s.done:
	case <-time.After(exitTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
		s.t.Fatalf("tokenvault did not exit within %v\nstderr:\n%s", exitTimeout, s.stderr)
	}
	return s.cmd.ProcessState.ExitCode()
}

// stopClean sends SIGTERM and fails the test unless the process exits 0.
func (s *proc) stopClean() {
	s.t.Helper()
	if code := s.stop(); code != 0 {
		s.t.Fatalf("after SIGTERM tokenvault exited %d (%v), want 0\nstderr:\n%s", code, s.waitErr, s.stderr)
	}
}

// runCLI runs the binary to completion (at most a minute) and returns stdout, stderr and
// the exit code.
func runCLI(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("tokenvault %s: did not finish in a minute\nstderr:\n%s", strings.Join(args, " "), errb.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("tokenvault %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode()
}

// newHTTPClient returns a client with its own connection pool, so that a killed server's
// connections do not leak into the next one.
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout:   time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
	}
}

// postRaw sends body to url with the bearer secret (none if empty) and returns the status
// and the whole response body. err is a transport error (connection refused, reset, …).
func postRaw(c *http.Client, url, secret string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	return resp.StatusCode, data, nil
}

// API shapes (only the fields the tests use).
type tokenizeItem struct {
	Value    string `json:"value"`
	Template string `json:"template"`
	Domain   string `json:"domain,omitempty"`
	Subject  string `json:"subject,omitempty"`
}

type detokenizeItem struct {
	Token    string `json:"token"`
	Domain   string `json:"domain,omitempty"`
	Template string `json:"template,omitempty"`
}

type itemError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type result struct {
	Token string     `json:"token"`
	Value string     `json:"value"`
	Error *itemError `json:"error"`
}

type resultsResp struct {
	Results []result `json:"results"`
}

// call posts a JSON request and decodes a 200 response; any failure is returned as an error.
func call(c *http.Client, httpAddr, path, secret string, req any) ([]result, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	code, data, err := postRaw(c, "http://"+httpAddr+path, secret, body)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %s", path, code, data)
	}
	var r resultsResp
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: decoding %q: %v", path, data, err)
	}
	return r.Results, nil
}

func tokenize(c *http.Client, httpAddr, secret string, items []tokenizeItem) ([]result, error) {
	res, err := call(c, httpAddr, "/v1/tokens:tokenize", secret, map[string]any{"items": items})
	if err == nil && len(res) != len(items) {
		err = fmt.Errorf("tokenize: %d results for %d items", len(res), len(items))
	}
	return res, err
}

func detokenize(c *http.Client, httpAddr, secret string, items []detokenizeItem) ([]result, error) {
	res, err := call(c, httpAddr, "/v1/tokens:detokenize", secret, map[string]any{"items": items, "purpose": "e2e-test"})
	if err == nil && len(res) != len(items) {
		err = fmt.Errorf("detokenize: %d results for %d items", len(res), len(items))
	}
	return res, err
}

// acked is one tokenization the server acknowledged with a 200.
type acked struct {
	value, template, domain, token string
}

// ackLog collects acknowledged tokenizations from concurrent goroutines.
type ackLog struct {
	mu   sync.Mutex
	list []acked
}

func (l *ackLog) add(a ...acked) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, a...)
}

func (l *ackLog) snapshot() []acked {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]acked(nil), l.list...)
}

// verifyAcked checks that every acknowledged token detokenizes to its value and that
// tokenizing the values again gives the same tokens. It reports at most a few examples.
func verifyAcked(t *testing.T, c *http.Client, httpAddr string, all []acked) {
	t.Helper()
	const chunk = 1000
	lost, wrong, changed := 0, 0, 0
	var examples []string
	note := func(s string) {
		if len(examples) < 5 {
			examples = append(examples, s)
		}
	}
	for start := 0; start < len(all); start += chunk {
		part := all[start:min(start+chunk, len(all))]
		ditems := make([]detokenizeItem, len(part))
		titems := make([]tokenizeItem, len(part))
		for i, a := range part {
			ditems[i] = detokenizeItem{Token: a.token, Domain: a.domain}
			titems[i] = tokenizeItem{Value: a.value, Template: a.template, Domain: a.domain}
		}
		res, err := detokenize(c, httpAddr, rootToken, ditems)
		if err != nil {
			t.Fatalf("detokenizing acknowledged tokens: %v", err)
		}
		for i, r := range res {
			switch {
			case r.Error != nil:
				lost++
				note(fmt.Sprintf("token %q (%s, value %q) lost: %s %s", part[i].token, part[i].template, part[i].value, r.Error.Code, r.Error.Message))
			case r.Value != part[i].value:
				wrong++
				note(fmt.Sprintf("token %q detokenized to %q, want %q", part[i].token, r.Value, part[i].value))
			}
		}
		res, err = tokenize(c, httpAddr, rootToken, titems)
		if err != nil {
			t.Fatalf("tokenizing acknowledged values again: %v", err)
		}
		for i, r := range res {
			if r.Error != nil || r.Token != part[i].token {
				changed++
				note(fmt.Sprintf("value %q (%s) now tokenizes to %q (error %+v), was %q", part[i].value, part[i].template, r.Token, r.Error, part[i].token))
			}
		}
	}
	if lost+wrong+changed > 0 {
		t.Errorf("of %d acknowledged tokens: %d lost, %d detokenize to a wrong value, %d values tokenize differently now; e.g.\n  %s",
			len(all), lost, wrong, changed, strings.Join(examples, "\n  "))
	}
}

// assertNoErrorLogs fails the test if the server logged at ERROR level.
func (s *proc) assertNoErrorLogs(when string) {
	s.t.Helper()
	if logs := s.stderr.String(); strings.Contains(logs, `"level":"ERROR"`) {
		s.t.Errorf("%s: the server logged errors:\n%s", when, logs)
	}
}

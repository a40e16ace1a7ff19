package main

// Running the binary: a server as a child process (proc), a CLI command to completion
// (runCLI), and the checks on a stopped server's data directory.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

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

// assertNoErrorLogs fails the test if the server logged at ERROR level.
func (s *proc) assertNoErrorLogs(when string) {
	s.t.Helper()
	if logs := s.stderr.String(); strings.Contains(logs, `"level":"ERROR"`) {
		s.t.Errorf("%s: the server logged errors:\n%s", when, logs)
	}
}

// runCLI runs the binary to completion (at most a minute) and returns stdout, stderr and
// the exit code.
func runCLI(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCLIStdin(t, env, "", args...)
}

// runCLIStdin is runCLI with stdin.
func runCLIStdin(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
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

// waitFor polls cond every interval until it is true or timeout passes; it reports whether
// cond became true.
func waitFor(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

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

// copyFile copies src to dst with mode perm.
func copyFile(t *testing.T, src, dst string, perm os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
	if err := os.WriteFile(dst, data, perm); err != nil {
		t.Fatalf("copying to %s: %v", dst, err)
	}
}

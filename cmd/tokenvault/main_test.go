package main

// Binary-level tests: TestMain builds the tokenvault binary once (with the race detector when
// the tests run with -race); the tests run it as a child process on 127.0.0.1:0 ports and talk
// to it over HTTP (httpapi_test.go) and through its own CLI (runCLI).

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// raceEnabled is set by race_test.go when the tests run with -race.
var raceEnabled bool

// The build stamp TestMain gives the binary under test.
const (
	e2eVersion   = "v0.0.0-e2e"
	e2eCommit    = "0123456789abcdef0123456789abcdef01234567"
	e2eBuildDate = "2026-12-03T00:00:00Z"
)

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
	// The version the release build sets (docs/install.md), so TestVersion sees it.
	args := []string{"build", "-o", binPath, "-ldflags=-X main.version=" + e2eVersion + " -X main.commit=" + e2eCommit + " -X main.buildDate=" + e2eBuildDate}
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
	pg.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

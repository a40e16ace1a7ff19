package main

import (
	"encoding/json"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// Issue 14: no tokenvault version / --version. Both print the version, commit and build time
// set at build time, and the Go version; -o json gives the same as fields.
func TestVersion(t *testing.T) {
	out, err := exec.Command(binPath, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("version -o json: %v", err)
	}
	var bi buildInfo
	if err := json.Unmarshal(out, &bi); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, out)
	}
	want := buildInfo{Version: e2eVersion, Commit: e2eCommit, BuildTime: e2eBuildDate, GoVersion: runtime.Version()}
	if bi != want {
		t.Errorf("version -o json = %+v, want %+v", bi, want)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := exec.Command(binPath, args...).Output()
		if err != nil {
			t.Fatalf("%s: %v", args, err)
		}
		for _, w := range []string{"tokenvault " + e2eVersion, e2eCommit, e2eBuildDate, runtime.Version()} {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s does not print %q:\n%s", args, w, out)
			}
		}
	}
}

// Without build-time values the binary still says something true: "devel" and "unknown", not
// empty fields.
func TestBuildInfoDefaults(t *testing.T) {
	bi := readBuildInfo() // the test binary: no -X flags, GOFLAGS may say -buildvcs=false
	if bi.Version == "" || bi.Commit == "" || bi.BuildTime == "" || bi.GoVersion != runtime.Version() {
		t.Errorf("readBuildInfo() = %+v", bi)
	}
}

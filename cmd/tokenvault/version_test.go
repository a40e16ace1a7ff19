package main

import (
	"encoding/json"
	"net/http"
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

// The served OpenAPI document says which build serves it: info.version is the binary's version
// (the committed document says 0.0.0-dev).
func TestServedOpenAPIVersion(t *testing.T) {
	srv := startServer(t, t.TempDir())
	resp, err := http.Get("http://" + srv.httpAddr + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		OpenAPI string `json:"openapi"`
		Info    struct {
			Title, Version string
		} `json:"info"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/openapi.json: %d %v", resp.StatusCode, err)
	}
	if doc.OpenAPI != "3.1.0" || doc.Info.Title != "tokenvault API" || doc.Info.Version != e2eVersion {
		t.Errorf("/openapi.json says openapi %q, info %+v; want 3.1.0, tokenvault API, %s", doc.OpenAPI, doc.Info, e2eVersion)
	}
}

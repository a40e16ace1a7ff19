package server_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestImportDirection keeps the architecture one-way: cmd → server → vault → crypto, with
// generated proto code and gRPC used only by server, clients and cmd, and internal/testenv
// imported by tests only.
func TestImportDirection(t *testing.T) {
	const mod = "github.com/tokenvault/tokenvault/"
	rules := []struct {
		pkgs      string
		forbidden []string
	}{
		// (crypto/kek's Cloud KMS client brings gRPC in as a transport; crypto code does not use it.)
		{"../crypto/...", []string{mod + "vault", mod + "server", mod + "proto", mod + "clients"}},
		{"../vault/...", []string{mod + "server", mod + "proto", mod + "clients", "google.golang.org/grpc", "github.com/grpc-ecosystem"}},
		{"../clients/go", []string{mod + "server", mod + "vault", mod + "crypto"}},
		// The web console speaks HTTP to the browser; the server wires it to gRPC.
		{"../server/console", []string{mod + "proto", "google.golang.org/grpc", "github.com/grpc-ecosystem"}},
	}
	// internal/testenv is test support: no package imports it, only _test.go files do.
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", "../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list ../...: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, " ")
		if pkg != mod+"internal/testenv" && slices.Contains(strings.Fields(deps), mod+"internal/testenv") {
			t.Errorf("%s depends on %sinternal/testenv, which is for tests only", pkg, mod)
		}
	}
	for _, r := range rules {
		out, err := exec.Command("go", "list", "-deps", r.pkgs).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", r.pkgs, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range r.forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") || (strings.HasSuffix(f, "grpc") && strings.HasPrefix(dep, f)) {
					t.Errorf("%s depends on %s", r.pkgs, dep)
				}
			}
		}
	}
}

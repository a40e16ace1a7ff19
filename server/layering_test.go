package server_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps the architecture one-way: cmd → server → vault → crypto, with
// generated proto code and gRPC used only by server, clients and cmd.
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

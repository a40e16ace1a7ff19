package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesListenerSettings: serve checks its listeners with server.Config.Validate and
// its TLS flags with server.TLSFiles.Check before it touches the data directory.
func TestServeRefusesListenerSettings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--http-addr", "0.0.0.0:0"}, "non-loopback HTTP address 0.0.0.0:0"},
		{[]string{"--grpc-addr", ":0"}, "non-loopback gRPC address :0"},
		{[]string{"--vendor-addr", "0.0.0.0:0"}, "non-loopback vendor address 0.0.0.0:0"},
		{[]string{"--metrics-addr", "0.0.0.0:0"}, "non-loopback metrics address 0.0.0.0:0"},
		{[]string{"--tls-cert", "c.pem"}, "--tls-cert, --tls-key: server: a TLS certificate and its key go together"},
		{[]string{"--vendor-tls-key", "k.pem"}, "--vendor-tls-cert, --vendor-tls-key, --vendor-client-ca: server: a TLS certificate and its key go together"},
		{[]string{"--vendor-client-ca", "ca.pem"}, "--vendor-tls-cert, --vendor-tls-key, --vendor-client-ca: server: a client CA needs a TLS certificate and key"},
		{[]string{"--client-ca", "ca.pem"}, "--tls-cert, --tls-key, --client-ca: server: a client CA needs a TLS certificate and key"},
		{[]string{"--jwt-issuer", "https://issuer.test"}, "needs both an issuer and an audience"},
		{[]string{"--jwt-audience", "tokenvault", "--jwt-jwks-file", "jwks.json"}, "needs both an issuer and an audience"},
		{[]string{"--jwt-issuer", "https://issuer.test", "--jwt-audience", "tokenvault"}, "exactly one key source"},
		{[]string{"--jwt-issuer", "https://issuer.test", "--jwt-audience", "tokenvault", "--jwt-jwks-file", "jwks.json", "--jwt-jwks-ca", "ca.pem"}, "--jwt-jwks-ca goes with --jwt-jwks-url"},
		{[]string{"--jwt-issuer", "https://issuer.test", "--jwt-audience", "tokenvault", "--jwt-jwks-file", "jwks.json", "--jwt-jwks-url", "https://issuer.test/keys"}, "exactly one key source"},
	} {
		data := filepath.Join(t.TempDir(), "data")
		args := append([]string{"serve", "--data", data, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--vendor-addr", "127.0.0.1:0"}, tc.args...)
		_, err := execute(t, args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %v: %v, want an error containing %q", tc.args, err, tc.want)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Errorf("serve %v: the data directory was created (%v)", tc.args, err)
		}
	}
}

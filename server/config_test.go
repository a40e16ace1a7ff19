package server_test

import (
	"crypto/tls"
	"testing"

	"github.com/tokenvault/tokenvault/server"
)

func TestConfigValidate(t *testing.T) {
	withTLS := &tls.Config{}
	for _, c := range []struct {
		name string
		cfg  server.Config
		ok   bool
	}{
		{"loopback addresses", server.Config{GRPCAddr: "127.0.0.1:7070", HTTPAddr: "localhost:8080", VendorAddr: "[::1]:8443"}, true},
		{"other loopback IP", server.Config{GRPCAddr: "127.0.0.2:7070"}, true},
		{"empty addresses are not checked", server.Config{}, true},
		{"plain gRPC on every interface", server.Config{GRPCAddr: "0.0.0.0:7070"}, false},
		{"plain HTTP with an empty host", server.Config{GRPCAddr: "127.0.0.1:7070", HTTPAddr: ":8080"}, false},
		{"plain vendor on a name", server.Config{GRPCAddr: "127.0.0.1:7070", VendorAddr: "vault.example.com:8443"}, false},
		{"no port", server.Config{GRPCAddr: "127.0.0.1"}, false},
		{"internal TLS", server.Config{GRPCAddr: "0.0.0.0:7070", HTTPAddr: "0.0.0.0:8080", TLS: withTLS}, true},
		{"internal TLS does not cover the vendor listener", server.Config{GRPCAddr: "0.0.0.0:7070", VendorAddr: "0.0.0.0:8443", TLS: withTLS}, false},
		{"vendor TLS", server.Config{GRPCAddr: "127.0.0.1:7070", VendorAddr: "0.0.0.0:8443", VendorTLS: withTLS}, true},
		{"plain metrics on every interface", server.Config{GRPCAddr: "127.0.0.1:7070", MetricsAddr: "0.0.0.0:9090"}, false},
		{"internal TLS covers the metrics listener", server.Config{GRPCAddr: "0.0.0.0:7070", MetricsAddr: "0.0.0.0:9090", TLS: withTLS}, true},
		{"vendor TLS does not cover the metrics listener", server.Config{GRPCAddr: "127.0.0.1:7070", MetricsAddr: "0.0.0.0:9090", VendorTLS: withTLS}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}

func TestTLSFilesCheck(t *testing.T) {
	for _, c := range []struct {
		files server.TLSFiles
		ok    bool
	}{
		{server.TLSFiles{}, true},
		{server.TLSFiles{Cert: "c.pem", Key: "k.pem"}, true},
		{server.TLSFiles{Cert: "c.pem", Key: "k.pem", ClientCA: "ca.pem"}, true},
		{server.TLSFiles{Cert: "c.pem"}, false},
		{server.TLSFiles{Key: "k.pem"}, false},
		{server.TLSFiles{ClientCA: "ca.pem"}, false},
		{server.TLSFiles{Key: "k.pem", ClientCA: "ca.pem"}, false},
	} {
		if err := c.files.Check(); (err == nil) != c.ok {
			t.Errorf("%+v: Check() = %v, want ok=%v", c.files, err, c.ok)
		}
	}
}

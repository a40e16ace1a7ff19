package server

import (
	"errors"
	"fmt"
	"net"
)

// Validate reports the listener settings serve refuses: a listener without TLS (Config.TLS
// for gRPC, HTTP and metrics, Config.VendorTLS for the vendor listener) on an address that
// is not loopback, client CAs without TLS, and incomplete JWT settings (issuer, audience and
// exactly one JWKS source go together). Empty addresses are not checked. New does not call it: a program that embeds the
// server may terminate TLS in front of it.
func (c Config) Validate() error {
	for _, l := range []struct {
		name, addr string
		tls        bool
	}{
		{"gRPC", c.GRPCAddr, c.TLS != nil}, {"HTTP", c.HTTPAddr, c.TLS != nil}, {"metrics", c.MetricsAddr, c.TLS != nil},
		{"vendor", c.VendorAddr, c.VendorTLS != nil},
	} {
		if l.addr != "" && !l.tls && !isLoopback(l.addr) {
			return fmt.Errorf("server: refusing to serve plain text on non-loopback %s address %s: give that listener TLS or bind it to 127.0.0.1", l.name, l.addr)
		}
	}
	if c.ClientCAs != nil && c.TLS == nil {
		return errors.New("server: a client CA for the internal listeners needs TLS on them (--client-ca needs --tls-cert and --tls-key)")
	}
	return c.JWT.validate()
}

// isLoopback reports whether a host:port address is on the loopback interface ("localhost"
// or a loopback IP; an empty host means every interface, so it is not).
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// TLSFiles names the PEM files that give one listener TLS: a certificate and its private key,
// and a CA bundle whose client certificates the listener then verifies (the vendor listener
// requires one; the internal listeners verify one if given).
type TLSFiles struct {
	Cert, Key, ClientCA string
}

// Check reports an incomplete set: a certificate without its key or the reverse, or a client
// CA without a certificate. It does not read the files.
func (f TLSFiles) Check() error {
	if (f.Cert == "") != (f.Key == "") {
		return errors.New("server: a TLS certificate and its key go together")
	}
	if f.ClientCA != "" && f.Cert == "" {
		return errors.New("server: a client CA needs a TLS certificate and key")
	}
	return nil
}

package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Client certificates as identities: where a caller's verified certificate SANs come from.
//
// TLS is terminated on the listeners (tls.NewListener), so that one gRPC server also serves
// its gateway's in-memory connection in plain text. listenerTLSCreds hands the TLS state of a
// network connection to grpc-go, which then carries it in peer.AuthInfo. For a call from a
// gateway (an in-memory "bufconn" peer) the SANs are the ones the gateway put in metadata
// mdClientSANs from its own HTTP connection's verified TLS state; the gateways forward no
// caller header under that name (newGatewayMux), and metadata of a network caller is never
// read for it.

// listenerTLSCreds are the gRPC servers' transport credentials: for a connection the listener
// wrapped in TLS, ServerHandshake completes the handshake (under grpc's connection timeout)
// and reports its state as credentials.TLSInfo; other connections pass as they are.
type listenerTLSCreds struct{}

func (listenerTLSCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, ok := c.(*tls.Conn)
	if !ok {
		return c, nil, nil
	}
	if err := tc.Handshake(); err != nil {
		return nil, nil, err
	}
	return tc, credentials.TLSInfo{State: tc.ConnectionState(), CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (listenerTLSCreds) ClientHandshake(_ context.Context, _ string, c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c, nil, nil // server-side only
}

func (listenerTLSCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (listenerTLSCreds) Clone() credentials.TransportCredentials { return listenerTLSCreds{} }

func (listenerTLSCreds) OverrideServerName(string) error { return nil }

// clientSANs returns the SANs of the caller's verified client certificate (none without one):
// from the connection's TLS state, or, for a call over a gateway's in-memory connection, from
// what the gateway recorded of its HTTP connection.
func clientSANs(ctx context.Context) []string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return nil
	}
	if p.Addr.Network() == "bufconn" {
		return metadata.ValueFromIncomingContext(ctx, mdClientSANs)
	}
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
		return verifiedSANs(ti.State.VerifiedChains)
	}
	return nil
}

// verifiedSANs lists the DNS, e-mail and URI SANs of the leaf of a verified chain; an
// unverified certificate (no chains) has none.
func verifiedSANs(chains [][]*x509.Certificate) []string {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return nil
	}
	c := chains[0][0]
	sans := append([]string{}, c.DNSNames...)
	sans = append(sans, c.EmailAddresses...)
	for _, u := range c.URIs {
		sans = append(sans, u.String())
	}
	return sans
}

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	client "github.com/tokenvault/tokenvault/clients/go"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

// clientCmd makes cmd a command that talks to a server. It adds the connection flags and -o;
// its RunE connects, calls run with the session, closes the connection, and turns a gRPC
// error from run into the CLI's one-line message (main prints it on stderr and exits with the
// code exitCode gives it: exitcodes.go).
//
// Checks that need no server (flag values, files to read) go in cmd.PreRunE: they then fail
// before the connection settings are looked at.
func clientCmd(cmd *cobra.Command, run func(s *session, args []string) error) *cobra.Command {
	var cf clientFlags
	cf.register(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := cf.dial()
		if err != nil {
			return err
		}
		defer c.Close()
		return callErr(run(&session{ctx: cmd.Context(), c: c, printer: newPrinter(cmd, cf.output)}, args))
	}
	return cmd
}

// session is what a client command runs with: the connection and the printer of its output.
type session struct {
	printer
	ctx context.Context
	c   *client.Client
}

func (s *session) credentials() tvpb.CredentialServiceClient { return s.c.Credentials() }
func (s *session) grants() tvpb.GrantServiceClient           { return s.c.Grants() }
func (s *session) keys() tvpb.KeyServiceClient               { return s.c.Keys() }
func (s *session) audit() tvpb.AuditServiceClient            { return s.c.Audit() }
func (s *session) tokens() tvpb.TokenServiceClient           { return s.c.Tokens() }

// clientFlags are the connection settings and output format of a client command.
type clientFlags struct {
	addr, token, output string
	caFile, serverName  string
	tls                 bool
	certFile, keyFile   string
	timeout             time.Duration
}

// register adds --addr, --token, -o and the TLS flags.
func (cf *clientFlags) register(f *pflag.FlagSet) {
	f.StringVar(&cf.addr, "addr", "127.0.0.1:7070", "server gRPC address (TOKENVAULT_ADDR)")
	f.StringVar(&cf.token, "token", "", "bearer secret (TOKENVAULT_TOKEN)")
	f.StringVarP(&cf.output, "output", "o", "text", "output format: text or json")
	f.StringVar(&cf.caFile, "ca-file", "", "PEM CA bundle: connect with TLS and verify the server against it (TOKENVAULT_CA_FILE)")
	f.StringVar(&cf.serverName, "tls-server-name", "", "with --ca-file or --tls: the name to verify in the server certificate")
	f.BoolVar(&cf.tls, "tls", false, "connect with TLS, verifying the server against the system's trusted CAs (TOKENVAULT_TLS)")
	f.StringVar(&cf.certFile, "cert-file", "", "with --ca-file or --tls: PEM client certificate to present (mTLS; a credential bound to its SAN needs no --token) (TOKENVAULT_CERT_FILE)")
	f.StringVar(&cf.keyFile, "key-file", "", "the private key of --cert-file (TOKENVAULT_KEY_FILE)")
	f.DurationVar(&cf.timeout, "timeout", 2*time.Minute, "how long a call may wait for the server (streams such as backup: between two messages); 0: no limit")
}

// check rejects an unknown -o and a missing token, before anything is sent.
func (cf *clientFlags) check() error {
	if err := checkOutput(cf.output); err != nil {
		return err
	}
	if (cf.certFile == "") != (cf.keyFile == "") {
		return withExitCode(exitUsage, errors.New("--cert-file and --key-file go together"))
	}
	if cf.certFile != "" && cf.caFile == "" && !cf.tls {
		return withExitCode(exitUsage, errors.New("--cert-file needs TLS: add --ca-file or --tls"))
	}
	if cf.timeout < 0 {
		return withExitCode(exitUsage, errors.New("--timeout must not be negative (0: no limit)"))
	}
	if cf.token == "" && cf.certFile == "" {
		return withExitCode(exitUsage, errors.New("no credentials: set --token or TOKENVAULT_TOKEN (or a client certificate: --cert-file and --key-file)"))
	}
	return nil
}

func (cf *clientFlags) dial() (*client.Client, error) {
	if err := cf.check(); err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithToken(cf.token), client.WithTimeout(cf.timeout)}
	tc, err := cf.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, client.WithTLS(tc))
	}
	return client.New(cf.addr, opts...)
}

// tlsConfig builds the client TLS settings from --ca-file / --tls and --cert-file /
// --key-file (nil: plain text).
func (cf *clientFlags) tlsConfig() (*tls.Config, error) {
	var c *tls.Config
	switch {
	case cf.caFile != "":
		pool, err := loadCertPool(cf.caFile, "--ca-file")
		if err != nil {
			return nil, err
		}
		c = &tls.Config{RootCAs: pool, ServerName: cf.serverName, MinVersion: tls.VersionTLS12}
	case cf.tls:
		c = &tls.Config{ServerName: cf.serverName, MinVersion: tls.VersionTLS12}
	}
	if c != nil && cf.certFile != "" {
		cert, err := tls.LoadX509KeyPair(cf.certFile, cf.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert-file/--key-file: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// callErr turns a gRPC error into a short message for stderr ("NotFound: …"); other errors
// pass unchanged.
func callErr(err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok {
		if c := s.Code(); c == codes.Unauthenticated || c == codes.PermissionDenied {
			return withExitCode(exitAuth, fmt.Errorf("%s: %s", c, s.Message()))
		}
		if c := s.Code(); c == codes.Unavailable || c == codes.Unknown {
			if hint := connHint(s.Message()); hint != "" {
				return fmt.Errorf("%s: %s\n%s", s.Code(), s.Message(), hint)
			}
		}
		return fmt.Errorf("%s: %s", s.Code(), s.Message())
	}
	return err
}

// connHint recognises connection failures that a flag fixes and says which.
func connHint(msg string) string {
	switch {
	case strings.Contains(msg, "frame too large"), strings.Contains(msg, "HTTP/1.1"), strings.Contains(msg, "http2: failed reading the frame payload"),
		strings.Contains(msg, "unexpected HTTP status code received from server"), strings.Contains(msg, "received unexpected content-type"):
		return "hint: --addr (TOKENVAULT_ADDR) points at an HTTP/JSON listener; client commands speak gRPC: use the server's --grpc-addr (default 127.0.0.1:7070)"
	case strings.Contains(msg, "server preface"), strings.Contains(msg, "connection reset by peer"):
		return "hint: the server may use TLS: connect with --ca-file CA.pem (or --tls for a publicly trusted certificate); or --addr points at a listener that is not tokenvault's gRPC one"
	case strings.Contains(msg, "first record does not look like a TLS handshake"):
		return "hint: the server speaks plain text (a --dev server): drop --tls and --ca-file"
	case strings.Contains(msg, "certificate signed by unknown authority"), strings.Contains(msg, "failed to verify certificate"):
		return "hint: --ca-file must be the CA bundle that signed the server's certificate; --tls-server-name sets the name to check"
	case strings.Contains(msg, "connection refused"):
		return "hint: nothing listens at that address: is the server running? Set --addr (TOKENVAULT_ADDR) to its --grpc-addr"
	}
	return ""
}

// recvAll calls fn with each message of a server stream until it ends.
func recvAll[T any](stream interface{ Recv() (T, error) }, fn func(T) error) error {
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(msg); err != nil {
			return err
		}
	}
}

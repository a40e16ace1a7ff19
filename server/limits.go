package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tokenvault/tokenvault/vault"
)

// Defaults of Limits.
const (
	// DefaultHTTPMaxBody bounds an internal HTTP request body: a tokenize or detokenize of
	// the maximum 10,000 items with values of up to about 6 KiB each fits.
	DefaultHTTPMaxBody = MaxMessageBytes
	// DefaultVendorMaxBody bounds a vendor HTTP request body: 10,000 items of about 400
	// bytes each (token, domain, template and JSON punctuation); vendor tokens are short
	// (a card token is 16 to 19 characters).
	DefaultVendorMaxBody = 4 << 20
	// DefaultGRPCMaxRecv bounds one message received on the internal gRPC listener.
	DefaultGRPCMaxRecv = MaxMessageBytes

	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 60 * time.Second
	DefaultWriteTimeout      = 120 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	// DefaultRequestTimeout is the deadline of a unary call that arrives without one (every
	// HTTP request, and gRPC calls without grpc-timeout).
	DefaultRequestTimeout = 60 * time.Second
	// DefaultMaxConns caps the open connections of each listener.
	DefaultMaxConns = 1000
)

// Limits bound what one client can make a listener hold: memory (body and message sizes),
// time (timeouts) and connections. A zero field takes its default; a negative timeout or
// MaxConns turns that limit off.
type Limits struct {
	// HTTPMaxBody and VendorMaxBody bound a request body on the internal and vendor HTTP
	// listeners; a larger one is answered 413 (after the caller is authenticated from the
	// headers; an unauthenticated request is answered 401 without its body being read).
	HTTPMaxBody, VendorMaxBody int64
	// GRPCMaxRecv bounds one message received on the internal gRPC listener.
	GRPCMaxRecv int
	// ReadHeaderTimeout bounds reading a request's headers (HTTP) and the connection's
	// TLS and HTTP/2 handshake (gRPC).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole HTTP request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds an HTTP request from the end of its headers to the end of its
	// response (the streamed GET /v1/backup and /v1/audit:export are exempt).
	WriteTimeout time.Duration
	// IdleTimeout closes an HTTP keep-alive connection, or a gRPC connection without calls,
	// idle this long.
	IdleTimeout time.Duration
	// RequestTimeout is the deadline given to a unary call (gRPC, or HTTP through the
	// gateway) that arrives without one, so that no call waits on an unreachable database
	// for longer; a call that reaches it is answered Unavailable (HTTP 503). A caller's own
	// shorter or longer deadline stands. Streams (backup, audit export) get none.
	RequestTimeout time.Duration
	// MaxConns caps the open connections of each listener (internal gRPC, internal HTTP,
	// vendor, metrics). Over the cap an HTTP listener answers 503 with Retry-After and closes
	// the connection; the gRPC listener closes it.
	MaxConns int
}

// withDefaults fills zero fields with their defaults and turns negative ones into zero (off).
func (l Limits) withDefaults() Limits {
	if l.HTTPMaxBody <= 0 {
		l.HTTPMaxBody = DefaultHTTPMaxBody
	}
	if l.VendorMaxBody <= 0 {
		l.VendorMaxBody = DefaultVendorMaxBody
	}
	if l.GRPCMaxRecv <= 0 {
		l.GRPCMaxRecv = DefaultGRPCMaxRecv
	}
	dur := func(d *time.Duration, def time.Duration) {
		switch {
		case *d == 0:
			*d = def
		case *d < 0:
			*d = 0
		}
	}
	dur(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	dur(&l.ReadTimeout, DefaultReadTimeout)
	dur(&l.WriteTimeout, DefaultWriteTimeout)
	dur(&l.IdleTimeout, DefaultIdleTimeout)
	dur(&l.RequestTimeout, DefaultRequestTimeout)
	switch {
	case l.MaxConns == 0:
		l.MaxConns = DefaultMaxConns
	case l.MaxConns < 0:
		l.MaxConns = 0
	}
	return l
}

// capListener caps the connections a listener holds open. Over the cap it refuses a new
// connection at once instead of letting it wait (as netutil.LimitListener would): with
// refuse set it answers (an HTTP 503 with Retry-After), else it closes the connection.
type capListener struct {
	net.Listener
	max       int64
	open      atomic.Int64
	refusing  atomic.Int64
	refuse    func(net.Conn) // writes the refusal; nil: close only
	tlsConfig *tls.Config    // the refusal is written over TLS when set
	log       *slog.Logger
}

// maxRefusing bounds the goroutines writing refusals at once; beyond it, connections over
// the cap are just closed.
const maxRefusing = 64

func newCapListener(l net.Listener, max int, refuse func(net.Conn), tlsConfig *tls.Config, log *slog.Logger) net.Listener {
	if max <= 0 {
		return l
	}
	return &capListener{Listener: l, max: int64(max), refuse: refuse, tlsConfig: tlsConfig, log: log}
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &capConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		l.log.Warn("connection refused: the listener is at its connection cap", slog.Int64("max_conns", l.max), slog.String("remote", c.RemoteAddr().String()))
		if l.refuse == nil || l.refusing.Add(1) > maxRefusing {
			if l.refuse != nil {
				l.refusing.Add(-1)
			}
			c.Close()
			continue
		}
		go func() {
			defer l.refusing.Add(-1)
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			var rc net.Conn = c
			if l.tlsConfig != nil {
				rc = tls.Server(c, l.tlsConfig)
			}
			l.refuse(rc)
			// Read what the client sent (up to the deadline) before closing, so that
			// closing with unread data does not reset the connection under the answer.
			_, _ = io.CopyN(io.Discard, rc, 64<<10)
			rc.Close()
		}()
	}
}

// capConn gives its slot back on its first Close.
type capConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// refuseHTTP answers a connection over the cap with a 503 and Retry-After.
func refuseHTTP(max int) func(net.Conn) {
	body := fmt.Sprintf(`{"code":%d,"message":"too many open connections to this listener (at most %d): retry later"}`, int(codes.Unavailable), max)
	resp := "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body)) + body
	return func(c net.Conn) { _, _ = io.WriteString(c, resp) }
}

// httpServer returns an http.Server for one listener with the timeouts of l.
func (s *Server) httpServer(h http.Handler, listener string) *http.Server {
	l := s.limits
	// HTTP/1.1, HTTP/2 over TLS (ALPN "h2", see httpTLS) and, on plain-text listeners,
	// HTTP/2 with prior knowledge (h2c).
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Server{
		Protocols:         protocols,
		Handler:           withHTTPConventions(h),
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          s.httpErrorLog(listener),
	}
}

// httpTLS is an HTTP listener's TLS configuration: c, offering HTTP/2 and HTTP/1.1 by ALPN.
func httpTLS(c *tls.Config) *tls.Config {
	c = c.Clone()
	c.NextProtos = []string{"h2", "http/1.1"}
	return c
}

// grpcLimits are the gRPC server options of l: connection handshake timeout, idle
// connections closed, dead peers detected.
func grpcLimits(l Limits) []grpc.ServerOption {
	var opts []grpc.ServerOption
	if l.ReadHeaderTimeout > 0 {
		opts = append(opts, grpc.ConnectionTimeout(l.ReadHeaderTimeout))
	}
	kp := keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}
	if l.IdleTimeout > 0 {
		kp.MaxConnectionIdle = l.IdleTimeout
	}
	return append(opts, grpc.KeepaliveParams(kp))
}

type bodyCtxKey int

const (
	// keyUnauthenticatedBody marks a request refused from its headers: its body was not
	// read and the handler sees none.
	keyUnauthenticatedBody bodyCtxKey = iota
	// keyBodyLimit holds the *bodyLimit of a request whose body is bounded.
	keyBodyLimit
)

// bodyLimit records that a request body went over its limit.
type bodyLimit struct {
	max      int64
	exceeded atomic.Bool
}

type limitedBody struct {
	io.ReadCloser
	lim *bodyLimit
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		b.lim.exceeded.Store(true)
	}
	return n, err
}

// bodyTooLarge reports whether r's body went over its limit, and the limit.
func bodyTooLarge(r *http.Request) (int64, bool) {
	if l, ok := r.Context().Value(keyBodyLimit).(*bodyLimit); ok && l.exceeded.Load() {
		return l.max, true
	}
	return 0, false
}

func writeTooLarge(w http.ResponseWriter, max int64) {
	w.Header().Set("Connection", "close")
	writeJSONError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument,
		fmt.Sprintf("request body larger than %d bytes, the limit of this listener: send fewer or smaller items per call", max))
}

// guardBody authenticates a request that has a body from its headers before anything reads
// the body, then bounds the body to max bytes (413 beyond). A request refused from its
// headers goes on without its body: the RPC's interceptor then refuses it as it refuses any
// call (same status, audit event, metrics and alerts), and the connection is closed rather
// than drained. An accepted request carries its principal to the interceptor, which
// authorizes it without authenticating it again. Requests without a body pass through (the interceptor authenticates them).
func (s *Server) guardBody(a *authenticator, max int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		// One deadline for the request (issue 15: one timer, not two): the server's request
		// timeout bounds authenticating it here and, carried in its context, the RPC (whose
		// interceptor sees it is the server's). A Grpc-Timeout header, which the gateway
		// turns into the call's own deadline, keeps the two apart as before.
		ctx, cancel := r.Context(), context.CancelFunc(func() {})
		if len(r.Header["Grpc-Timeout"]) == 0 {
			ctx, cancel = s.withServerDeadline(ctx)
		}
		defer cancel()
		p, err := a.fromHTTP(ctx, r)
		if err != nil {
			if c := status.Code(err); c == codes.Unavailable || c == codes.DeadlineExceeded {
				// Not a refusal: the vault (its database) could not check the credentials.
				writeJSONError(w, http.StatusServiceUnavailable, codes.Unavailable, a.s.unavailableMessage(err, requestIDFrom(r)))
				return
			}
			w.Header().Set("Connection", "close")
			r2 := r.WithContext(context.WithValue(r.Context(), keyUnauthenticatedBody, true))
			r2.Body, r2.ContentLength = http.NoBody, 0
			r2.Header = r.Header.Clone()
			r2.Header.Del("Content-Length")
			next.ServeHTTP(w, r2)
			return
		}
		if r.ContentLength > max {
			writeTooLarge(w, max)
			return
		}
		lim := &bodyLimit{max: max}
		// The principal goes on with the request: the gateway calls the RPC in process
		// (inproc.go), whose interceptor takes it instead of authenticating again.
		ctx = context.WithValue(ctx, keyTapPrincipal, p)
		r = r.WithContext(context.WithValue(ctx, keyBodyLimit, lim))
		r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, max), lim: lim}
		next.ServeHTTP(w, r)
	})
}

// httpContext is the incoming-call context of an HTTP request as the gateway would pass it
// to gRPC: its bearer credentials and address, and the connection's TLS state (so its
// verified client certificate SANs) as the peer's AuthInfo.
func httpContext(r *http.Request) context.Context { return httpContextOn(r.Context(), r) }

// httpContextOn is httpContext derived from ctx (r's context or one derived from it).
func httpContextOn(ctx context.Context, r *http.Request) context.Context {
	md := clientInfo(r.Context(), r)
	for _, v := range r.Header.Values("Authorization") {
		md.Append("authorization", v)
	}
	if id := r.Header.Get("X-Request-Id"); id != "" {
		md.Set("x-request-id", id)
	}
	ctx = metadata.NewIncomingContext(ctx, md)
	p := &peer.Peer{Addr: httpAddr(r.RemoteAddr)}
	if r.TLS != nil {
		p.AuthInfo = credentials.TLSInfo{State: *r.TLS}
	}
	return peer.NewContext(ctx, p)
}

type httpAddr string

func (a httpAddr) Network() string { return "tcp" }
func (a httpAddr) String() string  { return string(a) }

var errSealed = status.Error(codes.Unavailable, "the vault is sealed: its key-encryption key is not available yet; retry later")

// fromHTTP authenticates an HTTP request from its headers alone, within ctx (r's context or
// one derived from it).
func (a *authenticator) fromHTTP(ctx context.Context, r *http.Request) (vault.Principal, error) {
	if a.s.Sealed() {
		return vault.Principal{}, errSealed
	}
	ctx, cancel := a.s.withRequestTimeout(httpContextOn(ctx, r))
	defer cancel()
	return a.identify(ctx)
}

// withServerDeadline gives ctx, which has no deadline, the server's request timeout, marked as
// the server's (keyServerDeadline) for the interceptor; see withRequestTimeout.
func (s *Server) withServerDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || s.limits.RequestTimeout <= 0 {
		return ctx, func() {}
	}
	sd := &serverDeadline{at: time.Now().Add(s.limits.RequestTimeout)}
	ctx, sd.cancel = context.WithDeadline(ctx, sd.at)
	return context.WithValue(ctx, keyServerDeadline, sd), sd.cancel
}

// withRequestTimeout gives ctx the server's request timeout when it has no deadline (see
// Limits.RequestTimeout).
func (s *Server) withRequestTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || s.limits.RequestTimeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.limits.RequestTimeout)
}

// unavailableMessage is the message of an Unavailable answer for err (a status error or a
// vault error): the server's request timeout ran out, or the vault is unavailable.
func (s *Server) unavailableMessage(err error, id string) string {
	if status.Code(err) == codes.DeadlineExceeded {
		return fmt.Sprintf("the vault did not finish within its request timeout (%s); retry later (request id %s)", s.limits.RequestTimeout, id)
	}
	if st, ok := status.FromError(err); ok {
		return st.Message()
	}
	return opaqueMessage(err, codes.Unavailable, id)
}

// requireRoles serves next only to callers holding one of roles, authenticated from the
// headers; refusals are audited and count towards denial alerts like RPC refusals.
func (s *Server) requireRoles(a *authenticator, method string, next http.Handler, roles ...vault.Role) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Sealed() {
			writeJSONError(w, http.StatusServiceUnavailable, codes.Unavailable, status.Convert(errSealed).Message())
			return
		}
		ctx, cancel := s.withRequestTimeout(httpContext(r))
		defer cancel()
		ctx = context.WithValue(ctx, keyRequestID, requestIDFrom(r))
		info := vault.RequestInfo{RequestID: requestID(ctx), Method: method, Source: sourceOf(ctx)}
		ctx = vault.WithRequest(ctx, info)
		p, err := a.identify(ctx)
		if err == nil {
			info.Principal = p
			ctx = vault.WithRequest(context.WithValue(ctx, keyPrincipal, p), info)
			if err = a.consoleRefusal(method, p); err == nil && !slices.Contains(roles, p.Role) {
				err = status.Errorf(codes.PermissionDenied, "role %s may not call %s (it needs one of %v)", p.Role, method, roles)
			}
		}
		if err != nil {
			st := status.Convert(err)
			s.alerts.onDenials(ctx, p.ID, 1)
			if aerr := s.vlt().AuditDenial(ctx, st.Message()); aerr != nil {
				s.log.Error("cannot audit a denial", slog.String("request_id", info.RequestID), slog.String("error", aerr.Error()))
			}
			writeJSONError(w, runtime.HTTPStatusFromCode(st.Code()), st.Code(), st.Message())
			return
		}
		next.ServeHTTP(w, r)
	})
}

// requestIDFrom takes a well-formed X-Request-Id or makes one.
func requestIDFrom(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); validRequestID(id) {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

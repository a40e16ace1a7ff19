package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/tokenvault/tokenvault/vault"
)

type ctxKey int

const (
	keyRequestID ctxKey = iota
	keyPrincipal
	keyTapPrincipal // the principal tapHandle (gRPC) or guardBody (HTTP) authenticated from the call's headers
	keySession      // the console session id of an HTTP request (withConsoleSessions)
	// keyServerDeadline holds the *serverDeadline withServerDeadline gave a call that came
	// without a deadline, so that the interceptor still treats the call as one without a
	// deadline of its own.
	keyServerDeadline
)

// serverDeadline is the server's request timeout given to a call: its deadline and the
// cancel func of the context that has it.
type serverDeadline struct {
	at     time.Time
	cancel context.CancelFunc
}

func requestID(ctx context.Context) string {
	if id, ok := ctx.Value(keyRequestID).(string); ok {
		return id
	}
	return "-"
}

// PrincipalFrom returns the authenticated caller of a request.
func PrincipalFrom(ctx context.Context) (vault.Principal, bool) {
	p, ok := ctx.Value(keyPrincipal).(vault.Principal)
	return p, ok
}

// validRequestID reports whether a caller's request id is well-formed: 1 to 64 of
// A-Z a-z 0-9 . _ - (by hand: a regexp match cost more than the rest of the check, per request).
func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// withRequestID takes the caller's x-request-id when it is well-formed, else makes one, and
// echoes it in the response header.
func withRequestID(ctx context.Context) context.Context {
	id := ""
	if v := metadata.ValueFromIncomingContext(ctx, "x-request-id"); len(v) > 0 && validRequestID(v[0]) {
		id = v[0]
	}
	if id == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	_ = grpc.SetHeader(ctx, metadata.MD{"x-request-id": {id}})
	return context.WithValue(ctx, keyRequestID, id)
}

// authenticator resolves bearer secrets, bearer JWTs and client certificates, and applies the
// authorization table for one listener.
type authenticator struct {
	s        *Server
	policy   map[string]Rule
	listener Listener
	log      *slog.Logger
	jwt      *jwtVerifier // nil: bearer JWTs are not accepted here (vendor listener, or not configured)
	// console is ConsoleMethods: what a console session may call.
	console map[string]bool
	// unary holds the listener's unary methods (registered in process), which tapHandle
	// gives the server's deadline for their handler; nil: none.
	unary *inprocConn
}

// msgBadCredentials answers every bearer credential that does not authenticate: an unknown,
// rotated-out or revoked secret, and an invalid JWT or one whose subject is bound to no live
// credential, alike.
const msgBadCredentials = "invalid or revoked credentials"

func bearer(ctx context.Context) string {
	for _, v := range metadata.ValueFromIncomingContext(ctx, "authorization") {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
	}
	return ""
}

// sourceOf returns the caller's address: the connection's peer, or, for calls arriving from a
// gateway over its in-memory connection, the HTTP client's address the gateway recorded.
func sourceOf(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if p.Addr.Network() == "bufconn" {
		if v := metadata.ValueFromIncomingContext(ctx, mdRemoteAddr); len(v) == 1 {
			return v[0]
		}
		return ""
	}
	if a, ok := p.Addr.(*net.TCPAddr); ok && a.Zone == "" && len(a.IP) > 0 {
		return a.IP.String() // what SplitHostPort(a.String()) gives, without building a.String()
	}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return host
	}
	return p.Addr.String()
}

// authorize authenticates the caller of method and checks the table. It fails closed, and
// every refusal is audited.
func (a *authenticator) authorize(ctx context.Context, method string) (context.Context, error) {
	if a.s.Sealed() {
		if r, ok := a.policy[method]; ok && r.Public {
			return ctx, nil
		}
		return ctx, status.Error(codes.Unavailable, "the vault is sealed: its key-encryption key is not available yet; retry later")
	}
	ctx, err := a.check(ctx, method)
	if c := status.Code(err); c == codes.Unavailable || c == codes.DeadlineExceeded {
		return ctx, err // the credentials could not be checked: not a refusal to audit
	}
	if err != nil {
		p, _ := PrincipalFrom(ctx)
		a.s.alerts.onDenials(ctx, p.ID, 1)
		if aerr := a.s.vlt().AuditDenial(ctx, status.Convert(err).Message()); aerr != nil {
			a.log.ErrorContext(ctx, "cannot audit a denial", slog.String("request_id", requestID(ctx)), slog.String("error", aerr.Error()))
		}
	}
	return ctx, err
}

func (a *authenticator) check(ctx context.Context, method string) (context.Context, error) {
	info := vault.RequestInfo{RequestID: requestID(ctx), Method: method, Source: sourceOf(ctx)}
	rule, ok := a.policy[method]
	if ok && rule.Listener != Both && rule.Listener != a.listener {
		ok = false
	}
	if !ok {
		ctx = vault.WithRequest(ctx, info)
		a.log.WarnContext(ctx, "method not in authorization table", slog.String("method", method), slog.String("request_id", requestID(ctx)))
		return ctx, status.Error(codes.PermissionDenied, "this method is not available")
	}
	if rule.Public {
		return vault.WithRequest(ctx, info), nil
	}
	// The principal tapHandle or guardBody found from this call's headers, else identify's
	// (which the vault sees with the request's info, before the principal is known).
	p, ok := ctx.Value(keyTapPrincipal).(vault.Principal)
	if !ok {
		ctx = vault.WithRequest(ctx, info)
		var err error
		if p, err = a.identify(ctx); err != nil {
			return ctx, err
		}
	}
	ctx = context.WithValue(ctx, keyPrincipal, p)
	info.Principal = p
	ctx = vault.WithRequest(ctx, info)
	if err := a.consoleRefusal(method, p); err != nil {
		return ctx, err
	}
	if !rule.Allows(p.Role) {
		if a.listener == Vendor || p.Role == vault.RoleVendor {
			// Vendors and internal callers use separate listeners: say so, nothing more.
			return ctx, status.Error(codes.PermissionDenied, "this credential may not call this method on this listener")
		}
		return ctx, status.Errorf(codes.PermissionDenied, "role %s may not call this method", p.Role)
	}
	return ctx, nil
}

// tapHandle authenticates a call on a gRPC listener from its headers, before grpc-go reads
// its message (it runs as the server's InTapHandle): a caller without valid credentials is
// refused, and audited, without the server reading what it sends. The principal it found is
// passed on in the call's context, so the interceptor does not look it up again. Calls from
// the in-memory gateway connections (their HTTP headers were checked by guardBody), public
// methods, methods not in the table and calls while sealed pass: the interceptor answers
// them as it answers every call.
func (a *authenticator) tapHandle(ctx context.Context, info *tap.Info) (context.Context, error) {
	if pr, ok := peer.FromContext(ctx); !ok || pr.Addr == nil || pr.Addr.Network() == "bufconn" || a.s.Sealed() {
		return ctx, nil
	}
	if rule, ok := a.policy[info.FullMethodName]; !ok || rule.Public {
		return ctx, nil
	}
	start := time.Now()
	ictx := metadata.NewIncomingContext(ctx, info.Header)
	_, hadDeadline := ictx.Deadline()
	// The call's own deadline, or the server's. A unary call keeps the server's for its
	// handler (issue 15: one timer, not two): the interceptor sees it is the server's, and
	// cancels it (else grpc-go's end of the stream does). Streams get none past this check.
	var sctx context.Context
	var cancel context.CancelFunc
	unary := false
	if a.unary != nil {
		_, unary = a.unary.methods[info.FullMethodName]
	}
	if unary {
		sctx, cancel = a.s.withServerDeadline(ctx)
	} else {
		sctx, cancel = a.s.withRequestTimeout(ctx)
	}
	p, err := a.identify(metadata.NewIncomingContext(sctx, info.Header))
	if err == nil && sctx.Value(keyServerDeadline) != nil {
		return context.WithValue(sctx, keyTapPrincipal, p), nil
	}
	cancel()
	if err == nil {
		return context.WithValue(ctx, keyTapPrincipal, p), nil
	}
	if c := status.Code(err); c == codes.Unavailable || c == codes.DeadlineExceeded {
		// The credentials could not be checked (the database is unreachable): answered
		// here, rather than checked again for as long by the interceptor. The caller's own
		// deadline passing stays DeadlineExceeded; the server's is Unavailable.
		ictx = withRequestID(ictx)
		if c == codes.Unavailable || !hadDeadline {
			err = status.Error(codes.Unavailable, a.s.unavailableMessage(err, requestID(ictx)))
		}
		a.s.observe(ictx, info.FullMethodName, start, err)
		return nil, err
	}
	if status.Code(err) != codes.Unauthenticated {
		return ctx, nil // the interceptor answers (and audits) anything else
	}
	// authorize audits and alerts on the refusal as the interceptor would; observe logs and
	// counts it.
	ictx = withRequestID(ictx)
	if _, aerr := a.authorize(ictx, info.FullMethodName); aerr != nil {
		err = aerr
	}
	a.s.observe(ictx, info.FullMethodName, start, err)
	return nil, err
}

// edge is one gRPC server's interceptor chain head, bound to its listener.
type edge struct {
	*Server
	auth *authenticator
}

// identify authenticates the caller by bearer secret, bearer JWT (internal listeners, when
// configured) and verified client certificate (clientSANs: the connection's TLS state, never
// the caller's headers). A credential bound to a certificate SAN authenticates only with that
// certificate; a certificate and a bearer credential of two different credentials are refused.
func (a *authenticator) identify(ctx context.Context) (vault.Principal, error) {
	if p, ok := ctx.Value(keyTapPrincipal).(vault.Principal); ok {
		return p, nil // found by tapHandle or guardBody from this call's headers
	}
	if id, ok := sessionOf(ctx); ok && bearer(ctx) == "" {
		return a.fromSession(ctx, id)
	}
	sans := clientSANs(ctx)
	bad := func() error { return status.Error(codes.Unauthenticated, msgBadCredentials) } // made only when refused
	var byCert, bySecret *vault.Principal
	if len(sans) > 0 {
		if p, err := a.s.vlt().AuthenticateCert(ctx, sans); err == nil {
			byCert = &p
		} else if codeOf(err) != codes.Unauthenticated {
			return vault.Principal{}, toStatus(ctx, a.log, err)
		}
	}
	if secret := bearer(ctx); secret != "" {
		p, err := a.fromBearer(ctx, secret)
		if err != nil {
			if codeOf(err) == codes.Unauthenticated {
				return vault.Principal{}, bad()
			}
			return vault.Principal{}, toStatus(ctx, a.log, err)
		}
		bySecret = &p
	}
	switch {
	case bySecret != nil && bySecret.CertSAN != "":
		if byCert == nil || byCert.ID != bySecret.ID {
			return vault.Principal{}, status.Error(codes.Unauthenticated, "this credential must be used with its client certificate")
		}
		return *bySecret, nil
	case bySecret != nil:
		if byCert != nil && byCert.ID != bySecret.ID {
			return vault.Principal{}, bad() // a certificate and a secret of two credentials
		}
		return *bySecret, nil
	case byCert != nil:
		return *byCert, nil
	case len(sans) > 0:
		return vault.Principal{}, status.Error(codes.Unauthenticated, "the client certificate is not bound to any credential")
	}
	return vault.Principal{}, status.Error(codes.Unauthenticated, "missing credentials: send \"authorization: Bearer <secret>\"")
}

// fromBearer authenticates a bearer credential: a JWT where this listener accepts them (its
// signature and claims checked here, its subject resolved by the vault), else a secret.
// Every refusal is vault.ErrUnauthenticated, whatever its reason, which is logged (never the
// token) at info level.
func (a *authenticator) fromBearer(ctx context.Context, bearer string) (vault.Principal, error) {
	if a.jwt == nil || !looksLikeJWT(bearer) {
		return a.s.vlt().Authenticate(ctx, bearer)
	}
	sub, err := a.jwt.verify(ctx, bearer)
	if err != nil {
		a.log.InfoContext(ctx, "bearer JWT refused", slog.String("request_id", requestID(ctx)), slog.String("reason", err.Error()))
		return vault.Principal{}, vault.ErrUnauthenticated
	}
	p, err := a.s.vlt().AuthenticateJWTSubject(ctx, sub)
	if codeOf(err) == codes.Unauthenticated {
		a.log.InfoContext(ctx, "bearer JWT refused: its subject is bound to no live internal credential",
			slog.String("request_id", requestID(ctx)), slog.String("subject", truncate(sub, 253)))
	}
	return p, err
}

// truncate cuts s to at most n bytes, for logging caller-chosen strings.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// unaryInterceptor is the one interceptor chain head: request id, recovery, logging and
// authorization. Validation runs after it (chained in New).
func (e *edge) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	ctx = withRequestID(ctx)
	defer func() {
		if r := recover(); r != nil {
			// The panic value may hold request data: log only the stack.
			e.log.ErrorContext(ctx, "panic in handler", slog.String("request_id", requestID(ctx)),
				slog.String("method", info.FullMethod), slog.String("stack", string(debug.Stack())))
			resp, err = nil, status.Errorf(codes.Internal, "internal error (request id %s)", requestID(ctx))
		}
		e.observe(ctx, info.FullMethod, start, err)
	}()
	// A call without a deadline gets the server's, so that it cannot wait on an unreachable
	// database for ever; running out of it is the server's failure, answered Unavailable.
	dl, hadDeadline := ctx.Deadline()
	if sd, ok := ctx.Value(keyServerDeadline).(*serverDeadline); ok && hadDeadline && dl.Equal(sd.at) {
		hadDeadline = false // the server's, given by guardBody (HTTP) or tapHandle (gRPC)
		defer sd.cancel()
	}
	ctx, cancel := e.withRequestTimeout(ctx)
	defer cancel()
	defer func() {
		if !hadDeadline && err != nil && status.Code(err) == codes.DeadlineExceeded {
			err = status.Error(codes.Unavailable, e.unavailableMessage(err, requestID(ctx)))
		}
	}()
	ctx, err = e.auth.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (e *edge) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	ctx := withRequestID(ss.Context())
	defer func() {
		if r := recover(); r != nil {
			e.log.ErrorContext(ctx, "panic in stream handler", slog.String("request_id", requestID(ctx)),
				slog.String("method", info.FullMethod), slog.String("stack", string(debug.Stack())))
			err = status.Errorf(codes.Internal, "internal error (request id %s)", requestID(ctx))
		}
		e.observe(ctx, info.FullMethod, start, err)
	}()
	ctx, err = e.auth.authorize(ctx, info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

// observe logs one line per request (never its body) and records metrics.
func (s *Server) observe(ctx context.Context, method string, start time.Time, err error) {
	code := status.Code(err)
	d := time.Since(start)
	s.metrics.requestDone(method, code, d)
	// Successful calls log at debug (the audit trail records them); failures at info, so a
	// burst of denials shows in the default log; internal errors at error.
	level := slog.LevelDebug
	switch code {
	case codes.OK:
	case codes.Internal, codes.Unknown, codes.DataLoss:
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	if !s.log.Enabled(ctx, level) {
		return // the attributes are not built for nothing
	}
	attrs := []slog.Attr{
		slog.String("request_id", requestID(ctx)),
		slog.String("method", method),
		slog.String("code", code.String()),
		slog.Duration("duration", d),
	}
	if p, ok := PrincipalFrom(ctx); ok {
		attrs = append(attrs, slog.String("credential", p.ID), slog.String("role", string(p.Role)), slog.String("auth", string(p.AuthMethod)))
	}
	s.log.LogAttrs(ctx, level, "request", attrs...)
}

package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/tokenvault/tokenvault/server/console"
	"github.com/tokenvault/tokenvault/vault"
)

// The web console (package console) is served at /ui/ on the internal HTTP listener. Its
// sessions authenticate calls to the REST API through the one authentication path of every
// call: withConsoleSessions resolves the session cookie of an HTTP request (and checks its
// CSRF token), the gateway passes the session id to the gRPC side in trusted metadata
// (mdSession, set from the request's context, never from a caller's header), and identify
// turns it into the session's credential, re-read on every call. check then applies
// ConsoleMethods before the role rules of Policy.

// UIConfig configures the web console.
type UIConfig struct {
	// Disabled turns the console off: /ui/ answers 404 and session cookies authenticate
	// nothing.
	Disabled bool
	// IdleTimeout and SessionTimeout end a session unused this long (default 15m) and this
	// long after sign-in (default 8h).
	IdleTimeout, SessionTimeout time.Duration
}

// mdSession carries a console session id from the internal gateway to the gRPC side.
const mdSession = "x-tokenvault-console-session"

// now is the vault's clock (sessions time out by it), the wall clock while sealed.
func (s *Server) now() time.Time {
	if v := s.vlt(); v != nil {
		return v.Now()
	}
	return time.Now()
}

// newConsole assembles the console of cfg.UI, nil when it is disabled.
func (s *Server) newConsole() (*console.Console, error) {
	if s.cfg.UI.Disabled {
		return nil, nil
	}
	return console.New(console.Config{
		Backend:     consoleBackend{s: s},
		Store:       consoleSessions{s: s},
		IdleTimeout: s.cfg.UI.IdleTimeout, SessionTimeout: s.cfg.UI.SessionTimeout,
		Now: s.now, Logger: s.log.With(slog.String("component", "console")),
	})
}

// consoleSessions keeps the console's sessions in the vault's store (vault.PutConsoleSession
// …), so that every replica serves every session. While the vault is sealed there are none to
// read: ErrUnavailable.
type consoleSessions struct{ s *Server }

func (c consoleSessions) vault() (*vault.Vault, error) {
	if v := c.s.vlt(); v != nil {
		return v, nil
	}
	return nil, console.ErrUnavailable
}

func (c consoleSessions) Put(ctx context.Context, key [32]byte, value []byte) error {
	v, err := c.vault()
	if err != nil {
		return err
	}
	return v.PutConsoleSession(ctx, key, value)
}

func (c consoleSessions) Get(ctx context.Context, key [32]byte) ([]byte, error) {
	v, err := c.vault()
	if err != nil {
		return nil, err
	}
	return v.ConsoleSession(ctx, key)
}

func (c consoleSessions) Update(ctx context.Context, key [32]byte, fn func([]byte) []byte) error {
	v, err := c.vault()
	if err != nil {
		return err
	}
	return v.UpdateConsoleSession(ctx, key, fn)
}

func (c consoleSessions) Delete(ctx context.Context, keys ...[32]byte) error {
	v, err := c.vault()
	if err != nil {
		return err
	}
	return v.DeleteConsoleSessions(ctx, keys...)
}

func (c consoleSessions) Range(ctx context.Context, fn func([32]byte, []byte) bool) error {
	v, err := c.vault()
	if err != nil {
		return err
	}
	return v.RangeConsoleSessions(ctx, fn)
}

// consoleBackend signs console users in through the internal listener's authenticator and
// records the console's events in the audit trail.
type consoleBackend struct{ s *Server }

func (b consoleBackend) SignIn(r *http.Request, secret string) (vault.Principal, error) {
	if b.s.Sealed() {
		return vault.Principal{}, console.ErrUnavailable
	}
	ctx := httpContext(r)
	if secret != "" {
		md, _ := metadata.FromIncomingContext(ctx)
		md = md.Copy()
		md.Set("authorization", "Bearer "+secret)
		ctx = metadata.NewIncomingContext(ctx, md)
	}
	p, err := b.s.iauth.identify(ctx)
	if status.Code(err) == codes.Unauthenticated {
		return vault.Principal{}, vault.ErrUnauthenticated
	}
	return p, err
}

func (b consoleBackend) Check(r *http.Request, id string) (vault.Principal, error) {
	v := b.s.vlt()
	if v == nil {
		return vault.Principal{}, console.ErrUnavailable
	}
	return v.AuthenticateCredential(r.Context(), id)
}

func (b consoleBackend) Audit(r *http.Request, method string, p vault.Principal, outcome, reason string) {
	v := b.s.vlt()
	if v == nil {
		return
	}
	ctx := context.WithValue(httpContext(r), keyRequestID, requestIDFrom(r))
	ctx = vault.WithRequest(ctx, vault.RequestInfo{RequestID: requestID(ctx), Method: method, Principal: p, Source: sourceOf(ctx)})
	if outcome == vault.OutcomeDenied {
		b.s.alerts.onDenials(ctx, p.ID, 1)
	}
	if err := v.AuditRequest(ctx, outcome, reason); err != nil {
		b.s.log.ErrorContext(ctx, "cannot audit a console event", slog.String("request_id", requestID(ctx)), slog.String("error", err.Error()))
	}
}

// withConsoleSessions authenticates requests to the REST API (/v1/…, and /metrics, which
// refuses sessions) that carry the console's session cookie and no Authorization header
// (which wins: the cookie is then ignored); elsewhere (/ui/, /healthz, …) the cookie is
// ignored. A cookie that
// names no live session is 401; a state-changing request without the session's CSRF token,
// or sent cross-site, is 403 and audited. Otherwise the session id rides in the request's
// context to identify.
func (s *Server) withConsoleSessions(next http.Handler) http.Handler {
	if s.console == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") && r.URL.Path != "/metrics" || r.Header.Get("Authorization") != "" {
			next.ServeHTTP(w, r)
			return
		}
		id, sess, err := s.console.Check(r)
		switch {
		case errors.Is(err, console.ErrNoSession):
			next.ServeHTTP(w, r)
		case errors.Is(err, console.ErrSessionEnded):
			writeJSONError(w, http.StatusUnauthorized, codes.Unauthenticated, err.Error())
		case errors.Is(err, console.ErrSessionsUnavailable):
			w.Header().Set("Retry-After", "1")
			writeJSONError(w, http.StatusServiceUnavailable, codes.Unavailable, console.ErrSessionsUnavailable.Error())
		case err != nil:
			consoleBackend{s: s}.Audit(r, console.MethodCSRF, sess.Actor(), vault.OutcomeDenied, err.Error()+" ("+r.Method+" request)")
			console.WriteError(w, http.StatusForbidden, err.Error())
		default:
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keySession, id)))
		}
	})
}

// sessionOf returns the console session id of a call: from the HTTP request's context
// (withConsoleSessions), or, behind the internal gateway's in-memory connection, from the
// metadata the gateway set. A gRPC caller on a network listener cannot set it.
func sessionOf(ctx context.Context) (string, bool) {
	if id, ok := ctx.Value(keySession).(string); ok {
		return id, true
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil && p.Addr.Network() == "bufconn" {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get(mdSession); len(v) == 1 {
			return v[0], true
		}
	}
	return "", false
}

// fromSession authenticates a call made through a console session: the session must be live,
// and its credential is read again (revoked or expired: every session of it ends), so its
// role is the credential's now. The principal's AuthMethod is the session's: console+secret,
// console+jwt or console+cert.
func (a *authenticator) fromSession(ctx context.Context, id string) (vault.Principal, error) {
	ended := status.Error(codes.Unauthenticated, console.ErrSessionEnded.Error())
	c := a.s.console
	if c == nil || a.listener != Internal {
		return vault.Principal{}, ended
	}
	sess, err := c.Lookup(ctx, id)
	switch {
	case errors.Is(err, console.ErrSessionsUnavailable):
		return vault.Principal{}, status.Error(codes.Unavailable, console.ErrSessionsUnavailable.Error())
	case err != nil:
		return vault.Principal{}, ended
	}
	p, err := a.s.vlt().AuthenticateCredential(ctx, sess.Principal.ID)
	if err != nil {
		if codeOf(err) == codes.Unauthenticated {
			_ = c.EndCredential(ctx, sess.Principal.ID) // the credential ends them at their next call anyway
			return vault.Principal{}, ended
		}
		return vault.Principal{}, toStatus(ctx, a.log, err)
	}
	if !console.MayConsole(p.Role) {
		_ = c.End(ctx, id)
		return vault.Principal{}, ended
	}
	p.AuthMethod = sess.Principal.AuthMethod.Console()
	return p, nil
}

// consoleRefusal refuses a console session's call to a method ConsoleMethods does not allow
// (nil for every other caller).
func (a *authenticator) consoleRefusal(method string, p vault.Principal) error {
	if p.AuthMethod.IsConsole() && !a.console[method] {
		return status.Error(codes.PermissionDenied, "the web console may not call this method")
	}
	return nil
}

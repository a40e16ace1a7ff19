package console

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/tokenvault/tokenvault/vault"
)

// web is the console's pages and assets, built into the binary.
//
//go:embed web
var web embed.FS

// Names the browser and the server agree on.
const (
	// CookieName is the session cookie.
	CookieName = "tv_session"
	// CSRFHeader carries the session's CSRF token on state-changing requests.
	CSRFHeader = "X-CSRF-Token"
	// Prefix is where the console is served.
	Prefix = "/ui/"
)

// The audit methods of the console's own events.
const (
	MethodLogin  = "console.login"
	MethodLogout = "console.logout"
	MethodCSRF   = "console.csrf" // a state-changing request refused for its CSRF token or origin
)

// Defaults of Config.
const (
	DefaultIdleTimeout    = 15 * time.Minute
	DefaultSessionTimeout = 8 * time.Hour
	DefaultMaxSessions    = 10000
)

// ContentSecurityPolicy is sent with every console response: only the console's own scripts,
// styles, images (and data: images) and API; no inline script, no framing, no other origin.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Errors of Check and of a Backend.
var (
	// ErrNoSession: the request carries no session cookie.
	ErrNoSession = errors.New("not signed in")
	// ErrSessionEnded: the cookie names no live session (signed out, timed out, revoked).
	ErrSessionEnded = errors.New("the console session has ended: sign in again")
	// ErrSessionsUnavailable: the session store cannot be read or written now (the database
	// is unreachable, or the vault sealed).
	ErrSessionsUnavailable = errors.New("console sessions are unavailable: retry later")
	// ErrCSRF: a state-changing request without the session's CSRF token.
	ErrCSRF = errors.New("missing or invalid CSRF token")
	// ErrCrossSite: a request whose Sec-Fetch-Site says another site or origin sent it.
	ErrCrossSite = errors.New("cross-site requests are refused")
	// ErrUnavailable is what a Backend returns while the vault cannot serve (sealed).
	ErrUnavailable = errors.New("the vault is sealed: retry later")
)

// msgBadCredentials answers every sign-in that does not authenticate, whatever the reason.
const msgBadCredentials = "invalid, revoked or expired credentials"

// Backend is what the console needs from the server: authentication through the server's one
// authentication path, and the audit trail.
type Backend interface {
	// SignIn authenticates r: with secret when it is not empty, else with the request's
	// verified client certificate or bearer JWT. It returns vault.ErrUnauthenticated for
	// anything that does not authenticate, ErrUnavailable while sealed.
	SignIn(r *http.Request, secret string) (vault.Principal, error)
	// Check re-reads credential id: vault.ErrUnauthenticated once it is revoked or expired.
	Check(r *http.Request, id string) (vault.Principal, error)
	// Audit records a console event of r: method (MethodLogin, …), the principal (zero when
	// unknown), the outcome (vault.OutcomeAllowed or OutcomeDenied) and a reason (never a
	// secret).
	Audit(r *http.Request, method string, p vault.Principal, outcome, reason string)
}

// Config assembles a Console.
type Config struct {
	Backend Backend
	// Store keeps the sessions (required): the server's is the vault's store, shared by
	// every replica.
	Store SessionStore
	// IdleTimeout ends a session unused this long (default 15m); SessionTimeout ends it this
	// long after sign-in whatever its use (default 8h).
	IdleTimeout, SessionTimeout time.Duration
	// MaxSessions bounds the session table (default 10,000): beyond it, signing in ends the
	// session idle longest.
	MaxSessions int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives operational messages (never a secret or a session id); nil discards.
	Logger *slog.Logger
}

// Console serves the web console and holds its sessions. Safe for concurrent use.
type Console struct {
	cfg      Config
	sessions *sessions
	files    fs.FS
	index    []byte
	mux      *http.ServeMux
}

// New assembles a Console.
func New(cfg Config) (*Console, error) {
	if cfg.Backend == nil {
		return nil, errors.New("console: Config.Backend is required")
	}
	if cfg.Store == nil {
		return nil, errors.New("console: Config.Store is required")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	files, err := fs.Sub(web, "web")
	if err != nil {
		return nil, err
	}
	index, err := fs.ReadFile(files, "index.html")
	if err != nil {
		return nil, errors.New("console: web/index.html is missing from the build")
	}
	c := &Console{
		cfg:      cfg,
		sessions: &sessions{idle: cfg.IdleTimeout, absolute: cfg.SessionTimeout, max: cfg.MaxSessions, now: cfg.Now, store: cfg.Store},
		files:    files,
		index:    index,
		mux:      http.NewServeMux(),
	}
	c.route("POST", "/ui/api/login", c.login)
	c.route("POST", "/ui/api/logout", c.logout)
	c.route("GET", "/ui/api/session", c.session)
	c.mux.HandleFunc("/ui/api/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "no such console API")
	})
	return c, nil
}

func (c *Console) route(method, p string, h http.HandlerFunc) {
	c.mux.HandleFunc(method+" "+p, h)
	c.mux.HandleFunc(p, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", method)
		writeError(w, http.StatusMethodNotAllowed, "use "+method)
	})
}

// Handler serves /ui and everything under /ui/, every response with the console's security
// headers.
func (c *Console) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		switch {
		case strings.HasPrefix(r.URL.Path, "/ui/api/"):
			c.mux.ServeHTTP(w, r)
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			h.Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "the console's pages are read with GET")
		case r.URL.Path == "/ui":
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		default:
			c.static(w, r)
		}
	})
}

// static serves a file of web/, and index.html for the single-page routes: /ui/ and any
// /ui/<page> whose last segment has no dot.
func (c *Console) static(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, Prefix)
	if name == "" || !strings.Contains(path.Base(name), ".") && !strings.HasPrefix(name, "assets/") {
		http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(c.index))
		return
	}
	if !fs.ValidPath(name) || strings.HasSuffix(name, "/") {
		writeError(w, http.StatusNotFound, "no such page")
		return
	}
	st, err := fs.Stat(c.files, name)
	if err != nil || !st.Mode().IsRegular() {
		writeError(w, http.StatusNotFound, "no such page")
		return
	}
	data, err := fs.ReadFile(c.files, name)
	if err != nil {
		writeError(w, http.StatusNotFound, "no such page")
		return
	}
	http.ServeContent(w, r, path.Base(name), time.Time{}, bytes.NewReader(data))
}

// sessionJSON is the answer of login and session.
type sessionJSON struct {
	Credential struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Role string `json:"role"`
	} `json:"credential"`
	CSRFToken          string `json:"csrfToken"`
	IdleTimeoutSeconds int64  `json:"idleTimeoutSeconds"`
	ExpiresAt          string `json:"expiresAt"`
}

func (c *Console) sessionJSON(s Session, p vault.Principal) sessionJSON {
	var out sessionJSON
	out.Credential.ID, out.Credential.Name, out.Credential.Role = p.ID, p.Name, string(p.Role)
	out.CSRFToken = s.CSRF
	out.IdleTimeoutSeconds = int64(c.cfg.IdleTimeout / time.Second)
	out.ExpiresAt = s.Created.Add(c.cfg.SessionTimeout).UTC().Format(time.RFC3339)
	return out
}

// MayConsole reports whether a credential of role may sign in to the console.
func MayConsole(role vault.Role) bool { return role == vault.RoleAdmin || role == vault.RoleAuditor }

// maxLoginBody bounds a sign-in request's body.
const maxLoginBody = 4 << 10

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if crossSite(r) {
		c.cfg.Backend.Audit(r, MethodLogin, vault.Principal{}, vault.OutcomeDenied, ErrCrossSite.Error())
		writeError(w, http.StatusForbidden, ErrCrossSite.Error())
		return
	}
	var body struct {
		Secret string `json:"secret"`
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLoginBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "the sign-in request is too large")
		return
	}
	if len(bytes.TrimSpace(data)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, `the sign-in body is {"secret": "<credential secret>"} or {} with a client certificate or bearer JWT`)
			return
		}
	}
	p, err := c.cfg.Backend.SignIn(r, strings.TrimSpace(body.Secret))
	switch {
	case errors.Is(err, vault.ErrUnauthenticated):
		c.cfg.Backend.Audit(r, MethodLogin, vault.Principal{}, vault.OutcomeDenied, msgBadCredentials)
		writeError(w, http.StatusUnauthorized, msgBadCredentials)
		return
	case errors.Is(err, ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, ErrUnavailable.Error())
		return
	case err != nil:
		c.cfg.Logger.Error("console sign-in failed", slog.String("error", err.Error()))
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	if !MayConsole(p.Role) {
		c.cfg.Backend.Audit(r, MethodLogin, p, vault.OutcomeDenied, "role "+string(p.Role)+" may not sign in to the console")
		writeError(w, http.StatusForbidden, "only admin and auditor credentials may sign in to the console")
		return
	}
	if old, err := r.Cookie(CookieName); err == nil && old.Value != "" {
		if err := c.sessions.end(r.Context(), old.Value); err != nil {
			c.unavailable(w, err)
			return
		}
	}
	id, s, err := c.sessions.create(r.Context(), p)
	if err != nil {
		c.unavailable(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: "/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	c.cfg.Backend.Audit(r, MethodLogin, p, vault.OutcomeAllowed, "signed in to the console")
	writeJSON(w, http.StatusOK, c.sessionJSON(s, p))
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) {
	id, s, err := c.Check(r)
	switch {
	case errors.Is(err, ErrNoSession), errors.Is(err, ErrSessionEnded):
		clearCookie(w, r)
		writeError(w, http.StatusUnauthorized, ErrSessionEnded.Error())
		return
	case errors.Is(err, ErrSessionsUnavailable):
		c.unavailable(w, err)
		return
	case err != nil:
		c.cfg.Backend.Audit(r, MethodCSRF, s.Actor(), vault.OutcomeDenied, err.Error()+" (sign-out)")
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	if err := c.sessions.end(r.Context(), id); err != nil {
		c.unavailable(w, err)
		return
	}
	clearCookie(w, r)
	c.cfg.Backend.Audit(r, MethodLogout, s.Actor(), vault.OutcomeAllowed, "signed out of the console")
	w.WriteHeader(http.StatusNoContent)
}

func (c *Console) session(w http.ResponseWriter, r *http.Request) {
	id, s, err := c.Check(r)
	if errors.Is(err, ErrSessionsUnavailable) {
		c.unavailable(w, err)
		return
	}
	if err != nil {
		if errors.Is(err, ErrSessionEnded) {
			clearCookie(w, r)
		}
		writeError(w, http.StatusUnauthorized, ErrSessionEnded.Error())
		return
	}
	p, err := c.cfg.Backend.Check(r, s.Principal.ID)
	switch {
	case errors.Is(err, ErrUnavailable):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, ErrUnavailable.Error())
		return
	case err != nil && !errors.Is(err, vault.ErrUnauthenticated):
		// The credential could not be read (the database): not a reason to sign out.
		c.unavailable(w, err)
		return
	case err != nil || !MayConsole(p.Role):
		if err := c.sessions.end(r.Context(), id); err != nil {
			c.unavailable(w, err)
			return
		}
		clearCookie(w, r)
		writeError(w, http.StatusUnauthorized, ErrSessionEnded.Error())
		return
	}
	writeJSON(w, http.StatusOK, c.sessionJSON(s, p))
}

// Check resolves the session cookie of r, restarting its idle timeout: ErrNoSession without
// a cookie, ErrSessionEnded when it names no live session, ErrSessionsUnavailable when the
// session store cannot be read. For a request that may change
// state (any method but GET, HEAD and OPTIONS) it also requires the session's CSRF token in
// X-CSRF-Token (ErrCSRF) and refuses a Sec-Fetch-Site other than same-origin (ErrCrossSite);
// the session is returned with those two errors, for the audit trail. Check does not re-read
// the credential: the server does, on every call.
func (c *Console) Check(r *http.Request) (id string, s Session, err error) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" {
		return "", Session{}, ErrNoSession
	}
	s, err = c.Lookup(r.Context(), ck.Value)
	if err != nil {
		return "", Session{}, err
	}
	if safeMethod(r.Method) {
		return ck.Value, s, nil
	}
	if crossSite(r) {
		return "", s, ErrCrossSite
	}
	tok := r.Header.Get(CSRFHeader)
	if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(s.CSRF)) != 1 {
		return "", s, ErrCSRF
	}
	return ck.Value, s, nil
}

// Lookup returns the live session that id names, restarting its idle timeout:
// ErrSessionEnded when there is none, ErrSessionsUnavailable when the store cannot be read.
func (c *Console) Lookup(ctx context.Context, id string) (Session, error) {
	s, err := c.sessions.lookup(ctx, id, true)
	return s, c.storeError(err)
}

// End ends the session id names.
func (c *Console) End(ctx context.Context, id string) error {
	return c.storeError(c.sessions.end(ctx, id))
}

// EndCredential ends every session of credential id (it was revoked).
func (c *Console) EndCredential(ctx context.Context, id string) error {
	return c.storeError(c.sessions.endCredential(ctx, id))
}

// storeError maps the session table's errors: errNoSuchSession to ErrSessionEnded, a store
// error to ErrSessionsUnavailable (logged: the cause, never a session id).
func (c *Console) storeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNoSuchSession):
		return ErrSessionEnded
	}
	c.cfg.Logger.Warn("console session store", slog.String("error", err.Error()))
	return fmt.Errorf("%w: %w", ErrSessionsUnavailable, err)
}

// unavailable answers 503 with Retry-After for a session store error.
func (c *Console) unavailable(w http.ResponseWriter, err error) {
	if !errors.Is(err, ErrSessionsUnavailable) {
		err = c.storeError(err)
	}
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, ErrSessionsUnavailable.Error())
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// crossSite reports a Sec-Fetch-Site header other than same-origin. Browsers send it with
// every request; clients that are not browsers do not, and carry no ambient cookie anyway.
func crossSite(r *http.Request) bool {
	v := r.Header.Get("Sec-Fetch-Site")
	return v != "" && v != "same-origin"
}

func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

// WriteError answers {"error": msg} with code: the console API's error body.
func WriteError(w http.ResponseWriter, code int, msg string) { writeError(w, code, msg) }

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

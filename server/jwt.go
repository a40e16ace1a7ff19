package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/time/rate"
)

// JWT (OIDC workload identity) authentication of internal callers: a bearer JWT signed by the
// trusted issuer authenticates as the credential bound to its subject. The signature and the
// claims are checked here, at the edge; the vault only resolves a verified subject to its
// credential (vault.AuthenticateJWTSubject).

// Defaults of JWTConfig.
const (
	DefaultJWTLeeway        = 30 * time.Second
	DefaultJWKSRefresh      = 5 * time.Minute
	DefaultJWKSMinRefresh   = 10 * time.Second
	DefaultJWKSFetchTimeout = 10 * time.Second
	MaxJWKSBytes            = 1 << 20 // a JWKS document larger than this is refused
	maxJWTBytes             = 16 << 10
	minRSABits              = 2048
)

// jwtAlgs are the only signature algorithms accepted: no "none", no HMAC (whose "secret"
// could be the issuer's public key: algorithm confusion).
func jwtAlgs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}
}

// JWTConfig configures bearer JWT authentication on the internal listeners. The zero value
// turns it off.
type JWTConfig struct {
	// Issuer is the exact "iss" accepted, e.g. https://kubernetes.default.svc.cluster.local
	// or https://oidc.eks.eu-west-1.amazonaws.com/id/….
	Issuer string
	// Audience must be one of the token's "aud" values, e.g. "tokenvault".
	Audience string
	// JWKSFile and JWKSURL are the two sources of the issuer's public keys (a JSON Web Key
	// Set): exactly one is set. The file is re-read, and the URL fetched again, every
	// RefreshInterval and when a token names a key id not in the set (at most once every
	// MinRefreshInterval).
	JWKSFile, JWKSURL string
	// Leeway is the clock skew allowed on "exp", "nbf" and "iat" (0: the default, 30s; at
	// most 5m).
	Leeway time.Duration
	// RefreshInterval is how often the key set is reloaded (default 5m).
	RefreshInterval time.Duration
	// MinRefreshInterval spaces the reloads that unknown key ids trigger (default 10s).
	MinRefreshInterval time.Duration
	// HTTPClient fetches JWKSURL; nil: a client with a 10s timeout that follows no redirects.
	HTTPClient *http.Client
}

// Enabled reports whether JWT authentication is configured.
func (c JWTConfig) Enabled() bool {
	return c.Issuer != "" || c.Audience != "" || c.JWKSFile != "" || c.JWKSURL != ""
}

// validate checks that the settings go together: issuer, audience and exactly one key
// source, or none of them.
func (c JWTConfig) validate() error {
	if !c.Enabled() {
		return nil
	}
	switch {
	case c.Issuer == "" || c.Audience == "":
		return errors.New("server: JWT authentication needs both an issuer and an audience (--jwt-issuer, --jwt-audience)")
	case (c.JWKSFile == "") == (c.JWKSURL == ""):
		return errors.New("server: JWT authentication needs exactly one key source: a JWKS file or a JWKS URL (--jwt-jwks-file or --jwt-jwks-url)")
	case c.Leeway < 0 || c.Leeway > 5*time.Minute:
		return errors.New("server: the JWT clock-skew leeway must be between 0 and 5m")
	}
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return errors.New("server: the JWKS URL must be an https:// (or, on a trusted network, http://) URL")
		}
	}
	return nil
}

func (c JWTConfig) withDefaults() JWTConfig {
	if c.Leeway == 0 {
		c.Leeway = DefaultJWTLeeway
	}
	if c.RefreshInterval <= 0 {
		c.RefreshInterval = DefaultJWKSRefresh
	}
	if c.MinRefreshInterval <= 0 {
		c.MinRefreshInterval = DefaultJWKSMinRefresh
	}
	if c.HTTPClient == nil {
		c.HTTPClient = JWKSClient(nil)
	}
	return c
}

// JWKSClient is the HTTP client JWKS fetches use by default: a 10s timeout, no redirects
// followed, and tlsConfig (nil: the system's trusted CAs) for https URLs.
func JWKSClient(tlsConfig *tls.Config) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = tlsConfig
	return &http.Client{
		Timeout:       DefaultJWKSFetchTimeout,
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// jwtVerifier verifies bearer JWTs against the issuer's key set, which it keeps fresh.
type jwtVerifier struct {
	cfg     JWTConfig
	log     *slog.Logger
	now     func() time.Time
	limiter *rate.Limiter // reloads triggered by unknown key ids

	reload sync.Mutex // one reload at a time

	mu   sync.RWMutex
	keys map[string]jose.JSONWebKey // usable public keys by key id ("" for a key without one)
}

func newJWTVerifier(cfg JWTConfig, log *slog.Logger) *jwtVerifier {
	cfg = cfg.withDefaults()
	return &jwtVerifier{
		cfg: cfg, log: log.With(slog.String("component", "jwt")), now: time.Now,
		limiter: rate.NewLimiter(rate.Every(cfg.MinRefreshInterval), 1),
		keys:    map[string]jose.JSONWebKey{},
	}
}

// errJWT is every verification failure: the caller answers them all alike (Unauthenticated,
// the message of a bad secret) and logs the reason.
type errJWT struct{ reason string }

func (e errJWT) Error() string { return "jwt: " + e.reason }

func jwtErr(format string, args ...any) error { return errJWT{fmt.Sprintf(format, args...)} }

// verify checks raw and returns its subject: the signature (RS256, ES256 or EdDSA, by a key of
// the set), "iss" exact, "aud" holding the audience, "exp" present and not past, "nbf" and
// "iat" not in the future, each within the leeway.
func (j *jwtVerifier) verify(ctx context.Context, raw string) (string, error) {
	if len(raw) > maxJWTBytes {
		return "", jwtErr("token larger than %d bytes", maxJWTBytes)
	}
	tok, err := jwt.ParseSigned(raw, jwtAlgs())
	if err != nil {
		// go-jose names the algorithm it refused; nothing of the token's content.
		return "", jwtErr("not a JWS with an accepted algorithm (RS256, ES256, EdDSA): %v", err)
	}
	if len(tok.Headers) != 1 {
		return "", jwtErr("%d signatures, want 1", len(tok.Headers))
	}
	h := tok.Headers[0]
	key, err := j.key(ctx, h.KeyID, h.Algorithm)
	if err != nil {
		return "", err
	}
	var c jwt.Claims
	if err := tok.Claims(key.Key, &c); err != nil {
		return "", jwtErr("bad signature or claims: %v", err)
	}
	switch {
	case c.Expiry == nil:
		return "", jwtErr("no exp claim")
	case c.Subject == "":
		return "", jwtErr("no sub claim")
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: j.cfg.Issuer, AnyAudience: jwt.Audience{j.cfg.Audience}, Time: j.now()}, j.cfg.Leeway); err != nil {
		return "", jwtErr("claims: %v", err)
	}
	return c.Subject, nil
}

// key returns the key of the set that verifies a token with key id kid and algorithm alg,
// reloading the set once (rate-limited) when kid is unknown.
func (j *jwtVerifier) key(ctx context.Context, kid, alg string) (jose.JSONWebKey, error) {
	k, ok := j.lookup(kid)
	if !ok && j.limiter.Allow() {
		j.log.InfoContext(ctx, "unknown JWT key id: reloading the JWKS", slog.String("kid", truncate(kid, 64)))
		// The reload serves every caller: the one that triggered it may go away.
		j.refresh(context.WithoutCancel(ctx))
		k, ok = j.lookup(kid)
	}
	if !ok {
		return k, jwtErr("no key %q in the JWKS", truncate(kid, 64))
	}
	if !keyFits(k, alg) {
		return k, jwtErr("key %q does not fit algorithm %s", truncate(kid, 64), alg)
	}
	return k, nil
}

// lookup finds kid; a token without a key id uses the set's only key.
func (j *jwtVerifier) lookup(kid string) (jose.JSONWebKey, bool) {
	j.mu.RLock()
	defer j.mu.RUnlock()
	if kid == "" && len(j.keys) == 1 {
		for _, k := range j.keys {
			return k, true
		}
	}
	k, ok := j.keys[kid]
	return k, ok
}

// keyFits reports whether k may verify alg: the right key type (RSA of at least 2048 bits,
// ECDSA P-256, Ed25519) and, when the key names an algorithm, that one.
func keyFits(k jose.JSONWebKey, alg string) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch key := k.Key.(type) {
	case *rsa.PublicKey:
		return alg == string(jose.RS256) && key.N.BitLen() >= minRSABits
	case *ecdsa.PublicKey:
		return alg == string(jose.ES256) && key.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	}
	return false
}

// refresh reloads the key set. A failure keeps the keys it had (logged at warn); it returns
// the error.
func (j *jwtVerifier) refresh(ctx context.Context) error {
	j.reload.Lock()
	defer j.reload.Unlock()
	data, err := j.fetch(ctx)
	var keys map[string]jose.JSONWebKey
	if err == nil {
		keys, err = parseJWKS(data)
	}
	if err != nil {
		j.log.WarnContext(ctx, "cannot load the JWKS; keeping the keys loaded before", slog.String("error", err.Error()))
		return err
	}
	j.mu.Lock()
	j.keys = keys
	j.mu.Unlock()
	j.log.DebugContext(ctx, "JWKS loaded", slog.Int("keys", len(keys)))
	return nil
}

// fetch reads the JWKS document: the file, or a GET of the URL (2xx, at most MaxJWKSBytes).
func (j *jwtVerifier) fetch(ctx context.Context) ([]byte, error) {
	if j.cfg.JWKSFile != "" {
		f, err := os.Open(j.cfg.JWKSFile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return readLimited(f)
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultJWKSFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.cfg.JWKSURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := j.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("GET %s: %s", j.cfg.JWKSURL, resp.Status)
	}
	return readLimited(resp.Body)
}

func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxJWKSBytes+1))
	if err == nil && len(data) > MaxJWKSBytes {
		err = fmt.Errorf("the JWKS is larger than %d bytes", MaxJWKSBytes)
	}
	return data, err
}

// parseJWKS parses a JSON Web Key Set and keeps its usable keys: public signature keys of the
// accepted types (private keys are reduced to their public half, symmetric keys dropped).
func parseJWKS(data []byte) (map[string]jose.JSONWebKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil || set.Keys == nil {
		return nil, errors.New("not a JSON Web Key Set (a JSON object with \"keys\")")
	}
	keys := map[string]jose.JSONWebKey{}
	for _, rk := range set.Keys {
		var k jose.JSONWebKey
		if k.UnmarshalJSON(rk) != nil || (k.Use != "" && k.Use != "sig") {
			continue // a key of a type go-jose does not know, or for encryption
		}
		k = k.Public() // drops symmetric keys (Key becomes nil) and private halves
		if !k.Valid() {
			continue
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue
		}
		if _, dup := keys[k.KeyID]; dup {
			return nil, fmt.Errorf("two keys with key id %q", k.KeyID)
		}
		keys[k.KeyID] = k
	}
	if len(keys) == 0 {
		return nil, errors.New("the JWKS has no usable public signature key (RSA, EC P-256, Ed25519)")
	}
	return keys, nil
}

// run reloads the key set every RefreshInterval until ctx ends; while loads fail (from
// loadErr, the result of the load at start, on) it retries every MinRefreshInterval.
func (j *jwtVerifier) run(ctx context.Context, loadErr error) {
	for {
		wait := j.cfg.RefreshInterval
		if loadErr != nil {
			wait = min(wait, j.cfg.MinRefreshInterval)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		loadErr = j.refresh(ctx)
	}
}

// looksLikeJWT tells a bearer JWT from a tokenvault secret: secrets start with "tvs_"; a
// JWS in compact form is three base64url segments joined by dots.
func looksLikeJWT(s string) bool {
	if strings.HasPrefix(s, "tvs_") || strings.Count(s, ".") != 2 {
		return false
	}
	for _, seg := range strings.Split(s, ".") {
		if seg == "" {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

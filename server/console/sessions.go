package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"

	"github.com/tokenvault/tokenvault/vault"
)

// Session is one signed-in console user. It holds no secret of the credential: only who
// signed in, how, and the session's CSRF token.
type Session struct {
	// Principal is the credential that signed in (its AuthMethod: how it signed in). The
	// server re-reads the credential on every call; this copy names it.
	Principal vault.Principal
	// CSRF is the token state-changing requests must send in X-CSRF-Token.
	CSRF string
	// Created and LastSeen time the absolute and idle timeouts.
	Created, LastSeen time.Time
}

// Actor is the session's principal as the audit trail names the actor of what it does: its
// AuthMethod is console+<how it signed in>.
func (s Session) Actor() vault.Principal {
	p := s.Principal
	if p.ID != "" {
		p.AuthMethod = p.AuthMethod.Console()
	}
	return p
}

// sessions is the in-memory session table, keyed by the SHA-256 of the session id (the
// cookie's value), so that the table itself holds nothing a caller could present. Safe for
// concurrent use.
type sessions struct {
	idle, absolute time.Duration
	max            int
	now            func() time.Time

	mu sync.Mutex
	m  map[[32]byte]*Session
}

func key(id string) [32]byte { return sha256.Sum256([]byte(id)) }

// randomToken returns 32 random bytes, base64url without padding (43 characters).
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// live reports whether s is within its idle and absolute timeouts at now.
func (t *sessions) live(s *Session, now time.Time) bool {
	return now.Before(s.Created.Add(t.absolute)) && now.Before(s.LastSeen.Add(t.idle))
}

// create starts a session for p and returns its id (the cookie value, shown only to the
// browser) and the session. Ended sessions are swept first; when the table is still full, the
// session idle longest is ended.
func (t *sessions) create(p vault.Principal) (string, Session) {
	now := t.now()
	id := randomToken()
	s := &Session{Principal: p, CSRF: randomToken(), Created: now, LastSeen: now}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.m) >= t.max {
		var oldest [32]byte
		var oldestSeen time.Time
		for k, x := range t.m {
			if !t.live(x, now) {
				delete(t.m, k)
				continue
			}
			if oldestSeen.IsZero() || x.LastSeen.Before(oldestSeen) {
				oldest, oldestSeen = k, x.LastSeen
			}
		}
		if len(t.m) >= t.max {
			delete(t.m, oldest)
		}
	}
	t.m[key(id)] = s
	return id, *s
}

// lookup returns the live session id names and, with touch, marks it used now (the idle
// timeout restarts). A session past either timeout is deleted and not found.
func (t *sessions) lookup(id string, touch bool) (Session, bool) {
	if id == "" {
		return Session{}, false
	}
	now := t.now()
	k := key(id)
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.m[k]
	if !ok {
		return Session{}, false
	}
	if !t.live(s, now) {
		delete(t.m, k)
		return Session{}, false
	}
	if touch && now.After(s.LastSeen) {
		s.LastSeen = now
	}
	return *s, true
}

// end deletes the session id names (nothing if there is none).
func (t *sessions) end(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key(id))
}

// endCredential deletes every session of credential id.
func (t *sessions) endCredential(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, s := range t.m {
		if s.Principal.ID == id {
			delete(t.m, k)
		}
	}
}

package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
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

// SessionStore keeps the console's sessions, each an opaque value under the SHA-256 of its
// session id (the cookie's value), so that the store holds nothing a caller could present.
// The server's keeps them in the vault's store, where every replica sees every session.
type SessionStore interface {
	// Put stores value under key.
	Put(ctx context.Context, key [32]byte, value []byte) error
	// Get returns the value under key, nil when there is none.
	Get(ctx context.Context, key [32]byte) ([]byte, error)
	// Update replaces the value under key with fn's result, atomically, and only while key
	// is present: fn is not called for an absent key, and a nil result writes nothing.
	Update(ctx context.Context, key [32]byte, fn func(cur []byte) []byte) error
	// Delete removes keys (those present).
	Delete(ctx context.Context, keys ...[32]byte) error
	// Range calls fn with every session until fn returns false.
	Range(ctx context.Context, fn func(key [32]byte, value []byte) bool) error
}

// storedSession is a Session as its SessionStore keeps it. The CSRF token is not stored: it is
// derived from the session id (csrfOf), which the store never sees.
type storedSession struct {
	Credential string           `json:"credential"`
	Name       string           `json:"name,omitempty"`
	Role       vault.Role       `json:"role"`
	Vendor     string           `json:"vendor,omitempty"`
	AuthMethod vault.AuthMethod `json:"auth_method"`
	Created    time.Time        `json:"created"`
	LastSeen   time.Time        `json:"last_seen"`
}

func (s storedSession) session(id string) Session {
	return Session{
		Principal: vault.Principal{ID: s.Credential, Name: s.Name, Role: s.Role, Vendor: s.Vendor, AuthMethod: s.AuthMethod},
		CSRF:      csrfOf(id), Created: s.Created, LastSeen: s.LastSeen,
	}
}

// sessions is the session table over a SessionStore: ids, timeouts and the bound on their
// number. Safe for concurrent use, also by several replicas over one store.
type sessions struct {
	idle, absolute time.Duration
	max            int
	now            func() time.Time
	store          SessionStore
}

func key(id string) [32]byte { return sha256.Sum256([]byte(id)) }

// csrfOf is a session's CSRF token: an HMAC of its id, so that no replica needs to store it
// and a copy of the store does not hold it.
func csrfOf(id string) string {
	m := hmac.New(sha256.New, []byte(id))
	m.Write([]byte("tokenvault console csrf v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// randomToken returns 32 random bytes, base64url without padding (43 characters).
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// live reports whether s is within its idle and absolute timeouts at now.
func (t *sessions) live(s storedSession, now time.Time) bool {
	return now.Before(s.Created.Add(t.absolute)) && now.Before(s.LastSeen.Add(t.idle))
}

// touchEvery is how stale a session's LastSeen may get before a use writes it again: a
// fifteenth of the idle timeout (a minute for the default 15), so that the idle timeout
// holds to within that and a busy console does not write on every call.
func (t *sessions) touchEvery() time.Duration { return t.idle / 15 }

// create starts a session for p and returns its id (the cookie value, shown only to the
// browser) and the session. Ended sessions are swept first; when the table is still full, the
// session idle longest is ended.
func (t *sessions) create(ctx context.Context, p vault.Principal) (string, Session, error) {
	now := t.now()
	var ended [][32]byte
	var oldest [32]byte
	var oldestSeen time.Time
	n := 0
	err := t.store.Range(ctx, func(k [32]byte, v []byte) bool {
		var s storedSession
		if json.Unmarshal(v, &s) != nil || !t.live(s, now) {
			ended = append(ended, k)
			return true
		}
		n++
		if oldestSeen.IsZero() || s.LastSeen.Before(oldestSeen) {
			oldest, oldestSeen = k, s.LastSeen
		}
		return true
	})
	if err != nil {
		return "", Session{}, err
	}
	if n >= t.max {
		ended = append(ended, oldest)
	}
	if err := t.store.Delete(ctx, ended...); err != nil {
		return "", Session{}, err
	}
	id := randomToken()
	s := storedSession{Credential: p.ID, Name: p.Name, Role: p.Role, Vendor: p.Vendor, AuthMethod: p.AuthMethod, Created: now, LastSeen: now}
	b, err := json.Marshal(s)
	if err != nil {
		return "", Session{}, err
	}
	if err := t.store.Put(ctx, key(id), b); err != nil {
		return "", Session{}, err
	}
	return id, s.session(id), nil
}

// errNoSuchSession is lookup's answer for an id that names no live session.
var errNoSuchSession = errors.New("no such session")

// lookup returns the live session id names and, with touch, marks it used now (the idle
// timeout restarts). A session past either timeout is deleted and not found
// (errNoSuchSession); any other error is the store's.
func (t *sessions) lookup(ctx context.Context, id string, touch bool) (Session, error) {
	if id == "" {
		return Session{}, errNoSuchSession
	}
	now := t.now()
	k := key(id)
	b, err := t.store.Get(ctx, k)
	if err != nil {
		return Session{}, err
	}
	var s storedSession
	if b == nil || json.Unmarshal(b, &s) != nil {
		return Session{}, errNoSuchSession
	}
	if !t.live(s, now) {
		if err := t.store.Delete(ctx, k); err != nil {
			return Session{}, err
		}
		return Session{}, errNoSuchSession
	}
	if touch && now.Sub(s.LastSeen) >= t.touchEvery() {
		// Only while the session exists: a sign-out on another replica stays a sign-out.
		err := t.store.Update(ctx, k, func(cur []byte) []byte {
			var c storedSession
			if json.Unmarshal(cur, &c) != nil || !now.After(c.LastSeen) {
				return nil
			}
			c.LastSeen = now
			b, err := json.Marshal(c)
			if err != nil {
				return nil
			}
			return b
		})
		if err != nil {
			return Session{}, err
		}
		s.LastSeen = now
	}
	return s.session(id), nil
}

// end deletes the session id names (nothing if there is none).
func (t *sessions) end(ctx context.Context, id string) error {
	return t.store.Delete(ctx, key(id))
}

// endCredential deletes every session of credential id.
func (t *sessions) endCredential(ctx context.Context, id string) error {
	var ks [][32]byte
	err := t.store.Range(ctx, func(k [32]byte, v []byte) bool {
		var s storedSession
		if json.Unmarshal(v, &s) == nil && s.Credential == id {
			ks = append(ks, k)
		}
		return true
	})
	if err != nil {
		return err
	}
	return t.store.Delete(ctx, ks...)
}

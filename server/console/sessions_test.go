package console

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault"
)

// memStore is a SessionStore in memory, for the session table's own tests and for failures a
// real store cannot produce on cue; the server's store (the vault's) is tested end to end in
// server/ (replicas_test.go, pgfail_test.go, console_test.go) and vault/.
type memStore struct {
	mu sync.Mutex
	m  map[[32]byte][]byte
}

func (s *memStore) Put(_ context.Context, k [32]byte, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = bytes.Clone(v)
	return nil
}

func (s *memStore) Get(_ context.Context, k [32]byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.m[k]), nil
}

func (s *memStore) Update(_ context.Context, k [32]byte, fn func([]byte) []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.m[k]; ok {
		if next := fn(bytes.Clone(cur)); next != nil {
			s.m[k] = next
		}
	}
	return nil
}

func (s *memStore) Delete(_ context.Context, ks ...[32]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range ks {
		delete(s.m, k)
	}
	return nil
}

func (s *memStore) Range(_ context.Context, fn func([32]byte, []byte) bool) error {
	s.mu.Lock()
	m := maps.Clone(s.m)
	s.mu.Unlock()
	for k, v := range m {
		if !fn(k, v) {
			break
		}
	}
	return nil
}

// TestSessionsStoreNothingPresentable: what the store keeps of a session is keyed by the
// SHA-256 of its id and holds neither the id nor the CSRF token (derived from the id); a
// lookup gives back the same CSRF token; a use writes LastSeen again only once it is a
// fifteenth of the idle timeout old. (That a use never brings back a session ended on another
// replica is the store's Update: vault.TestConsoleSessionStore.)
func TestSessionsStoreNothingPresentable(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	st := &memStore{m: map[[32]byte][]byte{}}
	tab := &sessions{idle: 15 * time.Minute, absolute: time.Hour, max: 3, now: func() time.Time { return now }, store: st}
	p := vault.Principal{ID: "cred-1", Name: "ops", Role: vault.RoleAdmin, AuthMethod: vault.AuthSecret}
	id, s, err := tab.create(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	stored, ok := st.m[sha256.Sum256([]byte(id))]
	if !ok || len(st.m) != 1 {
		t.Fatalf("stored under %d keys, not under the SHA-256 of the id", len(st.m))
	}
	if bytes.Contains(stored, []byte(id)) || bytes.Contains(stored, []byte(s.CSRF)) || s.CSRF == "" {
		t.Errorf("the stored session holds the session id or its CSRF token: %s", stored)
	}
	got, err := tab.lookup(ctx, id, true)
	if err != nil || got.CSRF != s.CSRF || got.Principal.ID != "cred-1" || got.Principal.AuthMethod != vault.AuthSecret {
		t.Fatalf("lookup = %+v, %v", got, err)
	}
	if _, err := tab.lookup(ctx, id+"x", true); !errors.Is(err, errNoSuchSession) {
		t.Errorf("lookup of another id: %v", err)
	}

	now = now.Add(30 * time.Second) // under a minute: no write
	if _, err := tab.lookup(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st.m[key(id)], stored) {
		t.Error("a use 30 s after the last wrote the session again (a minute is the threshold)")
	}
	now = now.Add(time.Minute)
	if _, err := tab.lookup(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(st.m[key(id)], stored) {
		t.Error("a use 90 s after sign-in did not restart the idle timeout")
	}

	if err := tab.end(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := tab.lookup(ctx, id, true); !errors.Is(err, errNoSuchSession) {
		t.Errorf("lookup after end: %v", err)
	}

	// Timeouts end sessions; at the bound, the one idle longest makes room.
	var ids []string
	for range 3 {
		id, _, err := tab.create(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		now = now.Add(time.Second)
	}
	if _, _, err := tab.create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := tab.lookup(ctx, ids[0], false); !errors.Is(err, errNoSuchSession) {
		t.Errorf("the session idle longest survived a sign-in at the bound: %v", err)
	}
	if len(st.m) != 3 {
		t.Errorf("%d sessions stored, bound 3", len(st.m))
	}
	now = now.Add(16 * time.Minute)
	if _, err := tab.lookup(ctx, ids[1], true); !errors.Is(err, errNoSuchSession) {
		t.Errorf("a session idle 16 minutes (timeout 15): %v", err)
	}
	if _, ok := st.m[key(ids[1])]; ok {
		t.Error("a timed-out session was not deleted when found")
	}
}

// flakyBackend: Check fails with a store error (a PostgreSQL hiccup while reading the
// credential), not vault.ErrUnauthenticated.
type flakyBackend struct{}

func (flakyBackend) SignIn(*http.Request, string) (vault.Principal, error) {
	return vault.Principal{}, vault.ErrUnauthenticated
}
func (flakyBackend) Check(*http.Request, string) (vault.Principal, error) {
	return vault.Principal{}, errors.New("store: read: connection reset by peer")
}
func (flakyBackend) Audit(*http.Request, string, vault.Principal, string, string) {}

// TestSessionKeptWhenCredentialUnreadable: GET /ui/api/session re-reads the credential; when
// that read fails for a reason other than the credential being gone (the database), the answer
// is 503 and the session stays: only vault.ErrUnauthenticated signs the user out. (A real
// store cannot fail the credential read while serving the session read, so a stub Backend.)
func TestSessionKeptWhenCredentialUnreadable(t *testing.T) {
	st := &memStore{m: map[[32]byte][]byte{}}
	c, err := New(Config{Backend: flakyBackend{}, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := c.sessions.create(context.Background(), vault.Principal{ID: "cred-1", Role: vault.RoleAdmin, AuthMethod: vault.AuthSecret})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/ui/api/session", nil)
	r.AddCookie(&http.Cookie{Name: CookieName, Value: id})
	w := httptest.NewRecorder()
	c.Handler().ServeHTTP(w, r)
	_, still := st.m[key(id)]
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || !still {
		t.Errorf("a store error reading the credential: HTTP %d (Retry-After %q), session kept %v; want 503 with Retry-After, session kept", w.Code, w.Header().Get("Retry-After"), still)
	}
}

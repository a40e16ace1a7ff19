package vault

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

// TestConsoleSessionStore: the console's sessions on both backends. Update changes only a
// session that exists, so a use on one replica cannot bring back a session that a sign-out on
// another deleted; Range sees every session; values are bounded.
func TestConsoleSessionStore(t *testing.T) {
	clusterBackends(t, func(t *testing.T, open func(*testing.T, int, *clock) *replicaSet) {
		ctx := context.Background()
		rs := open(t, 2, nil)
		a, b := rs.v[0], rs.v[1]
		k1, k2 := sha256.Sum256([]byte("id-1")), sha256.Sum256([]byte("id-2"))
		if err := a.PutConsoleSession(ctx, k1, []byte(`{"n":1}`)); err != nil {
			t.Fatal(err)
		}
		if err := a.PutConsoleSession(ctx, k2, []byte(`{"n":2}`)); err != nil {
			t.Fatal(err)
		}
		if got, err := b.ConsoleSession(ctx, k1); err != nil || string(got) != `{"n":1}` {
			t.Fatalf("replica 2 reads %q, %v", got, err)
		}
		if err := b.UpdateConsoleSession(ctx, k1, func(cur []byte) []byte { return []byte(strings.Replace(string(cur), "1", "3", 1)) }); err != nil {
			t.Fatal(err)
		}
		if got, _ := a.ConsoleSession(ctx, k1); string(got) != `{"n":3}` {
			t.Errorf("after Update: %q", got)
		}
		if err := a.DeleteConsoleSessions(ctx, k1); err != nil {
			t.Fatal(err)
		}
		called := false
		if err := b.UpdateConsoleSession(ctx, k1, func([]byte) []byte { called = true; return []byte(`{"n":4}`) }); err != nil {
			t.Fatal(err)
		}
		if got, _ := a.ConsoleSession(ctx, k1); called || got != nil {
			t.Errorf("Update of a deleted session: fn called %v, stored %q; want neither", called, got)
		}
		var seen [][32]byte
		if err := b.RangeConsoleSessions(ctx, func(k [32]byte, _ []byte) bool { seen = append(seen, k); return true }); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 1 || seen[0] != k2 {
			t.Errorf("Range saw %d sessions, want only the second", len(seen))
		}
		if err := a.PutConsoleSession(ctx, k1, make([]byte, MaxConsoleSessionSize+1)); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("an oversized session: %v", err)
		}
	})
}

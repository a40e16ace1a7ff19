package vault

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// viewCounter counts the store reads of the vault above it.
type viewCounter struct {
	store.Store
	views atomic.Int64
}

func (s *viewCounter) View(ctx context.Context, fn func(store.Tx) error) error {
	s.views.Add(1)
	return s.Store.View(ctx, fn)
}

func openCounted(t *testing.T) (*Vault, *clock, *viewCounter) {
	t.Helper()
	clk := newClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	vc := &viewCounter{}
	v, _ := openTest(t, withClock(clk), wrapStore(func(s store.Store) store.Store { vc.Store = s; return vc }))
	return v, clk, vc
}

func mustCreate(t *testing.T, v *Vault, spec CredentialSpec) (Credential, string) {
	t.Helper()
	c, secret, err := v.CreateCredential(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return c, secret
}

func wantAuth(t *testing.T, v *Vault, secret string, ok bool) {
	t.Helper()
	_, err := v.Authenticate(context.Background(), secret)
	switch {
	case ok && err != nil:
		t.Fatalf("Authenticate: %v, want success", err)
	case !ok && !errors.Is(err, ErrUnauthenticated):
		t.Fatalf("Authenticate: %v, want ErrUnauthenticated", err)
	}
}

// The second authentication of a secret reads only the credential generation (one read); an
// unknown secret is also looked up every time.
func TestCredCacheSparesTheReadOfAKnownSecretOnly(t *testing.T) {
	v, _, vc := openCounted(t)
	_, secret := mustCreate(t, v, CredentialSpec{Name: "app", Role: RoleTokenizer})
	wantAuth(t, v, secret, true)
	before := vc.views.Load()
	for range 5 {
		wantAuth(t, v, secret, true)
	}
	if n := vc.views.Load() - before; n != 5 {
		t.Errorf("cached secret: %d store reads, want 5 (the generation only)", n)
	}
	before = vc.views.Load()
	for range 3 {
		wantAuth(t, v, "tvs_unknown", false)
	}
	if n := vc.views.Load() - before; n != 6 {
		t.Errorf("unknown secret: %d store reads, want 6 (the generation and the lookup: refusals are not cached)", n)
	}
}

// Revocation takes effect at the very next call for a cached secret, certificate and JWT
// subject.
func TestCredCacheRevokeIsImmediate(t *testing.T) {
	ctx := context.Background()
	v, _, _ := openCounted(t)
	sc, secret := mustCreate(t, v, CredentialSpec{Name: "app", Role: RoleTokenizer})
	cc, _ := mustCreate(t, v, CredentialSpec{Name: "svc", Role: RoleVendor, Vendor: "acme", CertSAN: "spiffe://acme/svc"})
	jc, _ := mustCreate(t, v, CredentialSpec{Name: "job", Role: RoleDetokenizer, JWTSubject: "job@example"})
	for range 2 { // the second one is served from the cache
		wantAuth(t, v, secret, true)
		if _, err := v.AuthenticateCert(ctx, []string{"other", "spiffe://acme/svc"}); err != nil {
			t.Fatal(err)
		}
		if _, err := v.AuthenticateJWTSubject(ctx, "job@example"); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{sc.ID, cc.ID, jc.ID} {
		if err := v.RevokeCredential(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	wantAuth(t, v, secret, false)
	if _, err := v.AuthenticateCert(ctx, []string{"other", "spiffe://acme/svc"}); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked certificate credential: %v", err)
	}
	if _, err := v.AuthenticateJWTSubject(ctx, "job@example"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("revoked JWT credential: %v", err)
	}
}

// Expiry is checked on every call, also for an entry the cache still holds.
func TestCredCacheExpiryWithinTTL(t *testing.T) {
	v, clk, vc := openCounted(t)
	_, secret := mustCreate(t, v, CredentialSpec{Name: "app", Role: RoleTokenizer, Expires: time.Hour})
	clk.add(time.Hour - credCacheTTL/2)
	wantAuth(t, v, secret, true)
	before := vc.views.Load()
	clk.add(credCacheTTL / 4)
	wantAuth(t, v, secret, true)
	clk.add(credCacheTTL / 4) // exactly at ExpireTime, still inside the entry's TTL
	wantAuth(t, v, secret, false)
	if n := vc.views.Load() - before; n != 2 {
		t.Errorf("%d store reads, want 2 (generations only): the test meant to exercise a cached entry", n)
	}
}

// Rotation: without overlap the old secret dies at the next call; with overlap it dies when
// the overlap ends, also while its entry is cached; a prune is seen at once.
func TestCredCacheRotation(t *testing.T) {
	ctx := context.Background()
	v, clk, vc := openCounted(t)
	c, old := mustCreate(t, v, CredentialSpec{Name: "app", Role: RoleTokenizer})
	wantAuth(t, v, old, true)
	_, cur, err := v.RotateCredential(ctx, c.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantAuth(t, v, old, false)
	wantAuth(t, v, cur, true)

	_, next, err := v.RotateCredential(ctx, c.ID, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute - credCacheTTL/2)
	wantAuth(t, v, cur, true) // the previous secret, inside its overlap
	wantAuth(t, v, next, true)
	before := vc.views.Load()
	clk.add(credCacheTTL / 2) // the overlap ends; the entry is still young
	wantAuth(t, v, cur, false)
	wantAuth(t, v, next, true)
	if n := vc.views.Load() - before; n != 2 {
		t.Errorf("%d store reads, want 2 (generations only): the test meant to exercise cached entries", n)
	}
	if n, err := v.PruneRotatedSecrets(ctx); err != nil || n != 1 {
		t.Fatalf("PruneRotatedSecrets = %d, %v", n, err)
	}
	wantAuth(t, v, cur, false)
	wantAuth(t, v, next, true)
}

// A write the vault did not make (another replica sharing the store) is seen within
// credCacheTTL.
func TestCredCacheTTLBoundsForeignWrites(t *testing.T) {
	ctx := context.Background()
	v, clk, _ := openCounted(t)
	c, secret := mustCreate(t, v, CredentialSpec{Name: "app", Role: RoleTokenizer})
	wantAuth(t, v, secret, true)
	if err := v.store.Update(ctx, func(tx store.Tx) error {
		_, err := updateJSON(tx, bucketCreds, []byte(c.ID), func(cr *Credential) error { cr.Revoked = true; return nil })
		return err
	}); err != nil {
		t.Fatal(err)
	}
	wantAuth(t, v, secret, true) // served from the cache: the documented window
	clk.add(credCacheTTL)
	wantAuth(t, v, secret, false)
}

// The cache is bounded: it is cleared when full.
func TestCredCacheBounded(t *testing.T) {
	v, _, _ := openCounted(t)
	loads := 0
	load := func() (Credential, bool, error) { loads++; return Credential{ID: "x"}, true, nil }
	for i := range maxCachedCredentials + 10 {
		if _, _, err := v.cachedCredential(context.Background(), credCacheKey{index: bucketCredHash, key: string(rune(i))}, load); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	v.credCache.m.Range(func(_, _ any) bool { n++; return true })
	if n > maxCachedCredentials {
		t.Errorf("%d entries, bound %d", n, maxCachedCredentials)
	}
	if loads != maxCachedCredentials+10 {
		t.Errorf("%d loads", loads)
	}
}

// Concurrent authentications and a revocation: no authentication that starts after
// RevokeCredential returned succeeds.
func TestCredCacheConcurrentRevoke(t *testing.T) {
	ctx := context.Background()
	v, _, _ := openCounted(t)
	c, secret := mustCreate(t, v, CredentialSpec{Name: "app", Role: RoleTokenizer})
	var revoked atomic.Bool
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var bad atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				after := revoked.Load()
				if _, err := v.Authenticate(ctx, secret); err == nil && after {
					bad.Add(1)
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := v.RevokeCredential(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	revoked.Store(true)
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Errorf("%d authentications succeeded after the revocation returned", n)
	}
}

// Every write to a credential bucket is in credentials.go and goes through
// updateCredentials, which invalidates the cache.
func TestCredentialWritesInvalidateTheCache(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	write := regexp.MustCompile(`(Put|Delete)\((bucketCred|ix\.bucket)|updateJSON\(tx, bucketCred`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(src)
		if f != "credentials.go" {
			if loc := write.FindStringIndex(s); loc != nil {
				t.Errorf("%s writes a credential bucket (%q) outside credentials.go", f, s[loc[0]:loc[1]])
			}
			continue
		}
		if strings.Contains(s, "updateAudited(") || strings.Contains(s, "store.Update(") {
			t.Errorf("credentials.go writes without updateCredentials (the cache would not be invalidated)")
		}
	}
}

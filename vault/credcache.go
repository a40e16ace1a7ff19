package vault

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// The verified-credential cache keeps stored credentials that a lookup found, so that a call
// (and the second authentication of an HTTP request, by the body guard and again behind the
// gateway) does not read and decode the credential from the store every time.
//
// It caches only the store read, never a decision: every Authenticate* call still checks the
// credential is usable (not revoked, not expired, by the vault's clock), compares the secret's
// hash in constant time, checks the rotation overlap, the role and the bound identity, exactly
// as without the cache. Only found credentials are cached: an unknown secret or identity costs
// a store read every time, so nothing a caller sends can fill the cache with refusals.
//
// Invalidation: every write to the credential buckets (creds, credhash, credsan, credjwt)
// goes through updateCredentials, which bumps gen once the write has returned (committed or
// not). An entry records the generation current before its store read began, and serves only
// while gen is unchanged, so a read that raced a write is never served after the write
// returns: a revoked, rotated or pruned credential is seen by the very next call.
//
// Bounds: at most maxCachedCredentials entries (the map is cleared when full) and each entry
// serves for at most credCacheTTL. The TTL matters only for a store shared by several
// replicas (a write by another replica does not bump this vault's gen): such a write is seen
// here within credCacheTTL. With the single-process bbolt store, gen alone is exact.
type credCache struct {
	gen atomic.Uint64
	m   sync.Map // credCacheKey → credEntry
	n   atomic.Int64
}

// maxCachedCredentials bounds the cache; it is cleared when full.
const maxCachedCredentials = 4096

// credCacheTTL is how long a cached credential serves at most (see credCache).
const credCacheTTL = time.Second

// credCacheKey names one lookup: the index it goes through and its key in that index (the
// SHA-256 of a secret; a JWT subject; a certificate's SANs, length-prefixed).
type credCacheKey struct {
	index store.Bucket
	key   string
}

type credEntry struct {
	c   Credential
	gen uint64
	at  time.Time
}

// invalidate makes every cached credential stale.
func (cc *credCache) invalidate() { cc.gen.Add(1) }

// cachedCredential returns the credential that load finds for key, from the cache when an
// entry read at the current generation is younger than credCacheTTL, else from load (and
// caches it when found). The caller must treat the returned credential as read-only.
func (v *Vault) cachedCredential(key credCacheKey, load func() (Credential, bool, error)) (Credential, bool, error) {
	gen := v.credCache.gen.Load() // before the read: a write that commits after it makes the entry stale
	now := v.now()
	if e, ok := v.credCache.m.Load(key); ok {
		ent := e.(credEntry)
		if age := now.Sub(ent.at); ent.gen == gen && age >= 0 && age < credCacheTTL {
			return ent.c, true, nil
		}
	}
	c, found, err := load()
	if err != nil || !found {
		return c, found, err
	}
	ent := credEntry{c: c, gen: gen, at: now}
	// Count entries, not refreshes: a stale entry replaced under its key adds none.
	if _, replaced := v.credCache.m.Swap(key, ent); !replaced && v.credCache.n.Add(1) > maxCachedCredentials {
		v.credCache.m.Clear()
		v.credCache.m.Store(key, ent)
		v.credCache.n.Store(1)
	}
	return c, true, nil
}

// identityCacheKey is the cache key of a lookup of keys (in order) in identity index b.
func identityCacheKey(b store.Bucket, keys []string) credCacheKey {
	var sb strings.Builder
	for _, k := range keys {
		sb.WriteString(strconv.Itoa(len(k)))
		sb.WriteByte(':')
		sb.WriteString(k)
	}
	return credCacheKey{index: b, key: sb.String()}
}

// updateCredentials is updateAudited for every write to the credential buckets: once the
// write has returned, whatever its outcome, it invalidates the verified-credential cache.
func (v *Vault) updateCredentials(ctx context.Context, ev AuditEvent, change func(tx store.Tx, ev *AuditEvent) error) (uint64, error) {
	defer v.credCache.invalidate()
	return v.updateAudited(ctx, ev, change)
}

package vault

import (
	"context"
	"errors"
	"fmt"
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
// goes through updateCredentials, which bumps meta "cred_gen" in the write's own transaction,
// and bumps gen in memory once the write has returned (committed or not). An entry records
// both generations as they were before its store read began, and serves only while both are
// unchanged; every lookup reads cred_gen from the store (one 8-byte read, instead of the
// index, the credential and its JSON decoding). So a read that raced a write is never served
// after the write returns, on this replica or any other sharing the store: a credential
// revoked, rotated or pruned on any replica is refused by the very next call everywhere.
// (Measured on bbolt in BENCHMARKS.md: BenchmarkAuthenticate.)
//
// On a remote store (one that implements store.KeyReader: pgstore) concurrent calls share
// their reads of cred_gen, without weakening this: a call never uses a read that was sent
// before the call began. It joins the next read to be sent (and starts it when none is in
// flight); while one is in flight, the calls that arrive wait for it to be answered and then
// share the one sent after it. Each read is a single statement (store.KeyReader: one round
// trip, no BEGIN or ROLLBACK). So every call still sees every credential write that committed
// before it began, and N concurrent calls cost about one round trip per round trip's time
// instead of one transaction each. (Round trips per call: BENCHMARKS.md, issue-12 section.)
//
// Bounds: at most maxCachedCredentials entries (the map is cleared when full) and each entry
// serves for at most credCacheTTL. A write that bypasses updateCredentials (there is none in
// the vault; a test makes one) is seen within credCacheTTL.
type credCache struct {
	gen   atomic.Uint64
	m     sync.Map // credCacheKey → credEntry
	n     atomic.Int64
	reads genReads // the shared reads of cred_gen on a remote store
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
	c         Credential
	gen, sgen uint64 // the generations in memory and in the store before the read
	at        time.Time
}

// invalidate makes every cached credential stale.
func (cc *credCache) invalidate() { cc.gen.Add(1) }

// cachedCredential returns the credential that load finds for key, from the cache when an
// entry read at the current generations is younger than credCacheTTL, else from load (and
// caches it when found). The caller must treat the returned credential as read-only.
func (v *Vault) cachedCredential(ctx context.Context, key credCacheKey, load func() (Credential, bool, error)) (Credential, bool, error) {
	gen := v.credCache.gen.Load() // before the read: a write that commits after it makes the entry stale
	sgen, err := v.storedCredGen(ctx)
	if err != nil {
		return Credential{}, false, err
	}
	now := v.now()
	if e, ok := v.credCache.m.Load(key); ok {
		ent := e.(credEntry)
		if age := now.Sub(ent.at); ent.gen == gen && ent.sgen == sgen && age >= 0 && age < credCacheTTL {
			return ent.c, true, nil
		}
	}
	c, found, err := load()
	if err != nil || !found {
		return c, found, err
	}
	ent := credEntry{c: c, gen: gen, sgen: sgen, at: now}
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

// updateCredentials is updateAudited for every write to the credential buckets: it bumps
// meta "cred_gen" in the write's transaction (the caches of every replica) and, once the
// write has returned, whatever its outcome, this vault's generation in memory.
func (v *Vault) updateCredentials(ctx context.Context, ev AuditEvent, change func(tx store.Tx, ev *AuditEvent) error) (uint64, error) {
	defer v.credCache.invalidate()
	return v.updateAudited(ctx, ev, func(tx store.Tx, ev *AuditEvent) error {
		err := change(tx, ev)
		if err != nil && err != errSkipAudit {
			return err
		}
		if _, berr := bumpCounter(tx, metaCredGen); berr != nil {
			return berr
		}
		return err
	})
}

// credGenReadTimeout bounds one shared read of cred_gen (see genReads): the calls waiting for
// it give up at their own deadlines, and the next read is sent when it ends.
const credGenReadTimeout = 5 * time.Second

// storedCredGen returns meta "cred_gen" as stored, read after this call began: through the
// shared reads of genReads on a remote store, by a View otherwise (bbolt: a local read).
func (v *Vault) storedCredGen(ctx context.Context) (uint64, error) {
	kr, ok := v.base.(store.KeyReader)
	if !ok {
		var sgen uint64
		err := v.store.View(ctx, func(tx store.Tx) error { sgen = readCounter(tx, metaCredGen); return nil })
		return sgen, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r := v.credCache.reads.join(func() (uint64, error) {
		rctx, cancel := context.WithTimeout(context.Background(), credGenReadTimeout)
		defer cancel()
		b, err := kr.ReadKey(rctx, bucketMeta, metaCredGen)
		if err != nil {
			if rctx.Err() != nil && !errors.Is(err, store.ErrUnavailable) {
				err = fmt.Errorf("%w: credential generation not read in %v: %w", store.ErrUnavailable, credGenReadTimeout, err)
			}
			return 0, err
		}
		return decodeCounter(b), nil
	})
	select {
	case <-r.done:
		return r.gen, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// genReads shares reads of cred_gen among concurrent calls: at most one read is in flight,
// and the calls that arrive meanwhile join the one sent after it (see credCache).
type genReads struct {
	mu      sync.Mutex
	running *genRead // sent, not answered yet
	next    *genRead // to be sent once running is answered
}

// genRead is one read of cred_gen; gen and err are set before done is closed.
type genRead struct {
	done chan struct{}
	gen  uint64
	err  error
}

// join returns a read that is sent after this call: a new one sent at once when none is in
// flight, otherwise the one queued behind the read in flight.
func (g *genReads) join(read func() (uint64, error)) *genRead {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running == nil {
		g.running = &genRead{done: make(chan struct{})}
		go g.run(g.running, read)
		return g.running
	}
	if g.next == nil {
		g.next = &genRead{done: make(chan struct{})}
	}
	return g.next
}

// run sends r, then the reads queued behind it, until none is queued.
func (g *genReads) run(r *genRead, read func() (uint64, error)) {
	for r != nil {
		r.gen, r.err = read()
		close(r.done)
		g.mu.Lock()
		r, g.running, g.next = g.next, g.next, nil
		g.mu.Unlock()
	}
}

package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testpg"
	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/store/pgstore"
	"github.com/tokenvault/tokenvault/vault/template"
)

// Replicas sharing one store. Each test runs on bbolt (several vaults over one store.Bolt in
// this process: the same code path) and on PostgreSQL (each vault with its own pgstore pool on
// one database, as separate processes would be).

// errKilled is what a killed store answers.
var errKilled = errors.New("test: this replica is dead")

// killable is a store that can be made to fail every call, as for a replica whose process or
// network died.
type killable struct {
	store.Store
	dead atomic.Bool
}

func (k *killable) View(ctx context.Context, fn func(store.Tx) error) error {
	if k.dead.Load() {
		return errKilled
	}
	return k.Store.View(ctx, fn)
}

func (k *killable) Update(ctx context.Context, fn func(store.Tx) error) error {
	if k.dead.Load() {
		return errKilled
	}
	return k.Store.Update(ctx, fn)
}

// replicaSet is n vaults over one store, each through its own killable.
type replicaSet struct {
	v     []*Vault
	kill  []*killable
	clock *clock // nil: real time
}

// clusterBackends runs fn on bbolt and on PostgreSQL (one cluster for every subtest of t).
func clusterBackends(t *testing.T, fn func(t *testing.T, open func(t *testing.T, n int, clk *clock) *replicaSet)) {
	t.Run("bolt", func(t *testing.T) {
		fn(t, func(t *testing.T, n int, clk *clock) *replicaSet {
			st := openStore(t, filepath.Join(t.TempDir(), "v.db"), store.Options{})
			stores := make([]store.Store, n)
			for i := range stores {
				stores[i] = st
			}
			return openReplicas(t, stores, clk)
		})
	})
	t.Run("postgres", func(t *testing.T) {
		c := testpg.Start(t)
		dbs := 0
		var mu sync.Mutex
		fn(t, func(t *testing.T, n int, clk *clock) *replicaSet {
			mu.Lock()
			dbs++
			url := c.CreateDB(t, fmt.Sprintf("cluster_%d", dbs))
			mu.Unlock()
			stores := make([]store.Store, n)
			for i := range stores {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				s, err := pgstore.Open(ctx, url, pgstore.Options{})
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				stores[i] = s
			}
			return openReplicas(t, stores, clk)
		})
	})
}

func openReplicas(t *testing.T, stores []store.Store, clk *clock) *replicaSet {
	t.Helper()
	kek := newKEK(t)
	rs := &replicaSet{clock: clk}
	for i, st := range stores {
		k := &killable{Store: st}
		cfg := Config{Store: k, KEK: kek, ReplicaID: fmt.Sprintf("r%d", i)}
		if os.Getenv("CLUSTER_DEBUG") != "" {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("replica", cfg.ReplicaID)
		}
		if clk != nil {
			cfg.Now = clk.now
		}
		v, err := Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		rs.v, rs.kill = append(rs.v, v), append(rs.kill, k)
	}
	return rs
}

// run starts RunBackground on replica i with fast cluster timings; the returned function
// stops it (and waits).
func (rs *replicaSet) run(i int, opts BackgroundOptions) (stop func()) {
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL, opts.HeartbeatInterval = 2*time.Second, 200*time.Millisecond
	}
	if opts.Interval == 0 {
		opts.Interval = 200 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rs.v[i].RunBackground(ctx, opts) }()
	return func() { cancel(); <-done }
}

// runAll starts RunBackground on every replica (see run).
func (rs *replicaSet) runAll() []func() {
	var stops []func()
	for i := range rs.v {
		stops = append(stops, rs.run(i, BackgroundOptions{}))
	}
	return stops
}

func stopAll(stops []func()) {
	for _, s := range stops {
		s()
	}
}

// holder polls until one replica (not one of except) holds the lease, and returns it.
func (rs *replicaSet) holder(t *testing.T, within time.Duration, except ...int) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		for i, v := range rs.v {
			skip := false
			for _, e := range except {
				skip = skip || e == i
			}
			if _, ok := v.Leased(context.Background()); ok && !skip {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no replica holds the background lease after %s", within)
	return -1
}

// storedRecord returns the stored bytes of (domain, token): a record, a tombstone or nil.
func storedRecord(t *testing.T, v *Vault, domain, token string) []byte {
	t.Helper()
	var b []byte
	if err := v.store.View(context.Background(), func(tx store.Tx) error {
		b = bytes.Clone(tx.Get(bucketRecords, recordKey(domain, token)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b
}

func tokenizeOne(t *testing.T, v *Vault, it TokenizeItem) string {
	t.Helper()
	res, err := v.Tokenize(context.Background(), []TokenizeItem{it})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	return res[0].Token
}

// A grant of 60 a minute revealed through three replicas at once reveals 60 in total, not 60
// each; a minute later, 60 more. Every refusal says when to retry.
func TestClusterGrantRate(t *testing.T) {
	clusterBackends(t, func(t *testing.T, open func(*testing.T, int, *clock) *replicaSet) {
		ctx := context.Background()
		clk := newClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
		rs := open(t, 3, clk)
		g, err := rs.v[0].CreateGrant(ctx, Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"pan"}, Purpose: "refunds", ExpireTime: clk.now().Add(time.Hour), RatePerMin: 60})
		if err != nil {
			t.Fatal(err)
		}
		tok := tokenizeOne(t, rs.v[1], TokenizeItem{Value: "4111111111111111", Template: "pan", Domain: "acme"})
		round := func() (revealed int) {
			var n, badRetry atomic.Int64
			var wg sync.WaitGroup
			for _, v := range rs.v {
				for range 3 {
					wg.Go(func() {
						for range 30 {
							out, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", Items: []TokenRef{{Token: tok, Domain: "acme"}}})
							var ra *RetryAfterError
							switch {
							case errors.As(err, &ra):
								if ra.After <= 0 || ra.After > time.Minute {
									badRetry.Add(1)
								}
							case err != nil:
								t.Errorf("VendorDetokenize: %v", err)
								return
							case out[0].Err == nil:
								n.Add(1)
							}
						}
					})
				}
			}
			wg.Wait()
			if badRetry.Load() > 0 {
				t.Errorf("%d refusals without a Retry-After in (0, 1m]", badRetry.Load())
			}
			return int(n.Load())
		}
		if n := round(); n != 60 {
			t.Errorf("revealed %d through 3 replicas in one instant, want the grant's 60", n)
		}
		clk.add(time.Minute)
		if n := round(); n != 60 {
			t.Errorf("revealed %d a minute later, want 60 more", n)
		}
		got, err := rs.v[2].GetGrant(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Used != 120 {
			t.Errorf("grant used = %d, want 120", got.Used)
		}
	})
}

// A quota is exact when replicas reveal concurrently.
func TestClusterGrantQuota(t *testing.T) {
	clusterBackends(t, func(t *testing.T, open func(*testing.T, int, *clock) *replicaSet) {
		ctx := context.Background()
		rs := open(t, 3, nil)
		g, err := rs.v[0].CreateGrant(ctx, Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"pan"}, Purpose: "refunds", ExpireTime: time.Now().Add(time.Hour), Quota: 50})
		if err != nil {
			t.Fatal(err)
		}
		tok := tokenizeOne(t, rs.v[1], TokenizeItem{Value: "4111111111111111", Template: "pan", Domain: "acme"})
		var n atomic.Int64
		var wg sync.WaitGroup
		for _, v := range rs.v {
			for range 4 {
				wg.Go(func() {
					for range 8 {
						out, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", Items: []TokenRef{{Token: tok, Domain: "acme"}, {Token: tok, Domain: "acme"}}})
						if errors.Is(err, ErrQuotaExhausted) {
							continue
						}
						if err != nil {
							t.Errorf("VendorDetokenize: %v", err)
							return
						}
						for _, r := range out {
							if r.Err == nil {
								n.Add(1)
							}
						}
					}
				})
			}
		}
		wg.Wait()
		if n.Load() != 50 {
			t.Errorf("revealed %d items under a quota of 50 (96 asked for)", n.Load())
		}
		got, err := rs.v[2].GetGrant(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Used != 50 || got.State != GrantExhausted {
			t.Errorf("grant used = %d, state %s; want 50, exhausted", got.Used, got.State)
		}
	})
}

// The lease: one holder at a time; when it dies (its store fails, its context ends without a
// release) another replica takes over within the TTL, and the background work runs there.
func TestClusterLeaseFailover(t *testing.T) {
	clusterBackends(t, func(t *testing.T, open func(*testing.T, int, *clock) *replicaSet) {
		ctx := context.Background()
		rs := open(t, 3, nil)
		stops := rs.runAll()
		defer stopAll(stops)
		h := rs.holder(t, 10*time.Second)
		time.Sleep(300 * time.Millisecond) // a few heartbeats: still one holder
		n := 0
		for _, v := range rs.v {
			if _, ok := v.Leased(ctx); ok {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d replicas hold the lease, want 1", n)
		}
		reps, err := rs.v[(h+1)%3].Replicas(ctx)
		if err != nil {
			t.Fatal(err)
		}
		live, holders := 0, 0
		for _, r := range reps {
			if r.Live {
				live++
			}
			if r.Holder {
				holders++
				if r.ID != fmt.Sprintf("r%d", h) {
					t.Errorf("Replicas says %s holds the lease; r%d does", r.ID, h)
				}
			}
		}
		if live != 3 || holders != 1 {
			t.Errorf("Replicas: %d live, %d holders; want 3 and 1 (%+v)", live, holders, reps)
		}
		// A token that expires in a second: the purge must run somewhere after the holder dies.
		other := rs.v[(h+1)%3]
		tok := tokenizeOne(t, other, TokenizeItem{Value: "4111111111111111", Template: "pan", TTL: time.Second})
		rs.kill[h].dead.Store(true) // dead: no renewal, no release
		stops[h]()
		died := time.Now()
		h2 := rs.holder(t, 15*time.Second, h)
		t.Logf("lease moved from r%d to r%d in %s (TTL 2s, heartbeat 200ms)", h, h2, time.Since(died).Round(10*time.Millisecond))
		deadline := time.Now().Add(20 * time.Second)
		for {
			res, err := other.Detokenize(ctx, "p", []TokenRef{{Token: tok}})
			if err != nil {
				t.Fatal(err)
			}
			if errors.Is(res[0].Err, ErrNotFound) && isTombstone(storedRecord(t, other, DefaultDomain, tok)) {
				break // purged by the new holder
			}
			if time.Now().After(deadline) {
				t.Fatal("the expired token was not purged after the lease holder died")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// Fencing: a holder paused past its lease's expiry cannot write once another replica has
// taken the lease, whatever its own view.
func TestClusterFencing(t *testing.T) {
	clusterBackends(t, func(t *testing.T, open func(*testing.T, int, *clock) *replicaSet) {
		ctx := context.Background()
		clk := newClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
		rs := open(t, 2, clk)
		a, b := rs.v[0], rs.v[1]
		if !a.heartbeat(ctx, 10*time.Second) {
			t.Fatal("A did not take a free lease")
		}
		actx, ok := a.Leased(ctx)
		if !ok {
			t.Fatal("A holds the lease but Leased says no")
		}
		if b.heartbeat(ctx, 10*time.Second) {
			t.Fatal("B took a lease A holds")
		}
		tok := tokenizeOne(t, b, TokenizeItem{Value: "4111111111111111", Template: "pan", TTL: time.Second})
		if _, _, err := a.Checkpoint(actx); err != nil {
			t.Fatalf("the holder's fenced write: %v", err)
		}
		// A pauses; its lease expires and B takes it.
		clk.add(11 * time.Second)
		if !b.heartbeat(ctx, 10*time.Second) {
			t.Fatal("B did not take the expired lease")
		}
		tokenizeOne(t, b, TokenizeItem{Value: "moves the audit head", Template: "opaque"})
		// A resumes with the context it had: every write is refused, and nothing changes.
		if _, err := a.PurgeExpired(actx); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("stale holder's purge: %v, want ErrLeaseLost", err)
		}
		if _, err := a.RotateDataKey(actx); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("stale holder's rotation: %v, want ErrLeaseLost", err)
		}
		if _, _, err := a.Checkpoint(actx); !errors.Is(err, ErrLeaseLost) {
			t.Errorf("stale holder's checkpoint: %v, want ErrLeaseLost", err)
		}
		if rec := storedRecord(t, b, DefaultDomain, tok); rec == nil || isTombstone(rec) {
			t.Error("the stale holder's purge changed the store")
		}
		if ks, err := b.KeyStatus(ctx); err != nil || len(ks.Keys) != 1 {
			t.Errorf("keys after the stale holder's rotation: %+v, %v; want the one key", ks.Keys, err)
		}
		// The new holder's writes go through.
		bctx, ok := b.Leased(ctx)
		if !ok {
			t.Fatal("B holds the lease but Leased says no")
		}
		if n, err := b.PurgeExpired(bctx); err != nil || n != 1 {
			t.Errorf("new holder's purge = %d, %v; want 1", n, err)
		}
		if _, ok := a.Leased(ctx); ok {
			t.Error("A still believes it holds the lease after its expiry")
		}
	})
}

// Rotation across replicas: a replica with an old keyring never commits a seal under the
// replaced primary nor overwrites the new keyring; the rewrap waits for every live replica to
// use the new primary; a key still primary on a live replica cannot be disabled; a replica
// reads records sealed under a key it has not loaded yet.
func TestClusterRotationSteps(t *testing.T) {
	clusterBackends(t, func(t *testing.T, open func(*testing.T, int, *clock) *replicaSet) {
		ctx := context.Background()
		rs := open(t, 3, nil)
		a, b, c := rs.v[0], rs.v[1], rs.v[2]
		old := a.keyring().PrimaryKeyID()
		tokenizeValues(t, a, 50)
		for _, v := range rs.v { // every replica beats once: all live, on the old primary
			v.heartbeat(ctx, time.Minute)
		}
		if err := a.DisableDataKey(ctx, old); !errors.Is(err, ErrKeyState) {
			t.Fatalf("disabling the primary: %v, want ErrKeyState", err)
		}
		nk, err := a.RotateDataKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// B still has the old keyring: the rewrap must wait for it.
		if _, err := a.rewrapStep(ctx); !errors.Is(err, errRewrapWaiting) {
			t.Fatalf("rewrap step while B and C report the old primary: %v, want errRewrapWaiting", err)
		}
		// B tokenizes with its old keyring: the seal is redone under the new primary.
		tokB := tokenizeOne(t, b, TokenizeItem{Value: "sealed-by-b", Template: "opaque"})
		if got := b.keyring().PrimaryKeyID(); got != nk {
			t.Errorf("B's primary after its tokenize = %d, want %d", got, nk)
		}
		// C, which has not loaded the new key, reads what B sealed under it.
		res, err := c.Detokenize(ctx, "p", []TokenRef{{Token: tokB}})
		if err != nil || res[0].Err != nil || res[0].Value != "sealed-by-b" {
			t.Fatalf("C reads B's token: %+v, %v", res, err)
		}
		// A disable of the old key is refused while a live replica still reports it.
		counts, _, err := a.countByKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts[old] != 50 || counts[nk] != 1 {
			t.Errorf("records per key = %v, want %d under the old key and 1 under the new", counts, 50)
		}
		b.heartbeat(ctx, time.Minute)
		c.heartbeat(ctx, time.Minute)
		rewrapAll(t, a)
		rs.v[1].heartbeat(ctx, time.Minute)
		// Make a live row report the old primary: as a replica that has not reloaded would.
		if err := a.store.Update(ctx, func(tx store.Tx) error {
			return putJSON(tx, bucketReplicas, []byte("r9"), ReplicaInfo{ID: "r9", LastSeen: time.Now(), LiveUntil: time.Now().Add(time.Minute), PrimaryKeyID: old})
		}); err != nil {
			t.Fatal(err)
		}
		if err := b.DisableDataKey(ctx, old); !errors.Is(err, ErrKeyState) {
			t.Errorf("disable of a key still primary on live replica r9: %v, want ErrKeyState", err)
		}
		if err := a.store.Update(ctx, func(tx store.Tx) error { return tx.Delete(bucketReplicas, []byte("r9")) }); err != nil {
			t.Fatal(err)
		}
		// C (old keyring, never reloaded since) rotates: its change must not overwrite A's.
		c2 := c.keyring().PrimaryKeyID()
		third, err := c.RotateDataKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if third == nk || c2 == third {
			t.Fatalf("rotation on C returned key %d", third)
		}
		ks, err := a.KeyStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.refreshKeyring(ctx); err != nil {
			t.Fatal(err)
		}
		ids := map[uint32]bool{}
		for _, k := range a.keyring().DataKeys() {
			ids[k.ID] = true
		}
		if !ids[old] || !ids[nk] || !ids[third] || a.keyring().PrimaryKeyID() != third {
			t.Errorf("keyring after rotations on A then C: keys %v primary %d; want %d, %d and primary %d (%+v)", ids, a.keyring().PrimaryKeyID(), old, nk, third, ks.Keys)
		}
		// Every token still reads on every replica.
		for _, v := range rs.v {
			res, err := v.Detokenize(ctx, "p", []TokenRef{{Token: tokB}})
			if err != nil || res[0].Err != nil {
				t.Errorf("detokenize after the rotations: %+v, %v", res, err)
			}
		}
	})
}

// Rotation while three replicas tokenize and detokenize: nothing is sealed under a disabled
// key, every token detokenizes on every replica afterwards.
func TestClusterRotationUnderLoad(t *testing.T) {
	clusterBackends(t, func(t *testing.T, open func(*testing.T, int, *clock) *replicaSet) {
		ctx := context.Background()
		rs := open(t, 3, nil)
		stops := rs.runAll()
		defer stopAll(stops)
		tokenizeValues(t, rs.v[0], 300)
		old := rs.v[0].keyring().PrimaryKeyID()
		type issued struct{ token, value string }
		var mu sync.Mutex
		var all []issued
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var seq atomic.Int64
		for vi, v := range rs.v {
			for range 2 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						items := make([]TokenizeItem, 5)
						for k := range items {
							items[k] = TokenizeItem{Value: fmt.Sprintf("v%d-%d", vi, seq.Add(1)), Template: "opaque"}
						}
						res, err := v.Tokenize(ctx, items)
						if err != nil {
							t.Errorf("Tokenize on r%d: %v", vi, err)
							return
						}
						refs := make([]TokenRef, len(res))
						mu.Lock()
						for k, r := range res {
							if r.Err != nil {
								t.Errorf("Tokenize item: %v", r.Err)
							}
							all = append(all, issued{r.Token, items[k].Value})
							refs[k] = TokenRef{Token: r.Token}
						}
						mu.Unlock()
						out, err := v.Detokenize(ctx, "p", refs)
						if err != nil {
							t.Errorf("Detokenize on r%d: %v", vi, err)
							return
						}
						for k, r := range out {
							if r.Err != nil || r.Value != items[k].Value {
								t.Errorf("Detokenize on r%d of a token just issued: %q, %v", vi, r.Value, r.Err)
							}
						}
					}
				})
			}
		}
		time.Sleep(300 * time.Millisecond)
		nk, err := rs.v[1].RotateDataKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			ks, err := rs.v[2].KeyStatus(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ks.Rewrap.Target == nk && ks.Rewrap.Done && ks.Rewrap.Remaining == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rewrap not done: %+v", ks.Rewrap)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for {
			err := rs.v[2].DisableDataKey(ctx, old)
			if err == nil {
				break
			}
			if time.Now().After(deadline) || !(errors.Is(err, ErrKeyState) || errors.Is(err, ErrKeyInUse)) {
				t.Fatalf("disable of the old key after the rewrap: %v", err)
			}
			t.Logf("disable refused, retrying: %v", err)
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(500 * time.Millisecond) // traffic goes on with the old key disabled
		close(stop)
		wg.Wait()
		ks, err := rs.v[0].KeyStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks.Keys {
			if k.ID == old && (k.State != "disabled" || k.Records != 0) {
				t.Errorf("old key: %+v, want disabled with no records", k)
			}
		}
		t.Logf("%d tokens issued during the rotation; keys %+v", len(all), ks.Keys)
		refs := make([]TokenRef, len(all))
		for i, is := range all {
			refs[i] = TokenRef{Token: is.token}
		}
		for vi, v := range rs.v {
			for start := 0; start < len(refs); start += MaxBatch {
				end := min(start+MaxBatch, len(refs))
				out, err := v.Detokenize(ctx, "p", refs[start:end])
				if err != nil {
					t.Fatal(err)
				}
				for k, r := range out {
					if r.Err != nil || r.Value != all[start+k].value {
						t.Errorf("r%d: token %d: %q, %v", vi, start+k, r.Value, r.Err)
					}
				}
			}
		}
	})
}

// Caches: a credential revoked on one replica is refused by another at its next call; a
// template created on one is usable on another at once; a subject erased on one is not
// readable on another, and the other drops the subject's key at its next heartbeat.
func TestClusterCaches(t *testing.T) {
	clusterBackends(t, func(t *testing.T, open func(*testing.T, int, *clock) *replicaSet) {
		ctx := context.Background()
		rs := open(t, 2, nil)
		a, b := rs.v[0], rs.v[1]

		c, secret, err := a.CreateCredential(ctx, CredentialSpec{Name: "app", Role: RoleTokenizer})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second is served from B's cache
			if _, err := b.Authenticate(ctx, secret); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.RevokeCredential(ctx, c.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Authenticate(ctx, secret); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("B authenticates a credential revoked on A: %v", err)
		}

		if _, err := a.CreateTemplate(ctx, template.Definition{Name: "member-id", Base: "opaque"}); err != nil {
			t.Fatal(err)
		}
		tok := tokenizeOne(t, b, TokenizeItem{Value: "member 123456", Template: "member-id"})
		found := false
		for _, ti := range b.ListTemplates(ctx) {
			found = found || ti.Definition.Name == "member-id"
		}
		if !found {
			t.Error("B does not list the template created on A")
		}
		if res, err := a.Detokenize(ctx, "p", []TokenRef{{Token: tok, Template: "member-id"}}); err != nil || res[0].Err != nil {
			t.Errorf("A reads B's token of A's template: %+v, %v", res, err)
		}

		st := tokenizeOne(t, b, TokenizeItem{Value: "4111111111111111", Template: "pan", Subject: "alice"})
		if res, err := b.Detokenize(ctx, "p", []TokenRef{{Token: st}}); err != nil || res[0].Err != nil {
			t.Fatalf("B reads its subject token: %+v, %v", res, err)
		}
		b.heartbeat(ctx, time.Minute)
		if b.subjects.n.Load() == 0 {
			t.Fatal("B holds no subject key: the test means to exercise its cache")
		}
		if _, err := a.EraseSubject(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if res, err := b.Detokenize(ctx, "p", []TokenRef{{Token: st}}); err != nil || !errors.Is(res[0].Err, ErrNotFound) {
			t.Errorf("B reads a subject erased on A: %+v, %v; want ErrNotFound", res, err)
		}
		b.heartbeat(ctx, time.Minute)
		n := 0
		b.subjects.m.Range(func(_, _ any) bool { n++; return true })
		if n != 0 {
			t.Errorf("B still holds %d subject keys after a heartbeat that followed an erasure", n)
		}
	})
}

// Heartbeat rows: a replica's row says what it has loaded; a clean stop removes it; the lease
// holder forgets rows of replicas gone for over an hour, and keeps the others.
func TestClusterReplicaRows(t *testing.T) {
	clusterBackends(t, func(t *testing.T, open func(*testing.T, int, *clock) *replicaSet) {
		ctx := context.Background()
		rs := open(t, 2, nil)
		stop := rs.run(0, BackgroundOptions{})
		rs.holder(t, 10*time.Second)
		if err := rs.v[1].store.Update(ctx, func(tx store.Tx) error {
			old := time.Now().Add(-2 * time.Hour)
			return putJSON(tx, bucketReplicas, []byte("gone"), ReplicaInfo{ID: "gone", LastSeen: old, LiveUntil: old.Add(time.Second)})
		}); err != nil {
			t.Fatal(err)
		}
		rs.v[1].heartbeat(ctx, time.Minute)
		lctx, _ := rs.v[0].Leased(ctx)
		if err := rs.v[0].forgetReplicas(lctx); err != nil {
			t.Fatal(err)
		}
		reps, err := rs.v[1].Replicas(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]ReplicaInfo{}
		for _, r := range reps {
			ids[r.ID] = r
		}
		if _, ok := ids["gone"]; ok || len(ids) != 2 {
			t.Errorf("rows after forgetting: %v; want r0 and r1 only", reps)
		}
		if r := ids["r1"]; !r.Live || r.Holder || r.PrimaryKeyID != rs.v[1].keyring().PrimaryKeyID() {
			t.Errorf("r1's row: %+v", r)
		}
		if r := ids["r0"]; !r.Live || !r.Holder {
			t.Errorf("r0's row: %+v; want live and holding the lease", r)
		}
		stop()
		reps, err = rs.v[1].Replicas(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range reps {
			if r.ID == "r0" {
				t.Errorf("r0's row is still there after a clean stop: %+v", r)
			}
		}
		if _, ok := rs.v[0].Leased(ctx); ok {
			t.Error("r0 still holds the lease after a clean stop")
		}
		if !rs.v[1].heartbeat(ctx, time.Minute) {
			t.Error("r1 did not take the lease r0 released")
		}
	})
}

// The stored rate bucket behaves as x/time/rate with burst = rate a minute.
func TestRateStateTake(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var r rateState
	r, _, ok := r.take(60, 60, t0) // a full bucket: the whole minute at once
	if !ok {
		t.Fatal("a fresh bucket refused its burst")
	}
	if _, after, ok := r.take(60, 1, t0); ok || after != time.Second {
		t.Errorf("empty bucket: ok %v, retry after %s; want refused, 1s", ok, after)
	}
	if _, after, ok := r.take(60, 61, t0); ok || after != 0 {
		t.Errorf("more than the burst: ok %v, after %s; want refused with no delay", ok, after)
	}
	r2, _, ok := r.take(60, 30, t0.Add(30*time.Second))
	if !ok {
		t.Error("30 s refill 30 tokens: refused")
	}
	if _, _, ok := r2.take(60, 1, t0.Add(30*time.Second)); ok {
		t.Error("took more than the refill")
	}
	// A replica whose clock lags refills nothing and never moves the bucket's time back.
	r3, _, ok := r2.take(60, 0, t0)
	if !ok || !r3.at.Equal(t0.Add(30*time.Second)) {
		t.Errorf("lagging clock: %+v, %v", r3, ok)
	}
	if got := readRateRoundTrip(t, r2); got.tokens != r2.tokens || !got.at.Equal(r2.at) {
		t.Errorf("stored %+v, read back %+v", r2, got)
	}
}

func readRateRoundTrip(t *testing.T, r rateState) rateState {
	t.Helper()
	st := openStore(t, filepath.Join(t.TempDir(), "r.db"), store.Options{})
	ctx := context.Background()
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.Put(bucketGrantRate, []byte("g"), r.marshal()) }); err != nil {
		t.Fatal(err)
	}
	var got rateState
	if err := st.View(ctx, func(tx store.Tx) error { got = readRate(tx, "g"); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestClusterTokenizeSameValuesAtOnce has three replicas tokenize overlapping batches at the
// same instant, two callers each, on bbolt and on PostgreSQL: card numbers (FF1 candidates),
// two-digit numbers (a blind index and colliding candidates), and values of a random-mode
// template over a space of 1,000 tokens (random candidates that collide, also between
// replicas creating at the same time).
// Every (template, value) of a deterministic template gets one token from every replica, no
// token is shared by two values, and every token detokenizes to its value.
func TestClusterTokenizeSameValuesAtOnce(t *testing.T) {
	clusterBackends(t, func(t *testing.T, open func(*testing.T, int, *clock) *replicaSet) {
		ctx := context.Background()
		rs := open(t, 3, nil)
		if _, err := rs.v[0].CreateTemplate(ctx, template.Definition{Name: "digits-random", Base: "digits", Mode: template.Random}); err != nil {
			t.Fatal(err)
		}
		type issued struct{ tmpl, value, token string }
		var mu sync.Mutex
		var all []issued
		start := make(chan struct{})
		var wg sync.WaitGroup
		const calls, perCall = 6, 30
		for vi, v := range rs.v {
			for g := range 2 {
				wg.Go(func() {
					<-start
					for c := range calls {
						// Every caller asks for the same deterministic values, in its own order.
						items := make([]TokenizeItem, 0, perCall)
						for k := range perCall / 3 {
							n := (c*perCall/3 + (k+vi*3+g)%(perCall/3))
							items = append(items,
								TokenizeItem{Value: fmt.Sprintf("4111%012d", n), Template: "pan"},
								TokenizeItem{Value: fmt.Sprintf("%02d", n%100), Template: "digits"},
								TokenizeItem{Value: fmt.Sprintf("%03d", n), Template: "digits-random"})
						}
						res, err := v.Tokenize(ctx, items)
						if err != nil {
							t.Errorf("Tokenize on r%d: %v", vi, err)
							return
						}
						mu.Lock()
						for k, r := range res {
							if r.Err != nil {
								t.Errorf("Tokenize on r%d, item %d: %v", vi, k, r.Err)
								continue
							}
							all = append(all, issued{items[k].Template, items[k].Value, r.Token})
						}
						mu.Unlock()
					}
				})
			}
		}
		close(start)
		wg.Wait()
		byValue := map[string]string{} // template/value → token, deterministic templates
		byToken := map[string]string{} // token → template/value
		for _, is := range all {
			key := is.tmpl + "/" + is.value
			if is.tmpl != "digits-random" {
				if tok, ok := byValue[key]; ok && tok != is.token {
					t.Errorf("%s: tokens %q and %q", key, tok, is.token)
				}
				byValue[key] = is.token
			}
			if k, ok := byToken[is.token]; ok && k != key {
				t.Errorf("%s and %s share token %q", k, key, is.token)
			}
			byToken[is.token] = key
		}
		if want := 3 * 2 * calls * perCall; len(all) != want {
			t.Fatalf("%d tokens issued, want %d", len(all), want)
		}
		refs := make([]TokenRef, 0, len(byToken))
		for tok := range byToken {
			refs = append(refs, TokenRef{Token: tok})
		}
		for len(refs) > 0 {
			n := min(len(refs), MaxBatch)
			out, err := rs.v[1].Detokenize(ctx, "p", refs[:n])
			if err != nil {
				t.Fatal(err)
			}
			for k, r := range out {
				if want := byToken[refs[k].Token]; r.Err != nil || r.Template+"/"+r.Value != want {
					t.Errorf("Detokenize(%q) = %s/%s, %v; want %s", refs[k].Token, r.Template, r.Value, r.Err, want)
				}
			}
			refs = refs[n:]
		}
	})
}

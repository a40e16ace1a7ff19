package vault

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Replicas sharing one store (PostgreSQL), and the same code on the single-process bbolt
// store, where the "cluster" is this one vault.
//
// Heartbeats. While RunBackground runs, every HeartbeatInterval the vault reloads the stored
// keyring if its version moved, then writes its row in bucket replicas: when it started, when
// it was last seen, until when it counts as live (last seen + LeaseTTL), and the version and
// primary data key of the keyring it has loaded. Replicas lists the rows.
//
// The background lease. Background work (the rewrap, automatic rotation, audit retention, the
// end of credential rotation overlaps, the purge of expired tokens, and the server's audit
// checkpoints and witness deliveries) runs on one replica at a time: the holder of lease
// "background" in bucket leases, a row holding the holder's id, an epoch and an expiry. The
// same Update that writes the heartbeat renews the lease (holder and epoch unchanged, expiry
// pushed LeaseTTL ahead) or, when it is free or expired, takes it with epoch+1. The store
// serializes these Updates (bbolt has one writer; PostgreSQL runs them SERIALIZABLE), so two
// replicas never both take it. When the holder stops cleanly it releases the lease; when it
// dies, another replica takes it once it has expired: within LeaseTTL + HeartbeatInterval.
//
// Fencing. Work done under a lease carries a fence (lease name, holder, epoch) in its
// context (Leased). Every Update made with such a context re-reads the lease row inside its
// own transaction and fails with ErrLeaseLost, writing nothing, unless the row still names
// this holder at this epoch (fencedStore): a holder that was paused past its expiry cannot
// write once another replica has taken over, whatever its clock says. Expiry only decides
// when a replica may take over; safety rests on the epoch, compared in the transaction.
//
// Clocks: expiries are absolute times written by one replica and compared by another, so the
// replicas' clocks must agree to well within LeaseTTL (NTP does).

// Defaults of the cluster options of BackgroundOptions.
const (
	DefaultLeaseTTL          = 10 * time.Second
	DefaultHeartbeatInterval = 3 * time.Second
)

// backgroundLease names the lease of background work.
const backgroundLease = "background"

// forgetReplicaAfter: the lease holder removes rows of replicas not seen for this long.
const forgetReplicaAfter = time.Hour

// localReplica is the id of a vault with no Config.ReplicaID (the bbolt store, one process).
const localReplica = "local"

// ReplicaInfo is one replica's heartbeat row.
type ReplicaInfo struct {
	ID       string    `json:"id"`
	Started  time.Time `json:"started"`
	LastSeen time.Time `json:"last_seen"`
	// LiveUntil is when the replica stops counting as live unless it beats again.
	LiveUntil time.Time `json:"live_until"`
	// KeyringVersion and PrimaryKeyID describe the keyring the replica has loaded.
	KeyringVersion uint64 `json:"keyring_version"`
	PrimaryKeyID   uint32 `json:"primary_key_id"`
	// Schema is the store schema version of the replica's binary.
	Schema uint64 `json:"schema"`
	// Incarnation is random per process (Open): a row whose Incarnation differs from an
	// erasing entry's, and that started after it, was written by a later process under the
	// same id, so the entry's erasure died (replicaDiedSince). Empty from older versions.
	Incarnation string `json:"incarnation,omitempty"`

	// Live and Holder are computed when read (not stored): the replica is live, and it holds
	// the background lease.
	Live   bool `json:"-"`
	Holder bool `json:"-"`
}

// leaseRow is a lease as stored.
type leaseRow struct {
	Holder  string    `json:"holder"`
	Epoch   uint64    `json:"epoch"`
	Expires time.Time `json:"expires"`
}

// cluster is a vault's view of its membership: the lease it holds, if any.
type cluster struct {
	mu         sync.Mutex
	held       leaseRow // Epoch 0: not held
	started    time.Time
	fresh      bool          // no heartbeat written yet by this process
	beat       chan struct{} // asks for a heartbeat now
	subjGen    uint64        // the subject erasure counter when the subject cache was last checked
	clearAgain bool          // clear the subject cache at the next heartbeat too
}

// replicaID is the id this vault writes heartbeats and holds leases under.
func (v *Vault) replicaID() string {
	if v.replica == "" {
		return localReplica
	}
	return v.replica
}

// fence is the lease that work in a context runs under.
type fence struct {
	name, holder string
	epoch        uint64
}

type fenceKey struct{}

// check fails with ErrLeaseLost unless tx's lease row still names f's holder and epoch.
func (f fence) check(tx store.Tx) error {
	cur, _ := readLease(tx, f.name)
	if cur.Holder != f.holder || cur.Epoch != f.epoch {
		return ErrLeaseLost
	}
	return nil
}

// fencedStore is the store as the vault uses it: an Update whose context carries a fence
// checks it first, in the same transaction.
type fencedStore struct{ store.Store }

func (s fencedStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	f, ok := ctx.Value(fenceKey{}).(fence)
	if !ok {
		return s.Store.Update(ctx, fn)
	}
	return s.Store.Update(ctx, func(tx store.Tx) error {
		if err := f.check(tx); err != nil {
			return err
		}
		return fn(tx)
	})
}

// Leased returns ctx carrying this vault's background lease, and true, when the vault holds
// the lease; otherwise ctx and false. Every store write made with the returned context is
// fenced: it fails with ErrLeaseLost once another replica has taken the lease over. The
// server runs its checkpoints under it.
func (v *Vault) Leased(ctx context.Context) (context.Context, bool) {
	v.cl.mu.Lock()
	held := v.cl.held
	v.cl.mu.Unlock()
	if held.Epoch == 0 || !v.now().Before(held.Expires) {
		return ctx, false
	}
	return context.WithValue(ctx, fenceKey{}, fence{name: backgroundLease, holder: held.Holder, epoch: held.Epoch}), true
}

func readLease(tx store.Tx, name string) (leaseRow, bool) {
	var l leaseRow
	b := tx.Get(bucketLeases, []byte(name))
	if b == nil || json.Unmarshal(b, &l) != nil {
		return leaseRow{}, false
	}
	return l, true
}

func putJSON(tx store.Tx, b store.Bucket, key []byte, v any) error {
	blob, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(b, key, blob)
}

// readCounter reads an 8-byte counter of bucket meta (0 when absent).
func readCounter(tx store.Tx, key []byte) uint64 {
	return decodeCounter(tx.Get(bucketMeta, key))
}

// decodeCounter decodes an 8-byte counter; anything else (absent) is 0.
func decodeCounter(b []byte) uint64 {
	if len(b) == 8 {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// bumpCounter adds one to an 8-byte counter of bucket meta and returns its new value.
func bumpCounter(tx store.Tx, key []byte) (uint64, error) {
	n := readCounter(tx, key) + 1
	return n, tx.Put(bucketMeta, key, seqKey(n))
}

// runCluster beats until ctx ends, then releases the lease and removes this replica's row.
// acquired receives a value each time the vault takes the lease.
func (v *Vault) runCluster(ctx context.Context, opts BackgroundOptions, acquired chan<- struct{}) {
	tick := time.NewTicker(opts.heartbeat())
	defer tick.Stop()
	v.cl.mu.Lock()
	v.cl.started, v.cl.fresh = v.now().UTC(), true
	v.cl.mu.Unlock()
	for {
		if took := v.heartbeat(ctx, opts.leaseTTL()); took {
			select {
			case acquired <- struct{}{}:
			default:
			}
		}
		select {
		case <-ctx.Done():
			v.leave()
			return
		case <-tick.C:
		case <-v.cl.beat:
		}
	}
}

// beatNow asks for a heartbeat soon (after this vault's keyring changed).
func (v *Vault) beatNow() {
	select {
	case v.cl.beat <- struct{}{}:
	default:
	}
}

// heartbeat reloads the keyring if it changed, writes this replica's row and takes or renews
// the background lease. It reports whether it took the lease (a new epoch).
func (v *Vault) heartbeat(ctx context.Context, ttl time.Duration) bool {
	if _, err := v.refreshKeyring(ctx); err != nil && ctx.Err() == nil {
		v.log.Error("reloading the keyring changed by another replica failed", slog.String("error", err.Error()))
	}
	me := v.replicaID()
	now := v.now().UTC()
	v.cl.mu.Lock()
	held, fresh, started := v.cl.held, v.cl.fresh, v.cl.started
	v.cl.mu.Unlock()
	kr, ver := v.loadedKeyring()
	var got leaseRow
	var subjGen uint64
	err := v.store.Update(ctx, func(tx store.Tx) error {
		got, subjGen = leaseRow{}, readCounter(tx, metaSubjectGen)
		row := ReplicaInfo{ID: me, Started: started, LastSeen: now, LiveUntil: now.Add(ttl),
			KeyringVersion: ver, PrimaryKeyID: kr.PrimaryKeyID(), Schema: SchemaVersion, Incarnation: v.incarnation}
		if err := putJSON(tx, bucketReplicas, []byte(me), row); err != nil {
			return err
		}
		cur, _ := readLease(tx, backgroundLease)
		switch {
		case held.Epoch != 0 && cur.Holder == me && cur.Epoch == held.Epoch:
			cur.Expires = now.Add(ttl) // renew
		case cur.Epoch == 0 || !now.Before(cur.Expires) || (fresh && cur.Holder == me):
			// Free, expired, or held by this replica's previous process: take it.
			cur = leaseRow{Holder: me, Epoch: cur.Epoch + 1, Expires: now.Add(ttl)}
		default:
			return nil // another replica holds it
		}
		got = cur
		return putJSON(tx, bucketLeases, []byte(backgroundLease), cur)
	})
	v.cl.mu.Lock()
	defer v.cl.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			v.log.Error("replica heartbeat failed", slog.String("error", err.Error()))
		}
		// The lease lapses by itself at its expiry (Leased checks it); fencing covers the rest.
		return false
	}
	v.cl.fresh = false
	took := got.Epoch != 0 && got.Epoch != held.Epoch
	if held.Epoch != 0 && got.Epoch == 0 {
		v.log.Warn("the background lease was taken over by another replica")
	}
	if took {
		v.log.Info("holding the background lease", slog.String("replica", me), slog.Uint64("epoch", got.Epoch))
	}
	v.cl.held = got
	if subjGen != v.cl.subjGen || v.cl.clearAgain {
		// A subject was erased (here or elsewhere): drop the unwrapped subject keys this
		// replica holds, so an erased subject's key does not stay in memory, and once more at
		// the next heartbeat, for a read that fetched the key before the erasure and caches
		// it after this clear. (The cache is never served for an erased subject: every use
		// checks the wrapped key is stored.)
		v.cl.clearAgain = subjGen != v.cl.subjGen
		v.cl.subjGen = subjGen
		v.subjects.clear()
	}
	return took
}

// forgetReplicas removes rows of replicas long gone. The lease holder runs it with its
// background passes (not in heartbeats, which would then conflict with every other
// replica's heartbeat on PostgreSQL).
func (v *Vault) forgetReplicas(ctx context.Context) error {
	now := v.now()
	return v.store.Update(ctx, func(tx store.Tx) error {
		gone, err := scanKeys(tx, bucketReplicas, nil, nil)
		if err != nil {
			return err
		}
		for _, k := range gone {
			var r ReplicaInfo
			if json.Unmarshal(tx.Get(bucketReplicas, k), &r) == nil && now.Sub(r.LastSeen) <= forgetReplicaAfter {
				continue
			}
			if err := tx.Delete(bucketReplicas, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// leave releases the lease (if held) and removes this replica's row, so that another
// replica takes over at once and this one no longer counts as live.
func (v *Vault) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	me := v.replicaID()
	v.cl.mu.Lock()
	held := v.cl.held
	v.cl.held = leaseRow{}
	v.cl.mu.Unlock()
	err := v.store.Update(ctx, func(tx store.Tx) error {
		if err := tx.Delete(bucketReplicas, []byte(me)); err != nil {
			return err
		}
		if cur, _ := readLease(tx, backgroundLease); held.Epoch == 0 || cur.Holder != me || cur.Epoch != held.Epoch {
			return nil
		}
		// Keep the epoch: the next holder takes epoch+1.
		return putJSON(tx, bucketLeases, []byte(backgroundLease), leaseRow{Holder: me, Epoch: held.Epoch})
	})
	if err != nil && !errors.Is(err, store.ErrClosed) {
		v.log.Warn("releasing the background lease failed; another replica takes it at its expiry", slog.String("error", err.Error()))
	}
}

// Replicas lists the replicas that have written a heartbeat (rows of replicas gone for over
// an hour are removed), with whether each is live and holds the background lease.
func (v *Vault) Replicas(ctx context.Context) ([]ReplicaInfo, error) {
	var out []ReplicaInfo
	now := v.now()
	err := v.store.View(ctx, func(tx store.Tx) error {
		var err error
		if out, err = readReplicas(tx, now); err != nil {
			return err
		}
		l, _ := readLease(tx, backgroundLease)
		for i := range out {
			out[i].Holder = out[i].Live && l.Holder == out[i].ID && l.Epoch != 0 && now.Before(l.Expires)
		}
		return nil
	})
	return out, err
}

// readReplicas returns tx's replica rows (unreadable ones skipped), with Live computed at now.
func readReplicas(tx store.Tx, now time.Time) ([]ReplicaInfo, error) {
	var out []ReplicaInfo
	err := tx.Scan(bucketReplicas, nil, nil, func(_, val []byte) error {
		var r ReplicaInfo
		if json.Unmarshal(val, &r) == nil {
			r.Live = now.Before(r.LiveUntil)
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// liveReplicas returns the rows of tx's live replicas.
func liveReplicas(tx store.Tx, now time.Time) ([]ReplicaInfo, error) {
	all, err := readReplicas(tx, now)
	return slices.DeleteFunc(all, func(r ReplicaInfo) bool { return !r.Live }), err
}

// noteKeyring updates this replica's heartbeat row, if it has one, with the keyring it now
// uses, in tx (the transaction that changed the keyring): the rewrap need not wait for this
// replica's next heartbeat.
func (v *Vault) noteKeyring(tx store.Tx, version uint64, primary uint32) error {
	me := []byte(v.replicaID())
	var r ReplicaInfo
	b := tx.Get(bucketReplicas, me)
	if b == nil || json.Unmarshal(b, &r) != nil {
		return nil
	}
	r.KeyringVersion, r.PrimaryKeyID = version, primary
	return putJSON(tx, bucketReplicas, me, r)
}

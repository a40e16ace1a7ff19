package vault

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Background work: RunBackground's passes (the rewrap after a rotation, automatic rotation,
// audit retention, the purge of expired tokens) and the cheap gauges of Stats.

// RunBackground runs the vault's background work until ctx ends: the rewrap after a
// rotation (resumed after a restart), the purge of expired tokens, automatic rotation, audit
// retention, and the end of credential rotation overlaps (PruneRotatedSecrets). It also beats
// (cluster.go): it writes this replica's heartbeat and takes or renews the background lease.
// The work runs only while this vault holds the lease, fenced by it: among replicas sharing a
// store it runs on one at a time, and moves to another within LeaseTTL + HeartbeatInterval
// when its holder dies. When ctx ends the lease is released.
func (v *Vault) RunBackground(ctx context.Context, opts BackgroundOptions) {
	acquired := make(chan struct{}, 1)
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		v.runCluster(ctx, opts, acquired)
	}()
	defer func() { <-beating }()
	tick := time.NewTicker(opts.interval())
	defer tick.Stop()
	for {
		var retry <-chan time.Time
		if lctx, ok := v.Leased(ctx); ok && v.backgroundPass(lctx, opts) {
			retry = time.After(opts.heartbeat()) // the rewrap waits for other replicas
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-v.wake:
		case <-acquired:
		case <-retry:
		}
	}
}

// backgroundPass runs one pass of background work under the lease in ctx. It reports whether
// the rewrap is waiting for other replicas to load the new primary key.
func (v *Vault) backgroundPass(ctx context.Context, opts BackgroundOptions) (waiting bool) {
	failed := func(what string, err error) bool {
		if err == nil || ctx.Err() != nil {
			return err != nil
		}
		if errors.Is(err, ErrLeaseLost) {
			v.log.Warn(what+": the background lease moved to another replica", slog.String("error", err.Error()))
		} else {
			v.log.Error(what+" failed; will retry", slog.String("error", err.Error()))
		}
		return true
	}
	for {
		done, err := v.rewrapStep(ctx)
		if errors.Is(err, errRewrapWaiting) {
			v.log.Debug("rewrap: " + err.Error())
			waiting = true
			break
		}
		if failed("rewrap step", err) || done {
			break
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(rewrapPause):
		}
	}
	failed("automatic rotation", v.autoRotate(ctx, opts))
	if opts.AuditRetention > 0 {
		if n, err := v.pruneOld(ctx, opts.AuditRetention); !failed("audit retention", err) && n > 0 {
			v.log.Info("pruned exported audit events past retention", slog.Int("count", n))
		}
	}
	if n, err := v.PruneRotatedSecrets(ctx); !failed("ending rotation overlaps", err) && n > 0 {
		v.log.Info("ended rotation overlaps: previous secrets removed", slog.Int("count", n))
	}
	if n, err := v.PurgeExpired(ctx); !failed("purging expired tokens", err) && n > 0 {
		v.log.Info("purged expired tokens", slog.Int("count", n))
	}
	failed("forgetting replicas long gone", v.forgetReplicas(ctx))
	if n, err := v.dropStaleErasingMarks(ctx); !failed("removing stale erasing marks", err) && n > 0 {
		v.log.Info("removed erasing marks left by erasures that did not finish", slog.Int("count", n))
	}
	return waiting
}

// BackgroundOptions configure RunBackground.
type BackgroundOptions struct {
	// Interval between background passes (default 30s).
	Interval time.Duration
	// RotateAfter rotates the data key automatically once the primary is this old (0: never).
	RotateAfter time.Duration
	// AuditRetention prunes audit events older than this once an export has delivered them
	// (0: keep everything).
	AuditRetention time.Duration
	// RotateAfterRecords rotates the data key automatically once the primary protects this
	// many records (each record is one encryption under it; 0: never). Checking it scans the
	// records once per background pass.
	RotateAfterRecords uint64
	// LeaseTTL is how long the background lease and a heartbeat last without renewal: a dead
	// holder's work moves to another replica within LeaseTTL + HeartbeatInterval (default
	// DefaultLeaseTTL).
	LeaseTTL time.Duration
	// HeartbeatInterval is how often the replica beats and renews its lease (default
	// DefaultHeartbeatInterval; at most a third of LeaseTTL is sensible).
	HeartbeatInterval time.Duration
}

func (o BackgroundOptions) interval() time.Duration {
	if o.Interval <= 0 {
		return 30 * time.Second
	}
	return o.Interval
}

func (o BackgroundOptions) leaseTTL() time.Duration {
	if o.LeaseTTL <= 0 {
		return DefaultLeaseTTL
	}
	return o.LeaseTTL
}

func (o BackgroundOptions) heartbeat() time.Duration {
	if o.HeartbeatInterval <= 0 {
		return DefaultHeartbeatInterval
	}
	return o.HeartbeatInterval
}

// autoRotate rotates the primary data key when it is older than opts.RotateAfter.
// (Random-nonce AES-GCM keeps one key well under 2^32 encryptions; an age policy of months
// stays far below that at this vault's write rates.)
func (v *Vault) autoRotate(ctx context.Context, opts BackgroundOptions) error {
	if opts.RotateAfterRecords > 0 {
		counts, _, err := v.countByKey(ctx)
		if err != nil {
			return err
		}
		if counts[v.keyring().PrimaryKeyID()] >= opts.RotateAfterRecords {
			_, err := v.RotateDataKey(WithRequest(ctx, RequestInfo{Method: "AutoRotate"}))
			return err
		}
	}
	if opts.RotateAfter <= 0 {
		return nil
	}
	var meta map[uint32]keyMeta
	if err := v.store.View(ctx, func(tx store.Tx) error { meta = v.readKeyMeta(tx); return nil }); err != nil {
		return err
	}
	created := meta[v.keyring().PrimaryKeyID()].Created
	if created.IsZero() {
		// The first key predates key metadata: date it now.
		return v.store.Update(ctx, func(tx store.Tx) error {
			m := v.readKeyMeta(tx)
			m[v.keyring().PrimaryKeyID()] = keyMeta{Created: v.now().UTC()}
			b, _ := json.Marshal(m)
			return tx.Put(bucketMeta, metaKeyMeta, b)
		})
	}
	if v.now().Sub(created) < opts.RotateAfter {
		return nil
	}
	_, err := v.RotateDataKey(WithRequest(ctx, RequestInfo{Method: "AutoRotate"}))
	return err
}

// Stats are the gauges the server exports as metrics. They are cheap: no record scan.
type Stats struct {
	LiveGrants    int
	PrimaryKeyAge time.Duration
	DataKeys      int
	AuditSeq      uint64
	StoreBytes    int64 // 0 when the store does not say
	// StoreCommits (each one fsync), StoreWrites (Update calls committed),
	// StoreCommitWaits (groups that waited for company: --commit-delay) and
	// StoreCommitWaitsTimedOut (those whose company did not come within the delay) count the
	// bbolt store's group commits since it opened; 0 on a store that does not say.
	StoreCommits, StoreWrites, StoreCommitWaits, StoreCommitWaitsTimedOut uint64
	// StoreKeyFilterBytes is the memory of the bbolt store's key filter and
	// StoreKeyFilterSkips the B-tree reads it answered (the key was absent).
	StoreKeyFilterBytes int64
	StoreKeyFilterSkips uint64
}

// sizer is implemented by stores that know their size on disk.
type sizer interface{ Stats() store.Stats }

// Stats returns the current gauges.
func (v *Vault) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	now := v.now()
	err := v.store.View(ctx, func(tx store.Tx) error {
		st.LiveGrants = 0
		if err := tx.Scan(bucketGrants, nil, nil, func(_, val []byte) error {
			var g Grant
			if json.Unmarshal(val, &g) == nil && g.live(now) {
				st.LiveGrants++
			}
			return nil
		}); err != nil {
			return err
		}
		st.AuditSeq = auditMaxSeq(tx)
		if c := v.readKeyMeta(tx)[v.keyring().PrimaryKeyID()].Created; !c.IsZero() {
			st.PrimaryKeyAge = now.Sub(c)
		}
		return nil
	})
	st.DataKeys = len(v.keyring().DataKeys())
	if s, ok := v.base.(sizer); ok {
		ss := s.Stats()
		st.StoreBytes = ss.Size
		st.StoreCommits, st.StoreWrites, st.StoreCommitWaits, st.StoreCommitWaitsTimedOut = ss.Commits, ss.Committed, ss.Waits, ss.WaitsTimedOut
		st.StoreKeyFilterBytes, st.StoreKeyFilterSkips = ss.KeyFilterBytes, ss.KeyFilterSkips
	}
	return st, err
}

// pruneOld prunes exported audit events older than retention.
func (v *Vault) pruneOld(ctx context.Context, retention time.Duration) (int, error) {
	cutoff := v.now().Add(-retention)
	var through, exported uint64
	if err := v.store.View(ctx, func(tx store.Tx) error {
		through = 0
		if e := tx.Get(bucketMeta, metaAuditExported); len(e) == 8 {
			exported = binary.BigEndian.Uint64(e)
		}
		if err := tx.Scan(bucketAudit, nil, nil, func(k, val []byte) error {
			seq := binary.BigEndian.Uint64(k)
			var ev struct {
				Time time.Time `json:"time"`
			}
			if seq > exported || json.Unmarshal(val, &ev) != nil || !ev.Time.Before(cutoff) {
				return store.ErrStopScan
			}
			through = seq
			return nil
		}); err != nil {
			return err
		}
		var err error
		through, err = lastPrunable(tx, through) // replica chains: what each chain's exports delivered
		return err
	}); err != nil || through == 0 {
		return 0, err
	}
	return v.PruneAudit(WithRequest(ctx, RequestInfo{Method: "AuditRetention"}), through)
}

// kick wakes the background worker.
func (v *Vault) kick() {
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

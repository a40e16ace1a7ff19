package vault

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Background work: RunBackground's passes (the rewrap after a rotation, automatic rotation,
// audit retention, the purge of expired tokens) and the cheap gauges of Stats.

// RunBackground runs the vault's background work until ctx ends: the rewrap after a
// rotation (resumed after a restart), the purge of expired tokens, automatic rotation, and
// the end of credential rotation overlaps (PruneRotatedSecrets).
func (v *Vault) RunBackground(ctx context.Context, opts BackgroundOptions) {
	tick := time.NewTicker(opts.interval())
	defer tick.Stop()
	for {
		for {
			done, err := v.rewrapStep(ctx)
			if err != nil {
				if ctx.Err() == nil {
					v.log.Error("rewrap step failed; will retry", slog.String("error", err.Error()))
				}
				break
			}
			if done {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(rewrapPause):
			}
		}
		if err := v.autoRotate(ctx, opts); err != nil && ctx.Err() == nil {
			v.log.Error("automatic rotation failed", slog.String("error", err.Error()))
		}
		if opts.AuditRetention > 0 {
			if n, err := v.pruneOld(ctx, opts.AuditRetention); err != nil && ctx.Err() == nil {
				v.log.Error("audit retention failed", slog.String("error", err.Error()))
			} else if n > 0 {
				v.log.Info("pruned exported audit events past retention", slog.Int("count", n))
			}
		}
		if n, err := v.PruneRotatedSecrets(ctx); err != nil && ctx.Err() == nil {
			v.log.Error("ending rotation overlaps failed", slog.String("error", err.Error()))
		} else if n > 0 {
			v.log.Info("ended rotation overlaps: previous secrets removed", slog.Int("count", n))
		}
		if n, err := v.PurgeExpired(ctx); err != nil && ctx.Err() == nil {
			v.log.Error("purging expired tokens failed", slog.String("error", err.Error()))
		} else if n > 0 {
			v.log.Info("purged expired tokens", slog.Int("count", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-v.wake:
		}
	}
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
}

func (o BackgroundOptions) interval() time.Duration {
	if o.Interval <= 0 {
		return 30 * time.Second
	}
	return o.Interval
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
	if s, ok := v.store.(sizer); ok {
		st.StoreBytes = s.Stats().Size
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

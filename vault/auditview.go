package vault

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"time"

	"github.com/tokenvault/tokenvault/vault/audit"
	"github.com/tokenvault/tokenvault/vault/store"
)

// Read-only views of the audit trail for the web console: one event with its chain position,
// counts over a window, and the verification state of the stored trail.

// AuditChainPosition is where one event sits in the hash chain, and what vouches for it.
type AuditChainPosition struct {
	Seq      uint64
	Hash     string // of the event as stored; the next event's PrevHash
	PrevHash string // the hash the event says precedes it
	// Linked: PrevHash is the hash of the event before it (the zero hash for event 1, the
	// pruning anchor right after a prune).
	Linked bool
	// CheckpointSeq is the first checkpoint at or after the event (0: none yet).
	CheckpointSeq uint64
	// Signed: that checkpoint's signature verifies under the vault's audit key, it names the
	// stored hash of its event, and every event from this one to it links to the one before.
	Signed bool
}

// Verified reports Linked and Signed.
func (p AuditChainPosition) Verified() bool { return p.Linked && p.Signed }

// AuditEventAt returns event seq, its stored line and its chain position; ErrNoAuditEvent
// when there is none (never written, or pruned).
func (v *Vault) AuditEventAt(ctx context.Context, seq uint64) (AuditEvent, []byte, AuditChainPosition, error) {
	pub, err := v.keyring().AuditPublicKeyset()
	if err != nil {
		return AuditEvent{}, nil, AuditChainPosition{}, err
	}
	var ev AuditEvent
	var line []byte
	var pos AuditChainPosition
	var ckpt audit.Checkpoint
	err = v.store.View(ctx, func(tx store.Tx) error {
		pos, ckpt = AuditChainPosition{Seq: seq}, audit.Checkpoint{}
		line = append([]byte(nil), tx.Get(bucketAudit, seqKey(seq))...)
		if len(line) == 0 {
			return ErrNoAuditEvent
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			return fmt.Errorf("audit event %d is malformed: %w", seq, err)
		}
		pos.Hash, pos.PrevHash = audit.Hash(line), ev.PrevHash
		pos.Linked = ev.PrevHash == prevHashAt(tx, seq)
		if err := tx.Scan(bucketAuditCkpt, nil, seqKey(seq), func(_, val []byte) error {
			if err := json.Unmarshal(val, &ckpt); err != nil {
				return fmt.Errorf("an audit checkpoint is malformed: %w", err)
			}
			return store.ErrStopScan
		}); err != nil {
			return err
		}
		if ckpt.Seq < seq {
			return nil // no checkpoint yet
		}
		pos.CheckpointSeq = ckpt.Seq
		// The chain must link from this event up to the checkpoint's, whose stored hash the
		// checkpoint must name.
		last := line
		for s := seq + 1; s <= ckpt.Seq; s++ {
			next := tx.Get(bucketAudit, seqKey(s))
			var probe struct {
				PrevHash string `json:"prev_hash"`
			}
			if next == nil || json.Unmarshal(next, &probe) != nil || probe.PrevHash != audit.Hash(last) {
				return nil
			}
			last = next
		}
		pos.Signed = ckpt.Hash == audit.Hash(last)
		return nil
	})
	if err != nil {
		return AuditEvent{}, nil, AuditChainPosition{}, err
	}
	if pos.Signed {
		sig, derr := base64.StdEncoding.DecodeString(ckpt.Signature)
		pos.Signed = derr == nil && audit.VerifySignature(pub, sig, audit.CheckpointMessage(ckpt.Seq, ckpt.Hash, ckpt.Time)) == nil
	}
	return ev, line, pos, nil
}

// prevHashAt is the hash event seq must carry as PrevHash: the zero hash for event 1, the
// stored hash of event seq-1, or the pruning anchor's when seq-1 was the last event pruned;
// "" when none of these is known.
func prevHashAt(tx store.Tx, seq uint64) string {
	if seq == 1 {
		return audit.ZeroHash
	}
	if prev := tx.Get(bucketAudit, seqKey(seq-1)); prev != nil {
		return audit.Hash(prev)
	}
	if a := tx.Get(bucketMeta, metaAuditAnchor); len(a) >= 40 && binary.BigEndian.Uint64(a[:8]) == seq-1 {
		return audit.HashOf(a[8:40])
	}
	return ""
}

// AuditStatus is the verification state of the stored trail.
type AuditStatus struct {
	Checkpoint    Checkpoint // the latest; zero Seq when there is none
	HeadSeq       uint64     // the last event
	Verified      bool
	Problem       string // the first problem when not Verified
	UnsignedCount uint64 // events after the last valid checkpoint (within its interval)
}

// VerifyAudit verifies the stored trail as tokenvault audit verify --data does, but under the
// vault's own audit key (the one it signs with, not the copy stored beside the trail): the
// hash chain, every checkpoint signature, and that events after the last checkpoint span at
// most checkpointInterval (0: the default) after it.
func (v *Vault) VerifyAudit(ctx context.Context, checkpointInterval time.Duration) (AuditStatus, error) {
	pub, err := v.keyring().AuditPublicKeyset()
	if err != nil {
		return AuditStatus{}, err
	}
	var st AuditStatus
	c, ok, err := v.LatestCheckpoint(ctx)
	if err != nil {
		return AuditStatus{}, err
	}
	if ok {
		st.Checkpoint = c
	}
	if err := v.store.View(ctx, func(tx store.Tx) error {
		if h := tx.Get(bucketMeta, metaAuditHead); len(h) == 40 {
			st.HeadSeq = binary.BigEndian.Uint64(h[:8])
		}
		return nil
	}); err != nil {
		return AuditStatus{}, err
	}
	rep, err := VerifyStoreAudit(ctx, v.store, audit.Options{PublicKeyset: pub, KeySource: "vault", CheckpointInterval: checkpointInterval})
	switch {
	case rep.Problem != "":
		st.Problem = rep.Problem
		if rep.BadSeq > 0 {
			st.Problem = fmt.Sprintf("at event %d: %s", rep.BadSeq, rep.Problem)
		}
	case err != nil:
		return AuditStatus{}, err
	default:
		st.Verified = true
	}
	st.UnsignedCount = rep.Unsigned
	return st, nil
}

// AuditStats are the counts of one window of the trail, in buckets.
type AuditStats struct {
	Start, End time.Time     // the window: [Start, End)
	Bucket     time.Duration // the length of one bucket
	// Series are the items revealed per vendor and grant, sorted by vendor then grant; each
	// holds one count per bucket.
	Series []RevealSeries
	// Denials and Alerts hold one count per bucket.
	Denials, Alerts []int64
	// The sums over the window.
	Reveals, DenialTotal, AlertTotal int64
}

// RevealSeries is the items revealed by one vendor through one grant, per bucket.
type RevealSeries struct {
	Vendor  string // empty: internal detokenize calls
	GrantID string // empty: internal calls, and vendor calls that revealed through several grants
	Reveals []int64
}

// AlertMethod is the method of the events alerts record (package server fires them).
const AlertMethod = "Alert"

// revealMethods are the (short) method names whose events reveal values: their Allowed
// counts the items revealed.
var revealMethods = map[string]bool{"Detokenize": true, "VendorDetokenize": true, "DetokenizeRecords": true, "DetokenizeText": true}

// IsRevealMethod reports whether an audit event's method reveals values: detokenize in any
// form (the method may be a full gRPC name).
func IsRevealMethod(method string) bool { return revealMethods[path.Base(method)] }

// auditStatsBacktrack is how many events before the first one timed in the window are read
// anyway: events are appended in commit order, and their times (taken before the commit) may
// be out of order by a little.
const auditStatsBacktrack = 1000

// AuditStatsWindow counts, over the trail's events timed in [start, end), in buckets of
// bucket starting at start:
//   - reveals: the Allowed items of every event of a reveal method (IsRevealMethod), per
//     actor vendor and grant (the event's one grant; "" when it names none or several);
//   - denials: the events whose outcome is denied (each a refused request or sign-in);
//   - alerts: the events of AlertMethod.
//
// So a chart's totals equal the sums of the same fields over ListAudit's events with the same
// Start and End.
func (v *Vault) AuditStatsWindow(ctx context.Context, start, end time.Time, bucket time.Duration) (AuditStats, error) {
	if bucket <= 0 || !end.After(start) {
		return AuditStats{}, fmt.Errorf("%w: an empty window or bucket", ErrInvalidArgument)
	}
	n := int((end.Sub(start) + bucket - 1) / bucket)
	st := AuditStats{Start: start, End: end, Bucket: bucket, Denials: make([]int64, n), Alerts: make([]int64, n)}
	type key struct{ vendor, grant string }
	series := map[key][]int64{}
	err := v.store.View(ctx, func(tx store.Tx) error {
		clear(series)
		st.Reveals, st.DenialTotal, st.AlertTotal = 0, 0, 0
		clear(st.Denials)
		clear(st.Alerts)
		from := firstSeqAtOrAfter(tx, start)
		from = max(from, auditStatsBacktrack+1) - auditStatsBacktrack
		return tx.Scan(bucketAudit, nil, seqKey(from), func(k, val []byte) error {
			var ev AuditEvent
			if err := json.Unmarshal(val, &ev); err != nil {
				return fmt.Errorf("audit event %d is malformed: %w", binary.BigEndian.Uint64(k), err)
			}
			if ev.Time.Before(start) || !ev.Time.Before(end) {
				return ctx.Err()
			}
			i := int(ev.Time.Sub(start) / bucket)
			if IsRevealMethod(ev.Method) && ev.Allowed > 0 {
				g := ""
				if len(ev.GrantIDs) == 1 {
					g = ev.GrantIDs[0]
				}
				kk := key{ev.Actor.Vendor, g}
				if series[kk] == nil {
					series[kk] = make([]int64, n)
				}
				series[kk][i] += int64(ev.Allowed)
				st.Reveals += int64(ev.Allowed)
			}
			if ev.Outcome == OutcomeDenied {
				st.Denials[i]++
				st.DenialTotal++
			}
			if ev.Method == AlertMethod {
				st.Alerts[i]++
				st.AlertTotal++
			}
			return ctx.Err()
		})
	})
	if err != nil {
		return AuditStats{}, err
	}
	for k, pts := range series {
		st.Series = append(st.Series, RevealSeries{Vendor: k.vendor, GrantID: k.grant, Reveals: pts})
	}
	sort.Slice(st.Series, func(i, j int) bool {
		a, b := st.Series[i], st.Series[j]
		if a.Vendor != b.Vendor {
			return a.Vendor < b.Vendor
		}
		return a.GrantID < b.GrantID
	})
	return st, nil
}

// firstSeqAtOrAfter finds, by binary search over the stored events (their sequence numbers
// run without gaps from the first kept one to the head), the first event timed at or after t;
// events are appended in (nearly) time order. It returns the head's successor when none is.
func firstSeqAtOrAfter(tx store.Tx, t time.Time) uint64 {
	var lo, hi uint64 = 1, 0
	if h := tx.Get(bucketMeta, metaAuditHead); len(h) == 40 {
		hi = binary.BigEndian.Uint64(h[:8])
	}
	if a := tx.Get(bucketMeta, metaAuditAnchor); len(a) >= 8 {
		lo = binary.BigEndian.Uint64(a[:8]) + 1
	}
	timeAt := func(seq uint64) (time.Time, bool) {
		var probe struct {
			Time time.Time `json:"time"`
		}
		b := tx.Get(bucketAudit, seqKey(seq))
		if b == nil || json.Unmarshal(b, &probe) != nil {
			return time.Time{}, false
		}
		return probe.Time, true
	}
	end := hi + 1
	for lo < end {
		mid := lo + (end-lo)/2
		mt, ok := timeAt(mid)
		if !ok {
			return lo // a gap (pruned meanwhile, or unreadable): scan from the start
		}
		if mt.Before(t) {
			lo = mid + 1
		} else {
			end = mid
		}
	}
	return lo
}

package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Erasing marks: an erasure holds the tokenizes of its subject off, never the other way round.
//
// A tokenize reads the subject keys it seals under for share (batchReads.fetch), so that an
// erasure's delete of a key waits for the commit of every tokenize sealing under it
// (eraseSubjectFP). On PostgreSQL a new share lock is granted at once even while a delete
// waits for earlier ones, so tokenizes of one subject that overlap without a gap would hold
// its erasure off for as long as they kept coming. So an erasure first commits an erasing
// mark for its subject (bucket subjecterasing: the subject's fingerprint → erasingMark), and
// removes it in the transaction that destroys the key. A tokenize reads the marks together
// with the keys, in one statement (store.GetManyForShareUnless), and takes no lock on the key
// of a subject being erased: its transaction ends, it waits until the mark is gone
// (awaitErasures), then runs again and seals under the subject's new key, as any tokenize
// after an erasure does. Only tokenizes whose snapshot was taken before the mark committed
// can still lock the key: a finite set, each bounded by its own deadline. The erasure's
// delete waits for them, and for no later one.
//
// A mark is a hint for progress, not for safety: that a tokenize never commits a record under
// an erased key still rests on the share lock and on the erasure's sweep. So a mark left by a
// replica that died mid-erasure is ignored once it is older than erasingMarkTTL (tokenizes
// then lock the key as before), is removed when that replica starts again (applyErasureLog:
// its erasures in flight died with it), and is replaced, then removed, by the next erasure of
// the subject (which the privacy officer runs again: the first one returned an error).

// erasingMarkTTL is how long a tokenize honours an erasing mark: far longer than an erasure
// takes (its delete waits only for tokenizes that started before it), short enough that a
// mark left by a dead replica stops delaying the subject's tokenizes soon.
const erasingMarkTTL = 2 * time.Minute

// erasingMark is the value of an erasing mark (JSON). It names no subject: the key is the
// subject's fingerprint.
type erasingMark struct {
	Replica string    `json:"replica"`
	Started time.Time `json:"started"`
	// ID is random: it tells this erasure's mark from another erasure's of the same subject.
	ID string `json:"id"`
}

// markLive reports whether the stored mark b is to be honoured at now: it parses and is
// younger than erasingMarkTTL, by now. A mark dated more than erasingMarkSkew ahead of now
// is not: its replica's clock is fast, and honouring it would block the subject's tokenizes
// for the clock's error on top of the TTL (its erasure, if alive, then just waits for
// tokenizes, as without marks).
func markLive(b []byte, now time.Time) bool {
	var m erasingMark
	if json.Unmarshal(b, &m) != nil {
		return false
	}
	age := now.Sub(m.Started)
	return age >= -erasingMarkSkew && age <= erasingMarkTTL
}

// erasingMarkSkew is how far ahead of a reader's clock a mark's start may be and still count
// (the replicas' clocks disagree by that much at most, with NTP).
const erasingMarkSkew = 30 * time.Second

// markErasing commits subject fp's erasing mark (not audited: the erasure's own events are)
// and returns it as stored.
func (v *Vault) markErasing(ctx context.Context, fp []byte) ([]byte, error) {
	id := make([]byte, 8)
	_, _ = rand.Read(id) // crypto/rand.Read never fails (Go 1.24+)
	mark, err := json.Marshal(erasingMark{Replica: v.replica, Started: v.now().UTC(), ID: hex.EncodeToString(id)})
	if err != nil {
		return nil, err
	}
	return mark, v.store.Update(ctx, func(tx store.Tx) error { return tx.Put(bucketSubjectErasing, fp, mark) })
}

// dropErasingMark deletes subject fp's erasing mark in tx if it is still mark (a later erasure
// of the subject may have replaced it with its own).
func dropErasingMark(tx store.Tx, fp, mark []byte) error {
	if bytes.Equal(tx.Get(bucketSubjectErasing, fp), mark) {
		return tx.Delete(bucketSubjectErasing, fp)
	}
	return nil
}

// unmarkErasing removes mark after an erasure that failed before destroying the key, within
// a few seconds whatever the caller's deadline; a mark left behind is ignored once stale.
func (v *Vault) unmarkErasing(ctx context.Context, fp, mark []byte) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := v.store.Update(ctx, func(tx store.Tx) error { return dropErasingMark(tx, fp, mark) }); err != nil {
		v.log.Warn("an erasing mark could not be removed after a failed erasure; tokenizes of its subject wait for it until it is stale",
			slog.Duration("stale_after", erasingMarkTTL), slog.String("error", err.Error()))
	}
}

// dropOwnErasingMarks removes the erasing marks this replica left (it died mid-erasure), and
// unreadable ones: at start, no erasure of this replica is in flight.
func (v *Vault) dropOwnErasingMarks(ctx context.Context) error {
	_, err := v.dropErasingMarks(ctx, func(val []byte) bool {
		var m erasingMark
		return json.Unmarshal(val, &m) != nil || m.Replica == v.replica
	})
	return err
}

// dropStaleErasingMarks removes the erasing marks no tokenize honours any longer (markLive):
// those of erasures that died mid-way on a replica that never started again under its name
// (a Deployment's pods), which would otherwise stay, and cost each tokenize of their subject
// a second read. It runs in the background pass, on the lease holder.
func (v *Vault) dropStaleErasingMarks(ctx context.Context) (int, error) {
	now := v.now()
	return v.dropErasingMarks(ctx, func(val []byte) bool { return !markLive(val, now) })
}

// dropErasingMarks deletes the erasing marks whose value drop selects, and returns how many.
// A mark is judged again in the deleting transaction: an erasure may have marked its subject
// anew since the scan.
func (v *Vault) dropErasingMarks(ctx context.Context, drop func(val []byte) bool) (int, error) {
	var found [][]byte
	if err := v.store.View(ctx, func(tx store.Tx) error {
		found = found[:0]
		return tx.Scan(bucketSubjectErasing, nil, nil, func(k, val []byte) error {
			if drop(val) {
				found = append(found, bytes.Clone(k))
			}
			return nil
		})
	}); err != nil || len(found) == 0 {
		return 0, err
	}
	n := 0
	err := v.store.Update(ctx, func(tx store.Tx) error {
		n = 0
		for _, k := range found {
			if b := tx.Get(bucketSubjectErasing, k); b != nil && drop(b) {
				if err := tx.Delete(bucketSubjectErasing, k); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

// erasingAnswerMargin is how long before its deadline at most a tokenize stops waiting for
// an erasure (awaitErasures), to answer in time: a tenth of the time it had left, up to this.
const erasingAnswerMargin = 250 * time.Millisecond

// subjectErasingError ends a tokenize's transaction that found subjects being erased (fps):
// Tokenize waits for their erasures, then runs again.
type subjectErasingError struct{ fps [][]byte }

func (e *subjectErasingError) Error() string { return "a data subject of the call is being erased" }

// readSubjectKeys reads subject keys for share (batchReads.fetch), with their subjects'
// erasing marks in the same statement: the key of a subject with a live mark is neither read
// nor locked, and the transaction ends with a *subjectErasingError naming those subjects. The
// keys of subjects whose mark is stale are read for share as if it were not there.
func readSubjectKeys(tx store.Tx, keys [][]byte, now time.Time) ([][]byte, error) {
	vals, marks := store.GetManyForShareUnless(tx, bucketSubjectKeys, bucketSubjectErasing, keys)
	var erasing, stale [][]byte
	var at []int
	for i, m := range marks {
		switch {
		case m == nil:
		case markLive(m, now):
			erasing = append(erasing, keys[i])
		default:
			stale, at = append(stale, keys[i]), append(at, i)
		}
	}
	if len(erasing) > 0 {
		return nil, &subjectErasingError{fps: erasing}
	}
	if len(stale) > 0 {
		for n, val := range store.GetManyForShare(tx, bucketSubjectKeys, stale) {
			vals[at[n]] = val
		}
	}
	return vals, nil
}

// awaitErasures waits until none of subjects fps has a live erasing mark, polling with
// backoff; when ctx ends first, it returns ErrSubjectErasing (in a RetryAfterError). It
// gives up a little before ctx's deadline (erasingAnswerMargin), so that the answer reaches
// the caller before the caller's own deadline ends: a gRPC client's ends at the same time as
// the server's, and would report DEADLINE_EXCEEDED, without the retry delay, instead (found
// by TestTokenizeDuringErasureEndToEnd).
func (v *Vault) awaitErasures(ctx context.Context, fps [][]byte) error {
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-min(time.Until(dl)/10, erasingAnswerMargin)))
		defer cancel()
	}
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		live := false
		if err := v.store.View(ctx, func(tx store.Tx) error {
			live = false
			now := v.now()
			for _, m := range tx.GetMany(bucketSubjectErasing, fps) {
				live = live || m != nil && markLive(m, now)
			}
			return nil
		}); err != nil {
			if ctx.Err() != nil {
				return &RetryAfterError{Err: ErrSubjectErasing, After: time.Second}
			}
			return err
		}
		if !live {
			return nil
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return &RetryAfterError{Err: ErrSubjectErasing, After: time.Second}
		case <-t.C:
		}
	}
}

package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"slices"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Erasing marks: an erasure holds the tokenizes of its subject off, never the other way round.
//
// A tokenize reads the subject keys it seals under for share (batchReads.fetch), so that an
// erasure's delete of a key waits for the commit of every tokenize sealing under it
// (eraseSubjectFP). On PostgreSQL a new share lock is granted at once even while a delete
// waits for earlier ones, so tokenizes of one subject that overlap without a gap would hold
// its erasure off for as long as they kept coming. So an erasure first commits its entry in
// an erasing mark for its subject (bucket subjecterasing: the subject's fingerprint →
// erasingMark, the set of the subject's erasures under way), and removes its entry (the key,
// when it was the last) in the transaction that destroys the key. A tokenize reads the marks
// together with the keys, in one statement (store.GetManyForShareUnless), and takes no lock on
// the key of a subject being erased: its transaction ends, it waits until the mark is gone
// or stale (awaitErasures), then runs again and seals under the subject's new key, as any tokenize
// after an erasure does. Only tokenizes whose snapshot was taken before the mark committed
// can still lock the key: a finite set, each bounded by its own deadline. The erasure's
// delete waits for them, and for no later one.
//
// Two erasures of one subject at once each keep their entry until they end, so the first to
// end does not take the other's protection away (TestOverlappingErasuresKeepMarks).
//
// A mark is a hint for progress, not for safety: that a tokenize never commits a record under
// an erased key still rests on the share lock and on the erasure's sweep. So an entry left by
// a replica that died mid-erasure is ignored once it is older than erasingMarkTTL (tokenizes
// then lock the key as before), is removed when that replica starts again (applyErasureLog:
// its erasures in flight died with it), and by the background pass once stale; an erasure of
// the subject run again meanwhile adds its own entry and removes only that one.

// erasingMarkTTL is how long a tokenize honours an erasure's entry in an erasing mark: far
// longer than an erasure takes (its delete waits only for tokenizes that started before it),
// short enough that an entry left by a dead replica stops delaying the subject's tokenizes
// soon.
const erasingMarkTTL = 2 * time.Minute

// erasingMark is the value of an erasing mark (JSON): the erasures of the subject under way,
// each adding its entry when it starts and removing only its own when it ends, so that each
// one's tokenizes wait until that erasure ends; the key goes with the last entry. It names no
// subject: the key is the subject's fingerprint.
//
// Replica, Started and ID are those of the latest live entry: the whole mark in the first
// format (one erasure, no Erasures), which a previous version writes and reads. So during a
// rolling upgrade a previous version's readers honour this version's marks (while their
// latest erasure's entry is live), and this version honours theirs (parseMark).
type erasingMark struct {
	Replica  string         `json:"replica"`
	Started  time.Time      `json:"started"`
	ID       string         `json:"id"`
	Erasures []erasingEntry `json:"erasures,omitempty"`
}

// erasingEntry is one erasure's entry in an erasing mark.
type erasingEntry struct {
	Replica string    `json:"replica"`
	Started time.Time `json:"started"`
	// ID is random: it tells this erasure's entry from another erasure's of the same subject.
	ID string `json:"id"`
	// Incarnation is the erasing process's (Vault.incarnation): see replicaDiedSince.
	Incarnation string `json:"incarnation,omitempty"`
	// Legacy marks the erasure of a previous version, whose first-format mark an erasure of
	// this version took over (parseMark). That erasure removes its mark only if unchanged, so
	// it cannot remove its entry: the next erasure of this version to end removes it (then
	// that erasure waits for tokenizes as without marks, as in the previous version).
	Legacy bool `json:"legacy,omitempty"`
}

// parseMark returns the erasures of the stored mark b; ok is false when b does not parse. A
// mark in the first format is one legacy entry.
func parseMark(b []byte) (entries []erasingEntry, ok bool) {
	var m erasingMark
	if json.Unmarshal(b, &m) != nil {
		return nil, false
	}
	if len(m.Erasures) > 0 {
		return m.Erasures, true
	}
	return []erasingEntry{{Replica: m.Replica, Started: m.Started, ID: m.ID, Legacy: true}}, true
}

// writeMark stores subject fp's erasing mark with entries in tx, or deletes it when there are
// none.
func writeMark(tx store.Tx, fp []byte, entries []erasingEntry, now time.Time) error {
	if len(entries) == 0 {
		return tx.Delete(bucketSubjectErasing, fp)
	}
	latest := -1
	for i, e := range entries {
		if latest < 0 || e.live(now) && (!entries[latest].live(now) || e.Started.After(entries[latest].Started)) {
			latest = i
		}
	}
	l := entries[latest]
	if len(entries) > 1 {
		// A previous version removes, when it restarts, the whole mark whose replica is its
		// own: with several entries, the top-level replica names none, so that a previous
		// version's pod restarting during a rolling upgrade (or a roll back) does not remove
		// other replicas' entries.
		l.Replica = ""
	}
	b, err := json.Marshal(erasingMark{Replica: l.Replica, Started: l.Started, ID: l.ID, Erasures: entries})
	if err != nil {
		return err
	}
	return tx.Put(bucketSubjectErasing, fp, b)
}

// live reports whether entry e is to be honoured at now: it is younger than erasingMarkTTL,
// by now. An entry dated more than erasingMarkSkew ahead of now is not: its replica's clock
// is fast, and honouring it would block the subject's tokenizes for the clock's error on top
// of the TTL (its erasure, if alive, then just waits for tokenizes, as without marks).
func (e erasingEntry) live(now time.Time) bool {
	age := now.Sub(e.Started)
	return age >= -erasingMarkSkew && age <= erasingMarkTTL
}

// markLive reports whether the stored mark b is to be honoured at now: it parses and one of
// its entries is live.
func markLive(b []byte, now time.Time) bool {
	entries, _ := parseMark(b)
	for _, e := range entries {
		if e.live(now) {
			return true
		}
	}
	return false
}

// erasingMarkSkew is how far ahead of a reader's clock a mark's start may be and still count
// (the replicas' clocks disagree by that much at most, with NTP).
const erasingMarkSkew = 30 * time.Second

// markErasing commits this erasure's entry in subject fp's erasing mark (not audited: the
// erasure's own events are), dropping the entries no tokenize honours any more, and returns
// the entry's id. The id is returned with an error too: the commit's outcome may be unknown.
func (v *Vault) markErasing(ctx context.Context, fp []byte) (string, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	e := erasingEntry{Replica: v.replica, Started: v.now().UTC(), ID: hex.EncodeToString(b), Incarnation: v.incarnation}
	return e.ID, v.store.Update(ctx, func(tx store.Tx) error {
		now := v.now()
		old, _ := parseMark(tx.Get(bucketSubjectErasing, fp)) // one that does not parse is replaced
		old = slices.DeleteFunc(old, func(o erasingEntry) bool { return !o.live(now) })
		dead := replicasDiedSince(tx, old, now)
		entries := make([]erasingEntry, 0, len(old)+1)
		for i, o := range old {
			if !dead[i] {
				entries = append(entries, o)
			}
		}
		return writeMark(tx, fp, append(entries, e), now)
	})
}

// replicasDiedSince reports, for each entry, whether its replica is known to have died since
// its erasure began, so that the erasure died with it: the replica's heartbeat row expired
// more than erasingMarkSkew ago (by this reader's clock, which may be that far ahead of the
// replica's), or was written by a later process under the same id (another incarnation, which
// started after the entry, both by that replica's clock). A replica without a row, or whose
// row is of the entry's own process (also when that process's first heartbeat came after the
// erasure began), is not known dead: its entry goes when stale or when its erasure ends.
// markErasing drops such entries, so that an erasure run again at once after its replica died
// (as the privacy officer does on the error) does not leave the subject's tokenizes waiting
// for the dead one until it is stale. It reads the rows in one GetMany, in markErasing's own
// small transaction, never in the erasure's.
func replicasDiedSince(tx store.Tx, entries []erasingEntry, now time.Time) []bool {
	dead := make([]bool, len(entries))
	if len(entries) == 0 {
		return dead
	}
	ids := make([][]byte, len(entries))
	for i, e := range entries {
		ids[i] = []byte(e.Replica)
	}
	for i, b := range tx.GetMany(bucketReplicas, ids) {
		var r ReplicaInfo
		if b == nil || json.Unmarshal(b, &r) != nil {
			continue
		}
		e := entries[i]
		later := r.Incarnation != "" && e.Incarnation != "" && r.Incarnation != e.Incarnation && r.Started.After(e.Started)
		dead[i] = later || now.After(r.LiveUntil.Add(erasingMarkSkew))
	}
	return dead
}

// dropErasingMark removes erasure id's entry from subject fp's erasing mark in tx, with the
// legacy entries (a previous version's erasure cannot remove its own) and those no tokenize
// honours any more; the entries of other erasures under way stay.
func dropErasingMark(tx store.Tx, fp []byte, id string, now time.Time) error {
	b := tx.Get(bucketSubjectErasing, fp)
	if b == nil {
		return nil
	}
	kept, n, ok := keptEntries(b, func(e erasingEntry) bool { return e.ID == id || e.Legacy || !e.live(now) })
	if !ok || n == 0 {
		return nil // one that does not parse is not this erasure's: ignored by readers, removed by the background pass
	}
	return writeMark(tx, fp, kept, now)
}

// keptEntries returns the entries of the stored mark b that drop does not select, and how
// many it selected; ok is false when b does not parse.
func keptEntries(b []byte, drop func(erasingEntry) bool) (kept []erasingEntry, n int, ok bool) {
	entries, ok := parseMark(b)
	if !ok {
		return nil, 0, false
	}
	kept = slices.DeleteFunc(entries, drop)
	return kept, len(entries) - len(kept), true
}

// unmarkErasing removes erasure id's entry after an erasure that failed before destroying the
// key, within a few seconds whatever the caller's deadline; an entry left behind is ignored
// once stale.
func (v *Vault) unmarkErasing(ctx context.Context, fp []byte, id string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := v.store.Update(ctx, func(tx store.Tx) error { return dropErasingMark(tx, fp, id, v.now()) }); err != nil {
		v.log.Warn("an erasing mark could not be removed after a failed erasure; tokenizes of its subject wait for it until it is stale",
			slog.Duration("stale_after", erasingMarkTTL), slog.String("error", err.Error()))
	}
}

// dropOwnErasingMarks removes the entries this replica left in erasing marks (it died
// mid-erasure), and unreadable marks: at start, no erasure of this replica is in flight.
func (v *Vault) dropOwnErasingMarks(ctx context.Context) error {
	_, err := v.dropErasingMarks(ctx, func(e erasingEntry, _ time.Time) bool { return e.Replica == v.replica })
	return err
}

// dropStaleErasingMarks removes the entries of erasing marks that no tokenize honours any
// longer (erasingEntry.live), and unreadable marks: those of erasures that died mid-way on a
// replica that never started again under its name (a Deployment's pods), which would
// otherwise stay, and cost each tokenize of their subject a second read. It runs in the
// background pass, on the lease holder.
func (v *Vault) dropStaleErasingMarks(ctx context.Context) (int, error) {
	return v.dropErasingMarks(ctx, func(e erasingEntry, now time.Time) bool { return !e.live(now) })
}

// dropErasingMarks removes the entries of erasing marks that drop selects (and the marks
// left without one), and the marks that do not parse, and returns how many entries and
// unreadable marks it removed. A mark is judged again in the deleting transaction: an
// erasure may have added or removed its entry since the scan.
func (v *Vault) dropErasingMarks(ctx context.Context, drop func(e erasingEntry, now time.Time) bool) (int, error) {
	// dropped returns the entries of mark b to keep, and how many it drops (an unreadable
	// mark counts one).
	dropped := func(b []byte, now time.Time) ([]erasingEntry, int) {
		kept, n, ok := keptEntries(b, func(e erasingEntry) bool { return drop(e, now) })
		if !ok {
			return nil, 1
		}
		return kept, n
	}
	var found [][]byte
	if err := v.store.View(ctx, func(tx store.Tx) error {
		found = found[:0]
		now := v.now()
		return tx.Scan(bucketSubjectErasing, nil, nil, func(k, val []byte) error {
			if _, n := dropped(val, now); n > 0 {
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
		now := v.now()
		for _, k := range found {
			b := tx.Get(bucketSubjectErasing, k)
			if b == nil {
				continue
			}
			kept, d := dropped(b, now)
			if d == 0 {
				continue
			}
			if err := writeMark(tx, k, kept, now); err != nil {
				return err
			}
			n += d
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

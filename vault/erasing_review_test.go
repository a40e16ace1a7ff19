package vault

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// unknownMarkCommit commits the first write of an erasing mark, then reports the commit's
// outcome as unknown (PostgreSQL: the connection lost while COMMIT was in flight).
type unknownMarkCommit struct {
	store.Store
	done bool
}

type markSpyTx struct {
	store.Tx
	wrote *bool
}

func (t markSpyTx) Put(b store.Bucket, k, v []byte) error {
	if b == bucketSubjectErasing {
		*t.wrote = true
	}
	return t.Tx.Put(b, k, v)
}

func (s *unknownMarkCommit) Update(ctx context.Context, fn func(store.Tx) error) error {
	wrote := false
	err := s.Store.Update(ctx, func(tx store.Tx) error { wrote = false; return fn(markSpyTx{tx, &wrote}) })
	if err == nil && wrote && !s.done {
		s.done = true
		return fmt.Errorf("%w: injected", store.ErrCommitUnknown)
	}
	return err
}

// An erasure whose mark's commit has an unknown outcome (the mark may be stored) takes the
// mark back before it returns: otherwise the subject's tokenizes would fail with
// ErrSubjectErasing for erasingMarkTTL, waiting for an erasure that is not running (found by
// review: eraseSubjectFP returned before its deferred unmark was set).
func TestMarkTakenBackOnUnknownCommit(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "v.db"), store.Options{})
	rs := openReplicas(t, []store.Store{st, &unknownMarkCommit{Store: st}}, nil)
	a, broken := rs.v[0], rs.v[1]
	tokenizeOne(t, a, TokenizeItem{Value: "jane@example.com", Template: "email", Subject: "cust-1"})
	if _, err := broken.EraseSubject(ctx, "cust-1"); !errors.Is(err, store.ErrCommitUnknown) {
		t.Fatalf("EraseSubject = %v; want ErrCommitUnknown", err)
	}
	fp, _ := a.subjectFingerprint("cust-1")
	if hasMark(t, a, fp) {
		t.Error("an erasure that returned ErrCommitUnknown on its mark left the mark behind")
	}
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := a.Tokenize(short, []TokenizeItem{{Value: "jane2@example.com", Template: "email", Subject: "cust-1"}}); err != nil {
		t.Errorf("tokenize after the failed erasure: %v; want it to succeed", err)
	}
}

// A mark dated ahead of the reader's clock by more than erasingMarkSkew (the erasing
// replica's clock is fast) is not honoured: a replica that died mid-erasure with a clock an
// hour fast would otherwise block the subject's tokenizes for an hour and more (found by
// review). The background pass removes such marks, and marks past erasingMarkTTL.
func TestFutureMarkNotHonoured(t *testing.T) {
	ctx := context.Background()
	clk := newClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	st := openStore(t, filepath.Join(t.TempDir(), "v.db"), store.Options{})
	rs := openReplicas(t, []store.Store{st}, clk)
	v := rs.v[0]
	tokenizeOne(t, v, TokenizeItem{Value: "jane@example.com", Template: "email", Subject: "skew"})
	fp, _ := v.subjectFingerprint("skew")
	putMark(t, v, fp, "fast-clock-pod", clk.now().Add(time.Hour))
	clk.add(erasingMarkTTL + time.Second)
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if _, err := v.Tokenize(short, []TokenizeItem{{Value: "jane2@example.com", Template: "email", Subject: "skew"}}); err != nil {
		t.Errorf("tokenize %v after a dead replica's (future-dated) mark: %v; want it ignored", erasingMarkTTL+time.Second, err)
	}
	// The background pass removes marks no tokenize honours: this one, and one past the TTL;
	// a live mark (an erasure under way) stays.
	putMark(t, v, []byte("old-subject-fp"), "gone-pod", clk.now().Add(-erasingMarkTTL-time.Minute))
	putMark(t, v, []byte("live-subject-fp"), "busy-pod", clk.now().Add(-time.Second))
	n, err := v.dropStaleErasingMarks(ctx)
	if err != nil || n != 2 {
		t.Fatalf("dropStaleErasingMarks = %d, %v; want 2 (the future-dated and the old mark)", n, err)
	}
	if hasMark(t, v, fp) || hasMark(t, v, []byte("old-subject-fp")) || !hasMark(t, v, []byte("live-subject-fp")) {
		t.Error("after the sweep: want the stale marks gone and the live one kept")
	}
}

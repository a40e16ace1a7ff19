package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenvault/tokenvault/internal/storespy"
	"github.com/tokenvault/tokenvault/internal/testpg"
	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/store/pgstore"
)

// shareHold is a store whose write transactions call held right after they have read a
// subject key for share (the read a tokenize makes in batchReads.fetch), while the transaction
// holds its share lock, and saw when such a read found the subject being erased instead (no
// lock taken). It is the test's way of holding a tokenize inside its transaction.
type shareHold struct {
	store.Store
	mu        sync.Mutex
	held, saw func() // nil: none
}

func (s *shareHold) hooks() (held, saw func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held, s.saw
}

func (s *shareHold) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(shareHoldTx{Tx: tx, s: s}) })
}

type shareHoldTx struct {
	store.Tx
	s *shareHold
}

func (t shareHoldTx) GetForShare(b store.Bucket, key []byte) []byte {
	return store.GetForShare(t.Tx, b, key)
}

func (t shareHoldTx) GetManyForShare(b store.Bucket, keys [][]byte) [][]byte {
	vals := store.GetManyForShare(t.Tx, b, keys)
	t.after(b, vals, nil)
	return vals
}

func (t shareHoldTx) GetManyForShareUnless(b, guard store.Bucket, keys [][]byte) (vals, guards [][]byte, ok bool) {
	vals, guards = store.GetManyForShareUnless(t.Tx, b, guard, keys)
	t.after(b, vals, guards)
	return vals, guards, true
}

// after calls the hooks after a share read of keys of b.
func (t shareHoldTx) after(b store.Bucket, vals, guards [][]byte) {
	if b != bucketSubjectKeys {
		return
	}
	held, saw := t.s.hooks()
	switch {
	case len(guards) > 0 && guards[0] != nil && saw != nil:
		saw()
	case len(vals) > 0 && vals[0] != nil && held != nil:
		held()
	}
}

// within waits for ch, failing the test after d.
func within[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("%s: not within %v", what, d)
	}
	var zero T
	return zero
}

// TestClusterEraseNotHeldOffByTokenizes: on PostgreSQL, an erasure of a subject completes
// while tokenizes for that subject keep coming, each starting before the previous one ends.
// Tokenize A holds its share lock on the subject key; the erasure starts and its delete of the
// key queues behind A; tokenize B for the same subject starts (PostgreSQL grants a new share
// lock at once although a delete is queued) and is held inside its transaction; A is released.
// The erasure must now complete without waiting for B: B must not have taken a lock the
// erasure waits for. It then checks the invariants of TestClusterEraseDuringTokenize: A's token
// is in the receipt, B's (sealed under a key made after the erasure) still reveals.
func TestClusterEraseNotHeldOffByTokenizes(t *testing.T) {
	c := testpg.Start(t)
	url := c.CreateDB(t, "erasehold")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pg := func() store.Store {
		s, err := pgstore.Open(ctx, url, pgstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	ha, hb := &shareHold{Store: pg()}, &shareHold{Store: pg()}
	rs := openReplicas(t, []store.Store{ha, hb, pg()}, nil)
	a, b, e := rs.v[0], rs.v[1], rs.v[2]
	const subject = "customer-42"
	item := func(i int) TokenizeItem {
		return TokenizeItem{Value: fmt.Sprintf("jane.%d@example.com", i), Template: "email", Subject: subject}
	}
	first := tokenizeOne(t, a, item(0)) // the subject's key exists

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	waitingForLock := func() bool {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}

	type result struct {
		token string
		err   error
	}
	tokenize := func(v *Vault, it TokenizeItem) <-chan result {
		ch := make(chan result, 1)
		go func() {
			res, err := v.Tokenize(ctx, []TokenizeItem{it})
			if err == nil {
				err = res[0].Err
			}
			if err != nil {
				ch <- result{err: err}
				return
			}
			ch <- result{token: res[0].Token}
		}()
		return ch
	}
	// hold makes h's next share read of a subject key signal decided and wait for release;
	// a read that finds the subject being erased signals decided too (and takes no lock).
	hold := func(h *shareHold) (decided, release chan struct{}) {
		decided, release = make(chan struct{}), make(chan struct{})
		var once, seen sync.Once
		h.mu.Lock()
		h.held = func() {
			seen.Do(func() { close(decided) })
			once.Do(func() { <-release })
		}
		h.saw = func() { seen.Do(func() { close(decided) }) }
		h.mu.Unlock()
		return decided, release
	}

	// Tokenize A takes its share lock and is held.
	lockedA, releaseA := hold(ha)
	resA := tokenize(a, item(1))
	within(t, lockedA, time.Minute, "tokenize A reading the subject key for share")

	// The erasure starts; its delete of the key queues behind A's lock.
	type erasure struct {
		rc  Receipt
		err error
	}
	erased := make(chan erasure, 1)
	go func() {
		rc, err := e.EraseSubject(ctx, subject)
		erased <- erasure{rc, err}
	}()
	for deadline := time.Now().Add(time.Minute); !waitingForLock(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the erasure's delete did not queue behind tokenize A's lock within a minute")
		}
	}

	// Tokenize B for the same subject starts while A still holds its lock, and is held in its
	// transaction once it has read the subject key for share (before the fix, it took its
	// share lock; since, it finds the subject being erased, takes no lock, and waits).
	lockedB, releaseB := hold(hb)
	releasedB := false
	defer func() {
		if !releasedB {
			close(releaseB)
		}
	}()
	resB := tokenize(b, item(2))
	within(t, lockedB, time.Minute, "tokenize B reading the subject key")

	// A is released and commits; the erasure must not wait for B.
	close(releaseA)
	rA := within(t, resA, time.Minute, "tokenize A")
	if rA.err != nil {
		t.Fatalf("tokenize A: %v", rA.err)
	}
	var er erasure
	select {
	case er = <-erased:
	case <-time.After(30 * time.Second):
		t.Error("the erasure did not complete within 30 s of tokenize A's commit while tokenize B was held: B's share lock holds it off")
		close(releaseB)
		releasedB = true
		er = within(t, erased, time.Minute, "the erasure, once B was released")
	}
	if er.err != nil {
		t.Fatalf("EraseSubject: %v", er.err)
	}
	if !releasedB {
		close(releaseB)
		releasedB = true
	}
	rB := within(t, resB, time.Minute, "tokenize B")
	if rB.err != nil {
		t.Fatalf("tokenize B: %v", rB.err)
	}
	inReceipt := make(map[string]bool, len(er.rc.Erased))
	for _, fp := range er.rc.Erased {
		inReceipt[fp] = true
	}
	// The first token and A's (sealed under the erased key, A committed before the erasure's
	// delete) are in the receipt and erased; B's, sealed under a new key, reveals.
	res, err := a.Detokenize(ctx, "p", []TokenRef{{Token: first}, {Token: rA.token}, {Token: rB.token}})
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"the first token", "tokenize A's token"} {
		tok := []string{first, rA.token}[i]
		if !inReceipt[TokenFingerprint(DefaultDomain, tok)] || res[i].Err == nil {
			t.Errorf("%s: in the receipt %v, reveals %v; want listed and erased", name, inReceipt[TokenFingerprint(DefaultDomain, tok)], res[i].Err == nil)
		}
	}
	if inReceipt[TokenFingerprint(DefaultDomain, rB.token)] || res[2].Err != nil {
		t.Errorf("tokenize B's token (after the erasure): in the receipt %v, reveal error %v; want kept and readable", inReceipt[TokenFingerprint(DefaultDomain, rB.token)], res[2].Err)
	}
}

// putMark stores an erasing mark of subject fp as replica's, started at started.
func putMark(t *testing.T, v *Vault, fp []byte, replica string, started time.Time) {
	t.Helper()
	mark, err := json.Marshal(erasingMark{Replica: replica, Started: started, ID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.store.Update(context.Background(), func(tx store.Tx) error { return tx.Put(bucketSubjectErasing, fp, mark) }); err != nil {
		t.Fatal(err)
	}
}

func hasMark(t *testing.T, v *Vault, fp []byte) bool {
	t.Helper()
	var ok bool
	if err := v.store.View(context.Background(), func(tx store.Tx) error { ok = tx.Get(bucketSubjectErasing, fp) != nil; return nil }); err != nil {
		t.Fatal(err)
	}
	return ok
}

// markBackends open a new store of each backend for the erasing mark tests.
var markBackends = map[string]func(t *testing.T) store.Store{
	"bolt": func(t *testing.T) store.Store {
		return openStore(t, filepath.Join(t.TempDir(), "v.db"), store.Options{})
	},
	"postgres": func(t *testing.T) store.Store {
		url := testpg.Start(t).CreateDB(t, "marks")
		s, err := pgstore.Open(context.Background(), url, pgstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

// markHold is a store whose next write of an erasing mark, once committed, signals marked
// and waits for release (arm): an erasure held after committing its mark, outside any
// transaction.
type markHold struct {
	storespy.Store
	hold storespy.Hold
}

func newMarkHold(st store.Store) *markHold {
	h := &markHold{}
	h.Store = storespy.Store{Store: st, Bucket: bucketSubjectErasing, Committed: func(err error) error {
		if err == nil {
			h.hold.Pass()
		}
		return err
	}}
	return h
}

func (h *markHold) arm() (marked, release chan struct{}) { return h.hold.Arm() }

// Two erasures of one subject at once: each keeps the subject's tokenizes waiting until it
// ends, whichever ends first. Before, the later erasure's mark replaced the earlier one's,
// so when the later one ended first it removed the only mark, and the earlier one, still
// under way, went on unprotected (its delete waiting for tokenizes as without marks).
func TestOverlappingErasuresKeepMarks(t *testing.T) {
	for _, name := range []string{"bolt", "postgres"} {
		for _, laterFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/later ends first %v", name, laterFirst), func(t *testing.T) {
				ctx := context.Background()
				st := markBackends[name](t)
				h1, h2 := newMarkHold(st), newMarkHold(st)
				rs := openReplicas(t, []store.Store{h1, h2, st}, nil)
				e1, e2, c := rs.v[0], rs.v[1], rs.v[2]
				const subject = "customer-8"
				first := tokenizeOne(t, c, TokenizeItem{Value: "jane@example.com", Template: "email", Subject: subject})
				fp, _ := c.subjectFingerprint(subject)

				type erasure struct {
					release func()
					done    chan error
				}
				start := func(v *Vault, h *markHold) erasure {
					marked, release := h.arm()
					done := make(chan error, 1)
					go func() {
						_, err := v.EraseSubject(ctx, subject)
						done <- err
					}()
					within(t, marked, time.Minute, "the erasure committing its mark")
					var once sync.Once
					e := erasure{func() { once.Do(func() { close(release) }) }, done}
					t.Cleanup(e.release)
					return e
				}
				earlier := start(e1, h1)
				later := start(e2, h2)
				ends, goesOn := earlier, later
				if laterFirst {
					ends, goesOn = later, earlier
				}
				ends.release()
				if err := within(t, ends.done, time.Minute, "the erasure that ends first"); err != nil {
					t.Fatal(err)
				}
				if !hasMark(t, c, fp) {
					t.Error("no erasing mark left while an erasure of the subject is still under way")
				}
				short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				_, err := c.Tokenize(short, []TokenizeItem{{Value: "jane2@example.com", Template: "email", Subject: subject}})
				cancel()
				if !errors.Is(err, ErrSubjectErasing) {
					t.Errorf("tokenize while the other erasure is under way: %v; want ErrSubjectErasing (the first erasure to end took the other's protection away)", err)
				}

				goesOn.release()
				if err := within(t, goesOn.done, time.Minute, "the other erasure"); err != nil {
					t.Fatal(err)
				}
				if hasMark(t, c, fp) {
					t.Error("an erasing mark is left after both erasures ended")
				}
				tok := tokenizeOne(t, c, TokenizeItem{Value: "jane3@example.com", Template: "email", Subject: subject})
				res, err := c.Detokenize(ctx, "p", []TokenRef{{Token: first}, {Token: tok}})
				if err != nil {
					t.Fatal(err)
				}
				if !errors.Is(res[0].Err, ErrNotFound) || res[1].Err != nil {
					t.Errorf("after both erasures: the first token %v, a new one %v; want not found, readable", res[0].Err, res[1].Err)
				}
			})
		}
	}
}

// A tokenize that finds its subject being erased waits, without a lock, until the erasure
// has destroyed the key, then seals under a new key: its token is not in the receipt and
// reveals. One whose context ends first fails with ErrSubjectErasing, storing nothing.
func TestTokenizeWaitsForErasure(t *testing.T) {
	for _, name := range []string{"bolt", "postgres"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := markBackends[name](t)
			ha := &shareHold{Store: st}
			rs := openReplicas(t, []store.Store{ha, st}, nil)
			a, b := rs.v[0], rs.v[1]
			const subject = "customer-7"
			first := tokenizeOne(t, a, TokenizeItem{Value: "jane@example.com", Template: "email", Subject: subject})
			fp, _ := a.subjectFingerprint(subject)

			// Another replica's erasure is under way (its mark is committed).
			putMark(t, b, fp, "r1", time.Now())
			short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			_, err := a.Tokenize(short, []TokenizeItem{{Value: "jane2@example.com", Template: "email", Subject: subject}})
			cancel()
			var ra *RetryAfterError
			if !errors.Is(err, ErrSubjectErasing) || !errors.As(err, &ra) || ra.After <= 0 {
				t.Fatalf("tokenize while the subject is erased, until its deadline: %v; want ErrSubjectErasing with a retry delay", err)
			}

			// A tokenize sees the mark and waits; the erasure (which adds its entry to the mark,
			// and removes it with the key, together with the first-format mark's entry) lets it go.
			saw := make(chan struct{})
			var once sync.Once
			ha.mu.Lock()
			ha.saw = func() { once.Do(func() { close(saw) }) }
			ha.mu.Unlock()
			got := make(chan string, 1)
			go func() {
				defer close(got)
				res, err := a.Tokenize(ctx, []TokenizeItem{{Value: "jane3@example.com", Template: "email", Subject: subject}})
				if err != nil || res[0].Err != nil {
					t.Errorf("tokenize after the erasure: %v %v", err, res)
					return
				}
				got <- res[0].Token
			}()
			within(t, saw, time.Minute, "the tokenize reading the erasing mark")
			select {
			case <-got:
				t.Fatal("a tokenize finished while its subject's erasing mark was live")
			case <-time.After(100 * time.Millisecond):
			}
			rc, err := b.EraseSubject(ctx, subject)
			if err != nil {
				t.Fatal(err)
			}
			if hasMark(t, a, fp) {
				t.Error("the erasing mark is still there after the erasure")
			}
			tok := within(t, got, time.Minute, "the waiting tokenize")
			listed := map[string]bool{}
			for _, f := range rc.Erased {
				listed[f] = true
			}
			if !listed[TokenFingerprint(DefaultDomain, first)] || listed[TokenFingerprint(DefaultDomain, tok)] {
				t.Errorf("receipt: first listed %v, the waiting tokenize's token listed %v; want true, false",
					listed[TokenFingerprint(DefaultDomain, first)], listed[TokenFingerprint(DefaultDomain, tok)])
			}
			res, err := a.Detokenize(ctx, "p", []TokenRef{{Token: first}, {Token: tok}})
			if err != nil {
				t.Fatal(err)
			}
			if !errors.Is(res[0].Err, ErrNotFound) || res[1].Err != nil {
				t.Errorf("after the erasure: first %v, the waiting tokenize's token %v; want not found, readable", res[0].Err, res[1].Err)
			}
		})
	}
}

// A mark left by a replica that died mid-erasure does not block its subject for ever: once
// older than erasingMarkTTL tokenizes ignore it (and seal under the subject's key, which was
// not erased), and the replica removes its own marks when it starts again.
func TestStaleErasingMark(t *testing.T) {
	ctx := context.Background()
	clk := newClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	st := openStore(t, filepath.Join(t.TempDir(), "v.db"), store.Options{})
	rs := openReplicas(t, []store.Store{st}, clk)
	v := rs.v[0]
	first := tokenizeOne(t, v, TokenizeItem{Value: "jane@example.com", Template: "email", Subject: "dead"})
	dead, _ := v.subjectFingerprint("dead")
	own, _ := v.subjectFingerprint("own")
	putMark(t, v, dead, "gone", clk.now())
	putMark(t, v, own, v.replica, clk.now())

	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := v.Tokenize(short, []TokenizeItem{{Value: "jane2@example.com", Template: "email", Subject: "dead"}})
	cancel()
	if !errors.Is(err, ErrSubjectErasing) {
		t.Fatalf("tokenize under a live mark: %v; want ErrSubjectErasing", err)
	}
	clk.add(erasingMarkTTL + time.Second)
	second := tokenizeOne(t, v, TokenizeItem{Value: "jane2@example.com", Template: "email", Subject: "dead"})
	res, err := v.Detokenize(ctx, "p", []TokenRef{{Token: first}, {Token: second}})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[1].Err != nil {
		t.Errorf("after a stale mark: %v, %v; want both readable (nothing was erased)", res[0].Err, res[1].Err)
	}

	// Restarted, the replica removes the marks it left, and only those.
	kek := v.kek
	v2, err := Open(ctx, Config{Store: st, KEK: kek, ReplicaID: v.replica, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if hasMark(t, v2, own) || !hasMark(t, v2, dead) {
		t.Errorf("after a restart: own mark kept %v, other replica's mark kept %v; want false, true", hasMark(t, v2, own), hasMark(t, v2, dead))
	}
}

// failKeyDelete is a store whose transactions fail to delete subject keys.
type failKeyDelete struct{ store.Store }

type failKeyDeleteTx struct{ store.Tx }

func (t failKeyDeleteTx) Delete(b store.Bucket, key []byte) error {
	if b == bucketSubjectKeys {
		return errInjected
	}
	return t.Tx.Delete(b, key)
}

func (s failKeyDelete) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(failKeyDeleteTx{tx}) })
}

// An erasure that fails takes its erasing mark back, so the subject's tokenizes do not wait
// for an erasure that is no longer running: when it fails before destroying the key, and when
// the mark's own commit has an unknown outcome (the mark may be stored; found by review: the
// erasure returned before arming the taking back). The subject's data is untouched.
func TestFailedErasureRemovesMark(t *testing.T) {
	for _, c := range []struct {
		name    string
		broken  func(store.Store) store.Store
		wantErr error
	}{
		{"key delete fails", func(st store.Store) store.Store { return failKeyDelete{st} }, errInjected},
		{"mark commit unknown", unknownMarkCommit, store.ErrCommitUnknown},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			st := openStore(t, filepath.Join(t.TempDir(), "v.db"), store.Options{})
			rs := openReplicas(t, []store.Store{st, c.broken(st)}, nil)
			a, broken := rs.v[0], rs.v[1]
			first := tokenizeOne(t, a, TokenizeItem{Value: "jane@example.com", Template: "email", Subject: "cust-9"})
			if _, err := broken.EraseSubject(ctx, "cust-9"); !errors.Is(err, c.wantErr) {
				t.Fatalf("EraseSubject = %v; want %v", err, c.wantErr)
			}
			fp, _ := a.subjectFingerprint("cust-9")
			if hasMark(t, a, fp) {
				t.Error("a failed erasure left its erasing mark")
			}
			short, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			res, err := a.Tokenize(short, []TokenizeItem{{Value: "jane2@example.com", Template: "email", Subject: "cust-9"}})
			if err != nil || res[0].Err != nil {
				t.Fatalf("tokenize after a failed erasure: %v %v", err, res)
			}
			if r, err := a.Detokenize(ctx, "p", []TokenRef{{Token: first}}); err != nil || r[0].Err != nil {
				t.Errorf("the subject's token after a failed erasure: %v %v; want readable", err, r)
			}
		})
	}
}

// unknownMarkCommit is st whose first committed write of an erasing mark reports the
// commit's outcome as unknown (PostgreSQL: the connection lost while COMMIT was in flight).
func unknownMarkCommit(st store.Store) store.Store {
	done := false
	return &storespy.Store{Store: st, Bucket: bucketSubjectErasing, Committed: func(err error) error {
		if err == nil && !done {
			done = true
			return fmt.Errorf("%w: injected", store.ErrCommitUnknown)
		}
		return err
	}}
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

// marks returns subject fp's erasing mark's entries (nil: no mark).
func marks(t *testing.T, v *Vault, fp []byte) []erasingEntry {
	t.Helper()
	var entries []erasingEntry
	if err := v.store.View(context.Background(), func(tx store.Tx) error {
		entries = nil
		if b := tx.Get(bucketSubjectErasing, fp); b != nil {
			var ok bool
			if entries, ok = parseMark(b); !ok {
				t.Errorf("the erasing mark does not parse: %s", b)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return entries
}

// A rolling upgrade: a mark in the first format (one erasure, written by the previous
// version) is honoured, and an erasure of this version takes it over: while it runs, the mark
// holds both entries and still reads, in the first format's fields, as a live mark (the
// previous version's readers honour it); when it ends, it removes both (the previous
// version's erasure cannot remove its own entry: it deletes the mark only if unchanged).
func TestErasingMarkFirstFormat(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "v.db"), store.Options{})
	h := newMarkHold(st)
	rs := openReplicas(t, []store.Store{h, st}, nil)
	e, c := rs.v[0], rs.v[1]
	first := tokenizeOne(t, c, TokenizeItem{Value: "jane@example.com", Template: "email", Subject: "upgrade"})
	fp, _ := c.subjectFingerprint("upgrade")
	putMark(t, c, fp, "old-pod", time.Now().Add(-time.Second))

	marked, release := h.arm()
	var once sync.Once
	defer once.Do(func() { close(release) })
	done := make(chan error, 1)
	go func() {
		_, err := e.EraseSubject(ctx, "upgrade")
		done <- err
	}()
	within(t, marked, time.Minute, "the erasure committing its mark")
	entries := marks(t, c, fp)
	if len(entries) != 2 || !entries[0].Legacy || entries[0].Replica != "old-pod" || entries[1].Legacy || entries[1].Replica != e.replica {
		t.Fatalf("mark while the erasure runs: %+v; want the previous version's entry (legacy) and the erasure's", entries)
	}
	// What a reader of the first format (the previous version) sees: the latest erasure's
	// start, and, the mark holding two entries, no replica (a previous version's pod removes,
	// when it restarts, the whole mark whose replica is its own: found by review).
	var old struct {
		Replica string    `json:"replica"`
		Started time.Time `json:"started"`
	}
	if err := decodeMark(c, fp, &old); err != nil {
		t.Fatal(err)
	}
	if old.Replica != "" || !old.Started.Equal(entries[1].Started) {
		t.Errorf("the first format's fields: %+v; want no replica and the running erasure's start %v", old, entries[1].Started)
	}
	once.Do(func() { close(release) })
	if err := within(t, done, time.Minute, "the erasure"); err != nil {
		t.Fatal(err)
	}
	if hasMark(t, c, fp) {
		t.Errorf("mark after the erasure: %+v; want none", marks(t, c, fp))
	}
	if res, err := c.Detokenize(ctx, "p", []TokenRef{{Token: first}}); err != nil || !errors.Is(res[0].Err, ErrNotFound) {
		t.Errorf("the subject's token after the erasure: %v %v; want not found", err, res)
	}
}

// decodeMark decodes subject fp's stored erasing mark into m.
func decodeMark(v *Vault, fp []byte, m any) error {
	return v.store.View(context.Background(), func(tx store.Tx) error {
		return json.Unmarshal(tx.Get(bucketSubjectErasing, fp), m)
	})
}

// The stale-entry rules apply to each entry of a mark: the background pass removes a stale
// entry and keeps a live one (the subject stays marked), and a replica starting again removes
// its own entries only.
func TestErasingMarkEntries(t *testing.T) {
	ctx := context.Background()
	clk := newClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	st := openStore(t, filepath.Join(t.TempDir(), "v.db"), store.Options{})
	rs := openReplicas(t, []store.Store{st}, clk)
	v := rs.v[0]
	tokenizeOne(t, v, TokenizeItem{Value: "jane@example.com", Template: "email", Subject: "two"})
	fp, _ := v.subjectFingerprint("two")
	now := clk.now()
	set := []erasingEntry{
		{Replica: "gone-pod", Started: now.Add(-erasingMarkTTL - time.Minute), ID: "stale"},
		{Replica: "fast-pod", Started: now.Add(time.Hour), ID: "future"},
		{Replica: v.replica, Started: now.Add(-time.Second), ID: "own"},
		{Replica: "busy-pod", Started: now.Add(-time.Second), ID: "live"},
	}
	if err := v.store.Update(ctx, func(tx store.Tx) error { return writeMark(tx, fp, set, now) }); err != nil {
		t.Fatal(err)
	}
	n, err := v.dropStaleErasingMarks(ctx)
	if err != nil || n != 2 {
		t.Fatalf("dropStaleErasingMarks = %d, %v; want 2 (the old and the future-dated entry)", n, err)
	}
	if got := marks(t, v, fp); len(got) != 2 || got[0].ID != "own" || got[1].ID != "live" {
		t.Fatalf("entries after the background pass: %+v; want own and live", got)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = v.Tokenize(short, []TokenizeItem{{Value: "jane2@example.com", Template: "email", Subject: "two"}})
	cancel()
	if !errors.Is(err, ErrSubjectErasing) {
		t.Errorf("tokenize under a mark with live entries: %v; want ErrSubjectErasing", err)
	}
	// Restarted, the replica removes its own entry; the other replica's stays.
	v2, err := Open(ctx, Config{Store: st, KEK: v.kek, ReplicaID: v.replica, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if got := marks(t, v2, fp); len(got) != 1 || got[0].ID != "live" {
		t.Errorf("entries after a restart: %+v; want only the other replica's", got)
	}
}

// Erasures of one subject started at once all succeed (on PostgreSQL their entries are added
// to and removed from one mark by transactions that conflict, and run again) and leave no mark.
func TestConcurrentErasuresLeaveNoMark(t *testing.T) {
	for _, name := range []string{"bolt", "postgres"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := markBackends[name](t)
			rs := openReplicas(t, []store.Store{st, st, st}, nil)
			tokenizeOne(t, rs.v[0], TokenizeItem{Value: "jane@example.com", Template: "email", Subject: "many"})
			fp, _ := rs.v[0].subjectFingerprint("many")
			var wg sync.WaitGroup
			for i := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := rs.v[i%3].EraseSubject(ctx, "many"); err != nil {
						t.Errorf("erasure %d: %v", i, err)
					}
				}()
			}
			wg.Wait()
			if got := marks(t, rs.v[0], fp); got != nil {
				t.Errorf("mark after the erasures: %+v; want none", got)
			}
		})
	}
}

// An erasure that adds its entry to a subject's erasing mark drops the entries of replicas
// known to be dead: their erasures died with them. Without this, an erasure run again at once
// after its replica died (what the privacy officer does on the error) left the dead entry
// behind, and the subject's tokenizes waited for it until it was stale, 2 minutes (found by
// the helper that made marks hold a set of entries). Known dead: the heartbeat row expired
// more than the clock skew allowed for marks ago, or a later process under the same id wrote
// it. Not dead (found by review of the first version, which dropped them): a row that expired
// only seconds ago (a late heartbeat, or this reader's clock ahead), the row of the entry's own
// process whose first heartbeat came after the erasure began, the row of an earlier process,
// a live replica's, no row at all.
func TestDeadReplicasErasingEntryDropped(t *testing.T) {
	for _, name := range []string{"bolt", "postgres"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clk := newClock(time.Now().UTC().Truncate(time.Second))
			st := markBackends[name](t)
			rs := openReplicas(t, []store.Store{st}, clk)
			v := rs.v[0]
			now := clk.now()
			began := now.Add(-30 * time.Second) // each planted entry's erasure began then
			for _, c := range []struct {
				name       string
				row        *ReplicaInfo // the replica's heartbeat row; nil: none
				entryIncar string
				dropped    bool
			}{
				{"expired", &ReplicaInfo{Started: now.Add(-time.Hour), LiveUntil: now.Add(-time.Minute), Incarnation: "a"}, "a", true},
				{"restarted", &ReplicaInfo{Started: now.Add(-time.Second), LiveUntil: now.Add(time.Minute), Incarnation: "b2"}, "b1", true},
				{"expired-lately", &ReplicaInfo{Started: now.Add(-time.Hour), LiveUntil: now.Add(-10 * time.Second), Incarnation: "c"}, "c", false},
				{"first-beat-after", &ReplicaInfo{Started: now.Add(-time.Second), LiveUntil: now.Add(time.Minute), Incarnation: "d"}, "d", false},
				{"earlier-process-row", &ReplicaInfo{Started: now.Add(-time.Hour), LiveUntil: now.Add(time.Minute), Incarnation: "e1"}, "e2", false},
				{"older-version-row", &ReplicaInfo{Started: now.Add(-time.Second), LiveUntil: now.Add(time.Minute)}, "f", false},
				{"alive", &ReplicaInfo{Started: now.Add(-time.Hour), LiveUntil: now.Add(time.Minute), Incarnation: "g"}, "g", false},
				{"unknown", nil, "h", false},
			} {
				if c.row != nil {
					r := *c.row
					r.ID, r.LastSeen = c.name, r.Started
					if err := v.store.Update(ctx, func(tx store.Tx) error { return putJSON(tx, bucketReplicas, []byte(c.name), r) }); err != nil {
						t.Fatal(err)
					}
				}
				subject := "subject-" + c.name
				tokenizeOne(t, v, TokenizeItem{Value: c.name + "@example.com", Template: "email", Subject: subject})
				fp, _ := v.subjectFingerprint(subject)
				// An entry of this version (a first-format mark is a previous version's, which the
				// next erasure removes anyway), live by its age.
				e := erasingEntry{Replica: c.name, Started: began, ID: "e-" + c.name, Incarnation: c.entryIncar}
				if err := v.store.Update(ctx, func(tx store.Tx) error { return writeMark(tx, fp, []erasingEntry{e}, now) }); err != nil {
					t.Fatal(err)
				}
				if _, err := v.EraseSubject(ctx, subject); err != nil {
					t.Fatalf("%s: erase: %v", c.name, err)
				}
				if hasMark(t, v, fp) == c.dropped {
					t.Errorf("%s: the entry after another erasure of its subject: dropped %v, want %v", c.name, !hasMark(t, v, fp), c.dropped)
				}
				short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				_, err := v.Tokenize(short, []TokenizeItem{{Value: "again@example.com", Template: "email", Subject: subject}})
				cancel()
				if c.dropped && err != nil || !c.dropped && !errors.Is(err, ErrSubjectErasing) {
					t.Errorf("%s: tokenize after the erasure (entry dropped %v): %v", c.name, c.dropped, err)
				}
			}
		})
	}
}

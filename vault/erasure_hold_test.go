package vault

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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

package pgstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenvault/tokenvault/internal/testpg"
	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/store/pgstore"
)

const bkt store.Bucket = "cluster"

// openTwo opens two Postgres on one fresh database, at the same time (so
// that their schema creations race).
func openTwo(t *testing.T, c *testpg.Cluster, db string) [2]*pgstore.Postgres {
	url := c.CreateDB(t, db)
	var two [2]*pgstore.Postgres
	var errs [2]error
	var wg sync.WaitGroup
	for i := range two {
		wg.Go(func() { two[i], errs[i] = pgstore.Open(t.Context(), url, pgstore.Options{}) })
	}
	wg.Wait()
	for i, s := range two {
		if s != nil {
			t.Cleanup(func() { s.Close() })
		}
		if errs[i] != nil {
			t.Fatalf("concurrent Open #%d: %v", i, errs[i])
		}
	}
	return two
}

// TestTwoInstancesCreateOnly races create-only inserts (Get, then Put if
// absent) of the same keys from goroutines on two Postgres sharing one
// database: every key has exactly one winner, whose value is never
// overwritten.
func TestTwoInstancesCreateOnly(t *testing.T) {
	c := testpg.Start(t)
	two := openTwo(t, c, "create_only")
	const keys, perInstance = 40, 4
	var mu sync.Mutex
	winners := make(map[string][]string) // key -> who wrote it
	var wg sync.WaitGroup
	for i, s := range two {
		for g := range perInstance {
			wg.Go(func() {
				who := fmt.Sprintf("instance %d goroutine %d", i, g)
				for k := range keys {
					key := fmt.Sprintf("k%03d", k)
					var won bool
					err := s.Update(t.Context(), func(tx store.Tx) error {
						won = false
						if tx.Get(bkt, []byte(key)) != nil {
							return nil
						}
						won = true
						return tx.Put(bkt, []byte(key), []byte(who))
					})
					if err != nil {
						t.Errorf("%s: Update %s: %v", who, key, err)
						return
					}
					if won {
						mu.Lock()
						winners[key] = append(winners[key], who)
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	for i, s := range two {
		err := s.View(t.Context(), func(tx store.Tx) error {
			for k := range keys {
				key := fmt.Sprintf("k%03d", k)
				w := winners[key]
				if len(w) != 1 {
					t.Errorf("key %s: %d winners %q, want exactly 1", key, len(w), w)
					continue
				}
				if got := tx.Get(bkt, []byte(key)); string(got) != w[0] {
					t.Errorf("instance %d: key %s = %q, want the winner's %q", i, key, got, w[0])
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestTwoInstancesSequence takes NextSequence values of one bucket from
// goroutines on two Postgres sharing one database: no value is handed out
// twice, each goroutine sees increasing values, and the committed values are
// exactly 1..n.
func TestTwoInstancesSequence(t *testing.T) {
	c := testpg.Start(t)
	two := openTwo(t, c, "sequence")
	const perInstance, each = 4, 40
	var mu sync.Mutex
	var all []uint64
	var wg sync.WaitGroup
	for _, s := range two {
		for range perInstance {
			wg.Go(func() {
				var mine []uint64
				for range each {
					var n uint64
					err := s.Update(t.Context(), func(tx store.Tx) error {
						var err error
						n, err = tx.NextSequence(bkt)
						return err
					})
					if err != nil {
						t.Errorf("Update: %v", err)
						return
					}
					if len(mine) > 0 && n <= mine[len(mine)-1] {
						t.Errorf("NextSequence = %d after %d, want increasing", n, mine[len(mine)-1])
					}
					mine = append(mine, n)
				}
				mu.Lock()
				all = append(all, mine...)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	slices.Sort(all)
	for i, n := range all {
		if n != uint64(i+1) {
			t.Fatalf("sorted sequence values: #%d = %d, want %d (duplicate or gap)", i, n, i+1)
		}
	}
	if len(all) != 2*perInstance*each {
		t.Errorf("%d values, want %d", len(all), 2*perInstance*each)
	}
}

// TestOutage stops PostgreSQL (immediate: like a crash) under a write
// load: calls fail with errors within their deadline while it is down, the
// same Postgres serves again once it is back, every Update that returned nil
// is there, and every Update that failed with a known outcome is not.
func TestOutage(t *testing.T) {
	c := testpg.Start(t)
	s := open(t, c.CreateDB(t, "outage"), pgstore.Options{})
	type result struct {
		key string
		err error
	}
	var results []result
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := fmt.Sprintf("w%06d", i)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			err := s.Update(ctx, func(tx store.Tx) error { return tx.Put(bkt, []byte(key), []byte("v")) })
			cancel()
			results = append(results, result{key, err})
			if err != nil {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	c.Stop(t)

	for _, r := range callsWithin(t, s, time.Second) {
		if r.err == nil || r.late {
			t.Errorf("%s while PostgreSQL is down: %v after %v; want an error within its deadline", r.name, r.err, r.elapsed)
		} else {
			t.Logf("%s while down: %v (after %v)", r.name, r.err, r.elapsed.Round(time.Millisecond))
		}
		if !errors.Is(r.err, store.ErrUnavailable) {
			t.Errorf("%s while PostgreSQL is down: %v; want an error wrapping %v", r.name, r.err, store.ErrUnavailable)
		}
	}
	pctx, pcancel := context.WithTimeout(t.Context(), 5*time.Second)
	if err := s.Ping(pctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping while PostgreSQL is down: %v; want an error wrapping %v", err, store.ErrUnavailable)
	}
	pcancel()

	c.Start(t)
	recovered := false
	for attempt := 1; attempt <= 5 && !recovered; attempt++ {
		err := s.View(t.Context(), func(tx store.Tx) error { tx.Get(bkt, []byte("k")); return nil })
		if err == nil {
			t.Logf("View succeeded on attempt %d after the restart", attempt)
			recovered = true
		} else {
			t.Logf("View attempt %d after the restart: %v", attempt, err)
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !recovered {
		t.Fatal("the store did not recover after PostgreSQL restarted")
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping after the restart: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-done

	var ok, failed, unknown int
	err := s.View(t.Context(), func(tx store.Tx) error {
		for _, r := range results {
			present := tx.Get(bkt, []byte(r.key)) != nil
			if r.err != nil && strings.Contains(r.err.Error(), r.key) {
				t.Errorf("%s: the error quotes the key: %v", r.key, r.err)
			}
			switch {
			case r.err == nil:
				ok++
				if !present {
					t.Errorf("%s: Update returned nil but the write is lost", r.key)
				}
			case errors.Is(r.err, store.ErrCommitUnknown):
				unknown++
			default:
				failed++
				if !errors.Is(r.err, store.ErrUnavailable) && !errors.Is(r.err, context.DeadlineExceeded) {
					t.Errorf("%s: failed with %v; want an error wrapping %v (or the deadline)", r.key, r.err, store.ErrUnavailable)
				}
				if present {
					t.Errorf("%s: Update failed (%v) but the write is there", r.key, r.err)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("writes: %d committed, %d failed, %d with unknown outcome", ok, failed, unknown)
	if failed == 0 {
		t.Error("no write failed while PostgreSQL was down")
	}
}

// TestDeadlineWhileUnreachable freezes the network between the store and
// PostgreSQL (a proxy that stops forwarding): calls end at their deadline
// with context.DeadlineExceeded, not later, and the store serves again once
// the network is back.
func TestDeadlineWhileUnreachable(t *testing.T) {
	c := testpg.Start(t)
	c.CreateDB(t, "frozen")
	p := c.Proxy(t)
	s := open(t, p.URL("frozen"), pgstore.Options{})
	putKV(t, s, "k", "v")

	p.Freeze()
	for _, r := range callsWithin(t, s, 500*time.Millisecond) {
		if !errors.Is(r.err, context.DeadlineExceeded) || r.late {
			t.Errorf("%s while unreachable: %v after %v; want %v within its deadline", r.name, r.err, r.elapsed, context.DeadlineExceeded)
		}
	}
	p.Thaw()
	putKV(t, s, "k", "after")
	if got := getKV(t, s, "k"); got != "after" {
		t.Errorf("after the network came back: k = %q, want %q", got, "after")
	}
}

// TestCommitUnknownDeadline ends an Update's deadline while its COMMIT is
// on a frozen network: the outcome is unknown, and the error says so.
func TestCommitUnknownDeadline(t *testing.T) {
	c := testpg.Start(t)
	c.CreateDB(t, "commit_deadline")
	p := c.Proxy(t)
	s := open(t, p.URL("commit_deadline"), pgstore.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	frozen := false
	err := s.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.NextSequence(bkt); err != nil { // runs now: nothing left to send but COMMIT
			return err
		}
		if !frozen {
			frozen = true
			p.Freeze()
		}
		return nil
	})
	if frozen {
		p.Thaw()
	}
	if !errors.Is(err, store.ErrCommitUnknown) {
		t.Fatalf("Update whose COMMIT got no answer: %v, want an error wrapping %v", err, store.ErrCommitUnknown)
	}
	t.Logf("error: %v", err)
}

// TestCommitUnknownConnectionLost kills the server process of an Update
// while its COMMIT waits for a synchronous standby that does not exist:
// the transaction is committed locally but never acknowledged. Update must
// report an unknown outcome (not a failure), and indeed the write is there.
func TestCommitUnknownConnectionLost(t *testing.T) {
	c := testpg.Start(t)
	url := c.CreateDB(t, "commit_lost")
	s := open(t, url, pgstore.Options{})
	c.Exec(t, "postgres", `ALTER SYSTEM SET synchronous_standby_names = 'nobody'`)
	c.Exec(t, "postgres", `SELECT pg_reload_conf()`)
	defer func() {
		c.Exec(t, "postgres", `ALTER SYSTEM RESET synchronous_standby_names`)
		c.Exec(t, "postgres", `SELECT pg_reload_conf()`)
	}()
	time.Sleep(100 * time.Millisecond) // let backends pick up the reload

	errc := make(chan error, 1)
	go func() {
		errc <- s.Update(t.Context(), func(tx store.Tx) error { return tx.Put(bkt, []byte("k"), []byte("v")) })
	}()
	admin, err := pgx.Connect(t.Context(), c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	var pid int
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		err := admin.QueryRow(t.Context(), `SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'`).Scan(&pid)
		if err == nil {
			break
		}
		if !errors.Is(err, pgx.ErrNoRows) || time.Since(start) > 10*time.Second {
			t.Fatalf("waiting for a COMMIT blocked on synchronous replication: %v", err)
		}
	}
	if _, err := admin.Exec(t.Context(), `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	err = <-errc
	if !errors.Is(err, store.ErrCommitUnknown) {
		t.Fatalf("Update whose connection was lost during COMMIT: %v, want an error wrapping %v", err, store.ErrCommitUnknown)
	}
	t.Logf("error: %v", err)
	if got := getKV(t, s, "k"); got != "v" {
		t.Errorf("after the lost COMMIT: k = %q; want %q (committed locally)", got, "v")
	}
}

type callResult struct {
	name    string
	err     error
	elapsed time.Duration
	late    bool // returned more than a second after its deadline
}

// callsWithin runs a View (a Get) and an Update (a Put) on s, each with the
// given deadline, and reports how they ended.
func callsWithin(t *testing.T, s store.Store, deadline time.Duration) []callResult {
	t.Helper()
	var out []callResult
	for _, call := range []struct {
		name string
		run  func(ctx context.Context) error
	}{
		{"View", func(ctx context.Context) error {
			return s.View(ctx, func(tx store.Tx) error { tx.Get(bkt, []byte("k")); return nil })
		}},
		{"Update", func(ctx context.Context) error {
			return s.Update(ctx, func(tx store.Tx) error { return tx.Put(bkt, []byte("k"), []byte("w")) })
		}},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), deadline)
		start := time.Now()
		err := call.run(ctx)
		cancel()
		elapsed := time.Since(start)
		out = append(out, callResult{call.name, err, elapsed, elapsed > deadline+time.Second})
	}
	return out
}

func putKV(t *testing.T, s store.Store, k, v string) {
	t.Helper()
	if err := s.Update(t.Context(), func(tx store.Tx) error { return tx.Put(bkt, []byte(k), []byte(v)) }); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func getKV(t *testing.T, s store.Store, k string) string {
	t.Helper()
	var v []byte
	if err := s.View(t.Context(), func(tx store.Tx) error { v = bytes.Clone(tx.Get(bkt, []byte(k))); return nil }); err != nil {
		t.Fatalf("View: %v", err)
	}
	return string(v)
}

package pgstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tokenvault/tokenvault/internal/testpg"
	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/store/pgstore"
)

// TestRoundTripsOfTransactions counts what a transaction costs: BEGIN travels with the first
// statement, and the writes go with COMMIT once the transaction has begun, so a View of one
// read costs two round trips (BEGIN and SELECT, then ROLLBACK), an Update of writes only two
// (BEGIN and the writes, then COMMIT), one that reads then writes two (BEGIN and the read,
// then the writes and COMMIT), a transaction that sends nothing none, and ReadKey one.
func TestRoundTripsOfTransactions(t *testing.T) {
	c := testpg.Start(t)
	s := open(t, c.CreateDB(t, "trips"), pgstore.Options{MaxConns: 1})
	ctx := t.Context()
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.Put(bkt, []byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err) // warm up: the connection is made and its statements prepared
	}
	cost := func(name string, want uint64, fn func() error) {
		t.Helper()
		before := s.RoundTrips()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := s.RoundTrips() - before; got != want {
			t.Errorf("%s: %d round trips, want %d", name, got, want)
		}
	}
	for range 2 {
		cost("View with one Get", 2, func() error {
			return s.View(ctx, func(tx store.Tx) error {
				if string(tx.Get(bkt, []byte("k"))) != "v" {
					return errors.New("wrong value")
				}
				return nil
			})
		})
		cost("Update with two Puts", 2, func() error {
			return s.Update(ctx, func(tx store.Tx) error {
				if err := tx.Put(bkt, []byte("a"), []byte("1")); err != nil {
					return err
				}
				return tx.Put(bkt, []byte("b"), []byte("2"))
			})
		})
		cost("Update reading its own write", 2, func() error {
			return s.Update(ctx, func(tx store.Tx) error {
				if err := tx.Put(bkt, []byte("c"), []byte("3")); err != nil {
					return err
				}
				if string(tx.Get(bkt, []byte("c"))) != "3" {
					return errors.New("own write not read")
				}
				return nil
			})
		})
		cost("Update with a Get then a Put", 2, func() error { // BEGIN and the Get, then the Put and COMMIT
			return s.Update(ctx, func(tx store.Tx) error {
				tx.Get(bkt, []byte("a"))
				return tx.Put(bkt, []byte("a"), []byte("1"))
			})
		})
		cost("empty View", 0, func() error { return s.View(ctx, func(store.Tx) error { return nil }) })
		cost("empty Update", 0, func() error { return s.Update(ctx, func(store.Tx) error { return nil }) })
		cost("ReadKey", 1, func() error {
			v, err := s.ReadKey(ctx, bkt, []byte("k"))
			if err == nil && string(v) != "v" {
				err = errors.New("wrong value")
			}
			return err
		})
	}
}

// TestReadKey reads as Get does: nil for an absent key or bucket, a non-nil empty slice for
// an empty value, an invalid key as absent; ErrClosed after Close.
func TestReadKey(t *testing.T) {
	c := testpg.Start(t)
	s := open(t, c.CreateDB(t, "readkey"), pgstore.Options{})
	ctx := t.Context()
	if err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.Put(bkt, []byte("k"), []byte("v")); err != nil {
			return err
		}
		return tx.Put(bkt, []byte("empty"), nil)
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		b    store.Bucket
		key  string
		want []byte
	}{
		{bkt, "k", []byte("v")},
		{bkt, "empty", []byte{}},
		{bkt, "absent", nil},
		{"nobucket", "k", nil},
		{bkt, "", nil},
		{"bad bucket!", "k", nil},
	} {
		got, err := s.ReadKey(ctx, tc.b, []byte(tc.key))
		if err != nil {
			t.Errorf("ReadKey(%q, %q): %v", tc.b, tc.key, err)
		}
		if (got == nil) != (tc.want == nil) || string(got) != string(tc.want) {
			t.Errorf("ReadKey(%q, %q) = %q (nil: %v), want %q (nil: %v)", tc.b, tc.key, got, got == nil, tc.want, tc.want == nil)
		}
	}
	s.Close()
	if _, err := s.ReadKey(ctx, bkt, []byte("k")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("ReadKey after Close: %v, want ErrClosed", err)
	}
}

// TestDuplicateSequenceRetried has a bucket's sequence created by another transaction while
// an Update's NextSequence creates it too: pgstore checks that the sequence does not exist,
// then creates it, so the Update's CREATE waits for the other transaction and then fails
// with a unique violation on the catalog (what PostgreSQL 15 answers here), or with
// duplicate_table (42P07) when the other commits between the check and the insert (a window
// too narrow to hit on purpose: TestRetryable covers the code). Update must run its function
// again (which then finds the sequence) instead of failing.
func TestDuplicateSequenceRetried(t *testing.T) {
	c := testpg.Start(t)
	url := c.CreateDB(t, "dupseq")
	s := open(t, url, pgstore.Options{})
	ctx := t.Context()
	const b store.Bucket = "dup-seq"
	sum := sha256.Sum256([]byte(b))
	seq := "tokenvault_seq_" + hex.EncodeToString(sum[:8]) // pgstore's name for b's sequence

	other, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	otx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := otx.Exec(ctx, `CREATE SEQUENCE `+seq); err != nil {
		t.Fatal(err)
	}
	type result struct {
		n    uint64
		runs int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.err = s.Update(ctx, func(tx store.Tx) error {
			r.runs++
			var err error
			r.n, err = tx.NextSequence(b)
			return err
		})
		done <- r
	}()
	// Let the Update reach its CREATE SEQUENCE and wait on the other transaction's catalog
	// rows; if it has not yet, it finds the sequence committed and needs no re-run (then the
	// test shows less, but nothing false).
	watcher, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(context.Background())
	waitForLockWait(t, watcher)
	if err := otx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(time.Minute):
		t.Fatal("Update did not return")
	}
	if r.err != nil {
		t.Fatalf("Update racing another creator of the sequence: %v", r.err)
	}
	if r.n != 1 {
		t.Errorf("NextSequence = %d, want 1", r.n)
	}
	if r.runs < 2 {
		t.Errorf("the function ran %d time(s): the Update never met the other creator", r.runs)
	}
	t.Logf("function ran %d times", r.runs)
}

// waitForLockWait waits (up to a minute) until some other session of the database waits for
// a lock. conn must not be in a transaction (pg_stat_activity is read once per transaction).
func waitForLockWait(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var n int
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no session waited for a lock within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBrokenPooledConnection ends the store's pooled connections from the server side
// (pg_terminate_backend, as a restart does) and uses the store at once, before the pool's
// idle ping would notice: the first exchange of each transaction (BEGIN and its first
// statement) is sent again on a new connection, so Views and Updates succeed, reads see the
// data and writes land once.
func TestBrokenPooledConnection(t *testing.T) {
	c := testpg.Start(t)
	url := c.CreateDB(t, "broken")
	s := open(t, url, pgstore.Options{MaxConns: 2})
	ctx := t.Context()
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	terminate := func() {
		t.Helper()
		if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()`); err != nil {
			t.Fatal(err)
		}
		// Wait until they are gone, so the store's next use meets a closed connection.
		deadline := time.Now().Add(time.Minute)
		for {
			var n int
			if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("terminated backends still there after a minute")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for i := range 3 {
		key := []byte{'k', byte('0' + i)}
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.Put(bkt, key, []byte("v")) }); err != nil {
			t.Fatal(err)
		}
		terminate()
		if err := s.View(ctx, func(tx store.Tx) error {
			if got := tx.Get(bkt, key); string(got) != "v" {
				return errors.New("value not read")
			}
			return nil
		}); err != nil {
			t.Fatalf("View on a broken pooled connection: %v", err)
		}
		terminate()
		runs := 0
		if err := s.Update(ctx, func(tx store.Tx) error {
			runs++
			n, err := tx.NextSequence(bkt)
			if err != nil {
				return err
			}
			return tx.Put(bkt, []byte("seq"), []byte{byte(n)})
		}); err != nil {
			t.Fatalf("Update on a broken pooled connection: %v", err)
		}
		if runs != 1 {
			t.Errorf("the function ran %d times; the first exchange is resent, not the function", runs)
		}
		terminate()
		if v, err := s.ReadKey(ctx, bkt, []byte("seq")); err != nil || len(v) != 1 || v[0] != byte(i+1) {
			t.Fatalf("ReadKey on a broken pooled connection = %v, %v; want sequence %d", v, err, i+1)
		}
	}
}

// TestWriteRefusedWithCommit has a write that the server refuses sent with COMMIT (the
// transaction had begun with a read): COMMIT is skipped, nothing of the transaction is kept,
// Update runs the function again (a unique violation), and the store serves on.
func TestWriteRefusedWithCommit(t *testing.T) {
	c := testpg.Start(t)
	s := open(t, c.CreateDB(t, "refused"), pgstore.Options{MaxConns: 1})
	ctx := t.Context()
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.Put(bkt, []byte("x"), []byte("first")) }); err != nil {
		t.Fatal(err)
	}
	runs := 0
	err := s.Update(ctx, func(tx store.Tx) error {
		runs++
		tx.Get(bkt, []byte("other")) // the transaction begins here
		if runs == 1 {
			// Not read, so Insert cannot know: the INSERT sent with COMMIT fails.
			if err := tx.Put(bkt, []byte("y"), []byte("lost")); err != nil {
				return err
			}
			return tx.Insert(bkt, []byte("x"), []byte("second"))
		}
		if string(tx.Get(bkt, []byte("x"))) != "first" {
			return errors.New("x is not the first value")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Errorf("the function ran %d times, want 2", runs)
	}
	for key, want := range map[string]string{"x": "first", "y": ""} {
		v, err := s.ReadKey(ctx, bkt, []byte(key))
		if err != nil || string(v) != want || (want == "") != (v == nil) {
			t.Errorf("%s = %q, %v; want %q", key, v, err, want)
		}
	}
}

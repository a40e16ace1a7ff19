package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testpg"
	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/store/pgstore"
	"github.com/tokenvault/tokenvault/vault/store/storetest"
)

// open opens a Postgres on url, closed at the end of t.
func open(t testing.TB, url string, opts pgstore.Options) *pgstore.Postgres {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := pgstore.Open(ctx, url, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// TestConformance runs the store conformance suite on PostgreSQL: one
// cluster, a database per subtest.
func TestConformance(t *testing.T) {
	c := testpg.Start(t)
	var mu sync.Mutex
	urls := make(map[string]string) // test name -> database URL
	storetest.RunConformance(t, func(t *testing.T) store.Store {
		mu.Lock()
		url, ok := urls[t.Name()]
		if !ok {
			url = c.CreateDB(t, fmt.Sprintf("conformance_%d", len(urls)))
			urls[t.Name()] = url
		}
		mu.Unlock()
		return open(t, url, pgstore.Options{})
	})
}

// TestSchemaVersion checks that Open records schema version 1, opens a
// database it migrated before, and refuses one migrated by a newer binary.
func TestSchemaVersion(t *testing.T) {
	c := testpg.Start(t)
	url := c.CreateDB(t, "schema")
	s := open(t, url, pgstore.Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, url, pgstore.Options{}) // again: already at version 1
	c.Exec(t, "schema", `UPDATE tokenvault_schema_version SET version = $1`, pgstore.SchemaVersion+1)
	_, err := pgstore.Open(t.Context(), url, pgstore.Options{})
	if !errors.Is(err, pgstore.ErrSchemaTooNew) {
		t.Errorf("Open of a database with a newer schema: %v, want %v", err, pgstore.ErrSchemaTooNew)
	}
}

// TestSequenceContinuesAndAdvances checks that a bucket's sequence continues
// from the counter row the first schema kept, and that AdvanceSequence moves
// it forward only.
func TestSequenceContinuesAndAdvances(t *testing.T) {
	c := testpg.Start(t)
	url := c.CreateDB(t, "seq")
	s := open(t, url, pgstore.Options{})
	c.Exec(t, "seq", `INSERT INTO tokenvault_sequence (bucket, value) VALUES ('legacy', 41)`)
	next := func(b store.Bucket) uint64 {
		var n uint64
		if err := s.Update(t.Context(), func(tx store.Tx) error {
			var err error
			n, err = tx.NextSequence(b)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := next("legacy"); n != 42 {
		t.Errorf("first NextSequence after the counter row's 41 = %d, want 42", n)
	}
	advance := func(b store.Bucket, v uint64) {
		if err := s.Update(t.Context(), func(tx store.Tx) error {
			return tx.AdvanceSequence(b, v)
		}); err != nil {
			t.Fatal(err)
		}
	}
	advance("legacy", 100)
	if n := next("legacy"); n != 101 {
		t.Errorf("NextSequence after AdvanceSequence(100) = %d, want 101", n)
	}
	advance("legacy", 50)
	if n := next("legacy"); n != 102 {
		t.Errorf("NextSequence after AdvanceSequence(50) = %d, want 102 (never back)", n)
	}
	advance("fresh", 7)
	if n := next("fresh"); n != 8 {
		t.Errorf("NextSequence of a new bucket advanced to 7 = %d, want 8", n)
	}
}

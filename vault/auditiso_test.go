package vault

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testpg"
	"github.com/tokenvault/tokenvault/vault/store/pgstore"
)

// TestLoneAuditEventsDoNotConflict: on PostgreSQL, a replica's concurrent audit events written
// on their own (a detokenize's, a denial's) each take their own lane and never make one
// another re-run: counted in round trips (pgstore.RoundTrips), concurrent events cost exactly
// what the same events cost one at a time. Under SERIALIZABLE they did not: the lanes' heads
// share an index page, and PostgreSQL's page-grained read tracking aborted most of them.
func TestLoneAuditEventsDoNotConflict(t *testing.T) {
	c := testpg.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := pgstore.Open(ctx, c.CreateDB(t, "loneaudit"), pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	v, err := Open(ctx, Config{Store: st, KEK: newKEK(t), ReplicaID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	ev := AuditEvent{Method: "Detokenize", Outcome: OutcomeAllowed, Purpose: "p", Items: 1, Allowed: 1}
	if err := v.Audit(ctx, ev); err != nil { // the first creates the trail's sequence
		t.Fatal(err)
	}
	before := st.RoundTrips()
	if err := v.Audit(ctx, ev); err != nil {
		t.Fatal(err)
	}
	one := st.RoundTrips() - before
	const workers, each = 16, 8
	burst := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, workers*n)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range n {
					errs <- v.Audit(ctx, ev)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	burst(2) // opens the pool's connections, which prepare their statements, and the lanes
	before = st.RoundTrips()
	burst(each)
	// Slack for a ping per pooled connection (pgxpool pings one idle for over a second).
	got, want := st.RoundTrips()-before, uint64(workers*each)*one
	if got < want || got > want+pgstore.DefaultMaxConns {
		t.Errorf("%d concurrent audit events took %d round trips, want %d (%d each, as one alone) plus at most %d pings: events were re-run",
			workers*each, got, want, one, pgstore.DefaultMaxConns)
	}
}

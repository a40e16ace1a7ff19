package vault

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testpg"
	"github.com/tokenvault/tokenvault/vault/store"
)

// BenchmarkAuditReplicasPostgres measures audited writes (Audit: the event alone, its own
// transaction) from three vaults, each over its own pgstore pool on one PostgreSQL database,
// four callers each: "shared" puts every vault on the one chain (ReplicaID "": one head row
// that every write reads and rewrites, as before replica chains), "per-replica" gives each
// its own chain. It reports events/s and the serialization re-runs per event.
func BenchmarkAuditReplicasPostgres(b *testing.B) {
	c := testpg.Start(b)
	for i, mode := range []string{"shared", "per-replica"} {
		b.Run(mode, func(b *testing.B) {
			url := c.CreateDB(b, fmt.Sprintf("bench_%d_%d", i, time.Now().UnixNano()))
			kek := newKEK(b)
			var runs atomic.Int64 // Update function runs (attempts)
			var vaults []*Vault
			for r := range 3 {
				st := openPG(b, url)
				id := ""
				if mode == "per-replica" {
					id = fmt.Sprintf("r%d", r)
				}
				v, err := Open(context.Background(), Config{Store: countingStore{st, &runs}, KEK: kek, ReplicaID: id})
				if err != nil {
					b.Fatal(err)
				}
				vaults = append(vaults, v)
			}
			var next atomic.Int64
			runs.Store(0)
			b.ResetTimer()
			var wg sync.WaitGroup
			for _, v := range vaults {
				for range 4 {
					wg.Go(func() {
						for next.Add(1) <= int64(b.N) {
							if err := v.Audit(context.Background(), AuditEvent{Method: "/bench", Outcome: OutcomeAllowed}); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(runs.Load()-int64(b.N))/float64(b.N), "reruns/event")
		})
	}
}

// countingStore counts the runs of Update functions (a re-run after a serialization failure
// counts again).
type countingStore struct {
	store.Store
	runs *atomic.Int64
}

func (s countingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { s.runs.Add(1); return fn(tx) })
}

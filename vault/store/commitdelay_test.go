package store_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// A burst of callers makes the committer wait CommitDelay after its groups, but not once the
// burst is over: a lone Update after idle time is committed at once (a review found the
// first lone Update after a burst, however much later, waiting the whole delay).
func TestCommitDelayNotAfterIdle(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{CommitDelay: store.MaxCommitDelay})
	for attempt := 0; attempt < 20; attempt++ {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for c := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_ = s.Update(t.Context(), func(tx store.Tx) error {
					return tx.Put("b", fmt.Appendf(nil, "k%d-%d", attempt, c), []byte("v"))
				})
			}()
		}
		close(start)
		wg.Wait()
		time.Sleep(300 * time.Millisecond) // idle: no caller left
		before := s.Stats().Waits
		t0 := time.Now()
		if err := s.Update(t.Context(), func(tx store.Tx) error { return tx.Put("b", []byte("lone"), []byte("v")) }); err != nil {
			t.Fatal(err)
		}
		el := time.Since(t0)
		if s.Stats().Waits > before {
			t.Fatalf("a lone Update %v after the burst waited CommitDelay (took %v)", 300*time.Millisecond, el)
		}
	}
}

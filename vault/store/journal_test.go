package store_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// putN writes keys k000.. with values v000.. in one Update.
func putN(t *testing.T, s store.Store, b store.Bucket, from, to int) {
	t.Helper()
	if err := s.Update(t.Context(), func(tx store.Tx) error {
		for i := from; i < to; i++ {
			if err := tx.Put(b, fmt.Appendf(nil, "k%05d", i), fmt.Appendf(nil, "v%05d", i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func countKeys(t *testing.T, s store.Store, b store.Bucket) int {
	t.Helper()
	n := 0
	if err := s.View(t.Context(), func(tx store.Tx) error {
		return tx.Scan(b, nil, nil, func(k, v []byte) error {
			if want := "v" + string(k[1:]); string(v) != want {
				return fmt.Errorf("%s = %s, want %s", k, v, want)
			}
			n++
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// Close merges the journal and removes it: the bbolt file alone holds the data.
func TestJournalCloseMerges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	putN(t, s, "b", 0, 500)
	if len(store.JournalFiles(path)) == 0 {
		t.Fatal("no journal file while the store is open")
	}
	if st := s.Stats(); st.Overlay <= 0 {
		t.Errorf("Stats.Overlay = %d after writes, want > 0", st.Overlay)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if files := store.JournalFiles(path); len(files) != 0 {
		t.Errorf("journal files after Close: %q", files)
	}
	// The plain path reads it all from the B-tree.
	s2 := mustOpen(t, path, store.Options{NoJournal: true})
	if n := countKeys(t, s2, "b"); n != 500 {
		t.Errorf("%d keys in the B-tree after Close, want 500", n)
	}
}

// Merges happen in the background while writes go on; reads stay exact.
func TestJournalMergesWhileWriting(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), smallJournal())
	for i := range 40 {
		putN(t, s, "b", i*50, (i+1)*50)
		if err := s.Update(t.Context(), func(tx store.Tx) error {
			return tx.Delete("b", fmt.Appendf(nil, "k%05d", i*50)) // a tombstone per round
		}); err != nil {
			t.Fatal(err)
		}
		if n := countKeys(t, s, "b"); n != (i+1)*49 {
			t.Fatalf("round %d: %d keys, want %d", i, n, (i+1)*49)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Merges == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no merge in 10 s with a 64 KiB journal")
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("stats: %+v", s.Stats())
}

// Snapshot holds what is still only in the journal; the copy restores alone.
func TestJournalSnapshot(t *testing.T) {
	dir := t.TempDir()
	o := store.Options{}
	store.SetMergeInterval(&o, time.Hour) // nothing merged unless Snapshot asks
	s := mustOpen(t, filepath.Join(dir, "vault.db"), o)
	putN(t, s, "b", 0, 300)
	var buf bytes.Buffer
	snap, ok := any(s).(store.Snapshotter)
	if !ok {
		t.Fatal("Bolt is not a Snapshotter")
	}
	if _, err := snap.Snapshot(t.Context(), &buf); err != nil {
		t.Fatal(err)
	}
	putN(t, s, "b", 300, 400) // after the snapshot: not in it
	restored := filepath.Join(t.TempDir(), "restored.db")
	if _, err := store.RestoreFile(&buf, restored); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, restored, store.Options{})
	if n := countKeys(t, s2, "b"); n != 300 {
		t.Errorf("restored snapshot holds %d keys, want 300", n)
	}
	// A restore next to another store's journal is refused.
	if err := os.WriteFile(filepath.Join(dir, "other.db.journal.0000000000000001"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RestoreFile(strings.NewReader("x"), filepath.Join(dir, "other.db")); err == nil || !strings.Contains(err.Error(), "journal") {
		t.Errorf("RestoreFile next to a journal: %v, want a refusal naming the journal", err)
	}
}

// A journal left by a crash is replayed by Open even with NoJournal.
func TestJournalReplayedWithoutJournal(t *testing.T) {
	dir := t.TempDir()
	acked, code, out := runChild(t, dir, "journal.synced", 20, "load")
	if code != 137 {
		t.Fatalf("child exited %d: %s", code, out)
	}
	path := filepath.Join(dir, "vault.db")
	if len(store.JournalFiles(path)) == 0 {
		t.Fatal("the child left no journal")
	}
	verifyCrash(t, path, acked, crashWorkers, crashIters, store.Options{NoJournal: true})
	if files := store.JournalFiles(path); len(files) != 0 {
		t.Errorf("journal files after a replay with NoJournal: %q", files)
	}
}

// hammer runs callers×rounds Updates, each of one Put, from callers goroutines at once.
func hammer(t *testing.T, s *store.Bolt, callers, rounds int) {
	t.Helper()
	start := make(chan struct{})
	errs := make(chan error, callers)
	for c := range callers {
		go func() {
			<-start
			for r := range rounds {
				if err := s.Update(t.Context(), func(tx store.Tx) error {
					return tx.Put("b", fmt.Appendf(nil, "k%03d-%03d", c, r), fmt.Appendf(nil, "v%03d-%03d", c, r))
				}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	close(start)
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// The journal's committer waits Options.CommitDelay for company only after a group of
// several calls: a lone caller is never delayed, many callers share fewer fsyncs, and
// without a delay (the default) no group waits.
func TestCommitDelay(t *testing.T) {
	t.Run("lone caller", func(t *testing.T) {
		s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{CommitDelay: store.MaxCommitDelay})
		hammer(t, s, 1, 30)
		if st := s.Stats(); st.Waits != 0 || st.Committed != 30 {
			t.Errorf("one caller, 30 Updates: %d groups waited, %d committed; want 0 and 30", st.Waits, st.Committed)
		}
	})
	t.Run("many callers", func(t *testing.T) {
		s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{CommitDelay: 20 * time.Millisecond})
		hammer(t, s, 32, 20)
		st := s.Stats()
		if st.Committed != 640 || st.Waits == 0 {
			t.Fatalf("32 callers × 20 Updates: %d committed, %d groups waited; want 640 and > 0", st.Committed, st.Waits)
		}
		// While a group waits 20 ms, the callers answered by the one before queue again.
		if avg := float64(st.Committed) / float64(st.Commits); avg < 4 {
			t.Errorf("%d Updates in %d commits (%.1f a commit), want at least 4 a commit", st.Committed, st.Commits, avg)
		}
		if n := countKeys(t, s, "b"); n != 640 {
			t.Errorf("%d keys, want 640", n)
		}
	})
	t.Run("off", func(t *testing.T) {
		s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{})
		hammer(t, s, 32, 20)
		if st := s.Stats(); st.Waits != 0 || st.Committed != 640 {
			t.Errorf("CommitDelay 0 (the default): %d groups waited, %d committed; want 0 and 640", st.Waits, st.Committed)
		}
	})
}

// A busy committer waits for the company it expects (as many calls as its last group held),
// not for the whole delay: with 32 callers and a 100 ms delay, the callers answered by one
// group are back long before the delay ends. Only the last groups of the run, when callers
// have finished and the company never comes, wait the whole delay. (The first version slept
// the whole delay every time: each of its waits would count here as timed out.)
func TestCommitDelayEndsWithCompany(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{CommitDelay: store.MaxCommitDelay})
	hammer(t, s, 32, 20)
	st := s.Stats()
	t.Logf("%d commits, %d waits, %d timed out", st.Commits, st.Waits, st.WaitsTimedOut)
	if st.Committed != 640 || st.Waits < 10 {
		t.Fatalf("32 callers × 20 Updates: %d committed, %d groups waited; want 640 and at least 10", st.Committed, st.Waits)
	}
	if st.WaitsTimedOut*2 > st.Waits {
		t.Errorf("%d of %d waits lasted the whole delay: the committer does not stop waiting when its company is here", st.WaitsTimedOut, st.Waits)
	}
	if n := countKeys(t, s, "b"); n != 640 {
		t.Errorf("%d keys, want 640", n)
	}
}

// A burst of callers makes the committer wait CommitDelay after its groups, but not once the
// burst is over: a lone Update after idle time is committed at once (a review found the
// first lone Update after a burst, however much later, waiting the whole delay).
func TestCommitDelayNotAfterIdle(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{CommitDelay: store.MaxCommitDelay})
	for attempt := 0; attempt < 20; attempt++ {
		hammer(t, s, 32, 1)
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

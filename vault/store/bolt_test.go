package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/store/storetest"
)

// mustOpen opens a Bolt at path and registers a cleanup that, like bbolt's
// internal/btesting, runs the consistency check before closing, then
// reopens the closed file and checks it again.
func mustOpen(t testing.TB, path string, opts store.Options) *store.Bolt {
	t.Helper()
	s, err := store.Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { checkAndClose(t, s) })
	return s
}

func checkAndClose(t testing.TB, s *store.Bolt) {
	t.Helper()
	if err := s.Check(); err != nil && !errors.Is(err, store.ErrClosed) {
		t.Errorf("consistency check before Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	s2, err := store.Open(s.Path(), store.Options{Timeout: -1})
	if err != nil {
		t.Errorf("reopen for check: %v", err)
		return
	}
	if err := s2.Check(); err != nil {
		t.Errorf("consistency check of the closed file: %v", err)
	}
	if err := s2.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestConformance(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts store.Options
	}{
		{"journal", store.Options{}},
		// A merge every few groups, so that reads cross merges.
		{"journal-small", smallJournal()},
		// The key filter built again after every merge, in small chunks.
		{"journal-filter-churn", filterChurn()},
		{"plain", store.Options{NoJournal: true}},
		// Buckets of several generations of 3 keys each, merged with and
		// without the key filter, and without the journal.
		{"journal-generations", generations(smallJournal())},
		{"journal-filter-churn-generations", generations(filterChurn())},
		{"plain-generations", generations(store.Options{NoJournal: true})},
	} {
		t.Run(mode.name, func(t *testing.T) { conformance(t, mode.opts) })
	}
}

// generations returns o with generations of 3 keys (generations.go).
func generations(o store.Options) store.Options {
	store.SetGenerationKeys(&o, 3)
	return o
}

// smallJournal returns Options whose journal merges after a few kilobytes.
func smallJournal() store.Options {
	o := store.Options{JournalMemory: 64 << 10}
	store.SetMergeInterval(&o, 5*time.Millisecond)
	return o
}

func conformance(t *testing.T, opts store.Options) {
	var mu sync.Mutex
	paths := make(map[string]string) // test name -> data file
	storetest.RunConformance(t, func(t *testing.T) store.Store {
		mu.Lock()
		path, ok := paths[t.Name()]
		if !ok {
			path = filepath.Join(t.TempDir(), "vault.db")
			paths[t.Name()] = path
		}
		mu.Unlock()
		return mustOpen(t, path, opts)
	})
}

func TestFileMode(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{})
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("data file mode = %v, want 0600", perm)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	s := mustOpen(t, path, store.Options{})
	for _, tc := range []struct {
		timeout, min, max time.Duration
	}{
		{-1, 0, 500 * time.Millisecond},
		{200 * time.Millisecond, 100 * time.Millisecond, time.Second},
		{0, store.DefaultTimeout - 200*time.Millisecond, store.DefaultTimeout + time.Second},
	} {
		start := time.Now()
		s2, err := store.Open(path, store.Options{Timeout: tc.timeout})
		elapsed := time.Since(start)
		if err == nil {
			s2.Close()
			t.Fatalf("second Open (timeout %v) succeeded", tc.timeout)
		}
		if !errors.Is(err, store.ErrLocked) {
			t.Errorf("second Open (timeout %v): %v, want ErrLocked", tc.timeout, err)
		}
		if elapsed < tc.min || elapsed > tc.max {
			t.Errorf("second Open (timeout %v) took %v, want in [%v, %v]", tc.timeout, elapsed, tc.min, tc.max)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, path, store.Options{})
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

const lockHelperEnv = "TOKENVAULT_STORE_LOCK_HELPER"

// TestLockHelperProcess is the child process of TestOpenLockedOtherProcess.
func TestLockHelperProcess(t *testing.T) {
	path := os.Getenv(lockHelperEnv)
	if path == "" {
		t.Skip("helper process for TestOpenLockedOtherProcess")
	}
	start := time.Now()
	s, err := store.Open(path, store.Options{Timeout: 300 * time.Millisecond})
	switch {
	case errors.Is(err, store.ErrLocked):
		fmt.Printf("helper: locked after %v\n", time.Since(start))
	case err != nil:
		fmt.Printf("helper: error: %v\n", err)
	default:
		s.Close()
		fmt.Println("helper: opened")
	}
}

func TestOpenLockedOtherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.db")
	s := mustOpen(t, path, store.Options{})
	run := func() string {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestLockHelperProcess$", "-test.v")
		cmd.Env = append(os.Environ(), lockHelperEnv+"="+path)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper process: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := run(); !strings.Contains(out, "helper: locked") {
		t.Errorf("Open in another process while open here: want ErrLocked, got:\n%s", out)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if out := run(); !strings.Contains(out, "helper: opened") {
		t.Errorf("Open in another process after Close: want success, got:\n%s", out)
	}
}

// blockCommitter starts an Update whose function blocks until the returned
// release function is called, so that later Updates queue up.
func blockCommitter(t *testing.T, s *store.Bolt) (release func()) {
	t.Helper()
	entered, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.Update(context.Background(), func(tx store.Tx) error {
			close(entered)
			<-unblock
			return tx.Put("blocker", []byte("k"), []byte("v"))
		})
	}()
	<-entered
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(unblock)
			if err := <-done; err != nil {
				t.Errorf("blocking Update: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return release
}

// waitQueued waits until n Update calls are queued behind the committer.
func waitQueued(t *testing.T, s *store.Bolt, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for store.QueueLen(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d Update calls queued after 10s, want %d", store.QueueLen(s), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// updateQueued makes n concurrent Update calls, of fn with the call's number, queue behind a
// blocked commit, then lets the committer go and waits for them. It returns each call's
// error and the store's Stats before the release and after the calls.
func updateQueued(t *testing.T, s *store.Bolt, n int, fn func(i int, tx store.Tx) error) (errs []error, before, after store.Stats) {
	t.Helper()
	release := blockCommitter(t, s)
	errs = make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Update(t.Context(), func(tx store.Tx) error { return fn(i, tx) })
		})
	}
	waitQueued(t, s, n)
	before = s.Stats()
	release()
	wg.Wait()
	return errs, before, s.Stats()
}

func TestGroupCommitGroups(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{})
	const n = 200
	errs, before, after := updateQueued(t, s, n, func(i int, tx store.Tx) error {
		return tx.Put("b", fmt.Appendf(nil, "%03d", i), []byte("v"))
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("Update %d: %v", i, err)
		}
	}
	commits, committed := after.Commits-before.Commits, after.Committed-before.Committed
	t.Logf("%d Updates queued behind a blocked commit: %d commits", committed, commits)
	if committed != n+1 { // + the blocker
		t.Errorf("committed %d Updates, want %d", committed, n+1)
	}
	if commits != 2 {
		t.Errorf("%d queued Updates took %d commits, want the blocker's and one for them all", n, commits)
	}
}

func TestGroupCommitUnderLoad(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{})
	const goroutines, perG = 32, 100
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				err := s.Update(t.Context(), func(tx store.Tx) error {
					return tx.Put("b", fmt.Appendf(nil, "%02d/%03d", g, i), []byte("v"))
				})
				if err != nil {
					t.Errorf("Update: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := s.Stats()
	t.Logf("stats: %+v (%.1f Updates per commit)", st, float64(st.Committed)/float64(st.Commits))
	if st.Committed != goroutines*perG {
		t.Errorf("Committed = %d, want %d", st.Committed, goroutines*perG)
	}
	if st.Commits >= st.Committed/2 {
		t.Errorf("%d commits for %d concurrent Updates: want fewer than half", st.Commits, st.Committed)
	}
	if st.Size <= 0 {
		t.Errorf("Stats.Size = %d, want > 0", st.Size)
	}
}

func TestMaxGroup(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{MaxGroup: 8})
	const n = 40
	errs, before, after := updateQueued(t, s, n, func(i int, tx store.Tx) error {
		return tx.Put("b", fmt.Appendf(nil, "%03d", i), []byte("v"))
	})
	for _, err := range errs {
		if err != nil {
			t.Errorf("Update: %v", err)
		}
	}
	commits := after.Commits - before.Commits
	if want := uint64(1 + n/8); commits != want { // the blocker's, then groups of 8
		t.Errorf("%d Updates with MaxGroup 8 took %d commits, want %d", n, commits, want)
	}
}

// A lone Update is committed at once: no batching delay (bbolt's DB.Batch
// would wait up to 10 ms for company).
func TestLoneUpdateDoesNotWait(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{NoSync: true})
	const n = 50
	start := time.Now()
	for i := range n {
		if err := s.Update(t.Context(), func(tx store.Tx) error {
			return tx.Put("b", fmt.Appendf(nil, "%d", i), []byte("v"))
		}); err != nil {
			t.Fatal(err)
		}
	}
	if per := time.Since(start) / n; per > 5*time.Millisecond {
		t.Errorf("a lone Update (NoSync) took %v on average, want no batching delay", per)
	}
}

func TestCancelWhileQueued(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{})
	release := blockCommitter(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	var ran atomic.Bool
	errc := make(chan error, 1)
	go func() {
		errc <- s.Update(ctx, func(tx store.Tx) error {
			ran.Store(true)
			return tx.Put("b", []byte("k"), []byte("v"))
		})
	}()
	waitQueued(t, s, 1)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("canceled queued Update: %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("canceled queued Update did not return while the committer was busy")
	}
	release()
	if err := s.Update(t.Context(), func(store.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if ran.Load() {
		t.Error("function of the canceled Update ran")
	}
}

func TestCloseWhileQueued(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{})
	release := blockCommitter(t, s)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Update(t.Context(), func(tx store.Tx) error {
				return tx.Put("b", fmt.Appendf(nil, "%02d", i), []byte("v"))
			})
		})
	}
	waitQueued(t, s, n)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close waits for the queued work: it cannot finish while it is blocked.
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before queued Updates committed", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := s.Update(t.Context(), func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Update during Close: %v, want ErrClosed", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("queued Update %d: %v, want committed", i, err)
		}
	}
	s2 := mustOpen(t, s.Path(), store.Options{})
	n2 := 0
	if err := s2.View(t.Context(), func(tx store.Tx) error {
		return tx.Scan("b", nil, nil, func(k, v []byte) error { n2++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if n2 != n {
		t.Errorf("after Close: %d keys, want %d", n2, n)
	}
}

// Functions failing after writing force rollbacks and re-runs; results must
// still be exact, and the re-run work bounded.
func TestRollbackRerun(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{})
	const n = 100
	runs := make([]atomic.Int32, n)
	errs, before, after := updateQueued(t, s, n, func(i int, tx store.Tx) error {
		runs[i].Add(1)
		if err := tx.Put("b", fmt.Appendf(nil, "%03d", i), []byte("v")); err != nil {
			return err
		}
		if i%2 == 1 {
			return fmt.Errorf("caller %d failed", i)
		}
		return nil
	})
	totalRuns := 0
	for i := range n {
		totalRuns += int(runs[i].Load())
		if i%2 == 1 {
			if errs[i] == nil || errs[i].Error() != fmt.Sprintf("caller %d failed", i) {
				t.Errorf("caller %d: %v, want its own error", i, errs[i])
			}
		} else if errs[i] != nil {
			t.Errorf("caller %d: %v", i, errs[i])
		}
	}
	var keys []string
	if err := s.View(t.Context(), func(tx store.Tx) error {
		return tx.Scan("b", nil, nil, func(k, v []byte) error { keys = append(keys, string(k)); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != n/2 {
		t.Errorf("%d keys kept, want %d", len(keys), n/2)
	}
	for _, k := range keys {
		i, err := strconv.Atoi(k)
		if err != nil || i%2 == 1 {
			t.Errorf("key of failed caller %d kept", i)
		}
	}
	t.Logf("%d Updates (half failing after writing): %d function runs, %d commits, %d rollbacks, %d reruns",
		n, totalRuns, after.Commits-before.Commits, after.Rollbacks-before.Rollbacks, after.Reruns-before.Reruns)
	if after.Rollbacks-before.Rollbacks != n/2 {
		t.Errorf("rollbacks = %d, want %d", after.Rollbacks-before.Rollbacks, n/2)
	}
	// The re-run budget is the group size: at most about 2 runs each.
	if totalRuns > 3*n {
		t.Errorf("%d function runs for %d Updates: re-run work not bounded", totalRuns, n)
	}
}

// Functions that fail without writing cost no rollback.
func TestFailWithoutWriteNoRollback(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{})
	const n = 50
	errs, before, after := updateQueued(t, s, n, func(i int, tx store.Tx) error {
		if i%2 == 1 {
			if tx.Get("b", []byte("never")) == nil {
				return errors.New("not found")
			}
		}
		return tx.Put("b", fmt.Appendf(nil, "%03d", i), []byte("v"))
	})
	for i, err := range errs {
		if (err != nil) != (i%2 == 1) {
			t.Errorf("caller %d: %v", i, err)
		}
	}
	if r := after.Rollbacks - before.Rollbacks; r != 0 {
		t.Errorf("%d rollbacks for functions that failed before writing, want 0", r)
	}
	if r := after.Reruns - before.Reruns; r != 0 {
		t.Errorf("%d re-runs, want 0", r)
	}
}

func TestPanicAndGoexit(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{})
	err := s.Update(t.Context(), func(tx store.Tx) error {
		_ = tx.Put("b", []byte("k"), []byte("v"))
		panic("kaboom")
	})
	if !errors.Is(err, store.ErrPanic) || !strings.Contains(err.Error(), "kaboom") {
		t.Errorf("panicking Update: %v", err)
	}
	err = s.Update(t.Context(), func(tx store.Tx) error {
		_ = tx.Put("b", []byte("k"), []byte("v"))
		runtime.Goexit()
		return nil
	})
	if !errors.Is(err, store.ErrPanic) {
		t.Errorf("Update calling runtime.Goexit: %v, want ErrPanic", err)
	}
	// The committer survived both, and released the write transaction.
	for i := range 3 {
		if err := s.Update(t.Context(), func(tx store.Tx) error {
			return tx.Put("b", fmt.Appendf(nil, "after%d", i), []byte("v"))
		}); err != nil {
			t.Fatalf("Update after panic and Goexit: %v", err)
		}
	}
	if err := s.View(t.Context(), func(tx store.Tx) error {
		if tx.Get("b", []byte("k")) != nil {
			t.Error("write of a panicking function was kept")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestViewScanHonorsContext(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{})
	if err := s.Update(t.Context(), func(tx store.Tx) error {
		for i := range 2000 {
			if err := tx.Put("b", fmt.Appendf(nil, "%05d", i), nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	err := s.View(ctx, func(tx store.Tx) error {
		return tx.Scan("b", nil, nil, func(k, v []byte) error {
			if n++; n == 10 {
				cancel()
			}
			return nil
		})
	})
	if !errors.Is(err, context.Canceled) || n >= 2000 {
		t.Errorf("Scan after cancel: %v after %d keys, want context.Canceled before the end", err, n)
	}
}

func TestCheckAndStats(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{})
	if err := s.Update(t.Context(), func(tx store.Tx) error {
		return tx.Put("b", []byte("k"), bytes.Repeat([]byte("v"), 10000))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
	st := s.Stats()
	if st.Commits != 1 || st.Committed != 1 || st.Size < 10000 {
		t.Errorf("Stats = %+v, want 1 commit of 1 Update, Size >= 10000", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Check after Close: %v, want ErrClosed", err)
	}
}

func TestFailedAloneNoCommit(t *testing.T) {
	s := mustOpen(t, filepath.Join(t.TempDir(), "vault.db"), store.Options{})
	err := s.Update(t.Context(), func(tx store.Tx) error {
		if tx.Get("b", []byte("k")) == nil {
			return errors.New("not found")
		}
		return nil
	})
	if err == nil {
		t.Fatal("Update: nil error, want not found")
	}
	if st := s.Stats(); st.Commits != 0 || st.Failed != 1 {
		t.Errorf("Stats = %+v, want no commit and 1 failed", st)
	}
}

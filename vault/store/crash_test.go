package store_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Crash-point tests of the journal: the test binary re-executes itself as a
// child process that runs a workload on a store and exits with status 137
// (as if SIGKILLed) at the n-th time it reaches a named failpoint of the
// write path, rotation, merge or recovery. The parent then reopens the store
// and checks that every acknowledged Update is there with its exact values,
// and that every Update group is all there or not at all.

const crashEnv = "TOKENVAULT_STORE_CRASH_CHILD" // dir|step|hit|mode

// crashOptions: a journal small enough to rotate and merge every few groups,
// and generations of 50 new keys, so that crashes also fall in merges and
// recoveries that begin a generation (generations.go).
func crashOptions() store.Options {
	o := store.Options{JournalMemory: 24 << 10}
	store.SetMergeInterval(&o, 3*time.Millisecond)
	store.SetGenerationKeys(&o, 50)
	return o
}

const (
	crashWorkers = 4
	crashIters   = 60
)

func crashValue(w, i int, part byte) []byte {
	return fmt.Appendf(nil, "w%d.i%d.%c.%s", w, i, part, strings.Repeat("x", 40+i%17))
}

func groupKey(w, i int, part byte) []byte { return fmt.Appendf(nil, "%d/%06d/%c", w, i, part) }

// crashUpdate is Update group (w, i): five puts, a delete of the previous
// group's "c", a sequence number kept under seqs, and a shared counter.
func crashUpdate(w, i int) func(store.Tx) error {
	return func(tx store.Tx) error {
		for _, p := range []byte("abcde") {
			if err := tx.Put("g", groupKey(w, i, p), crashValue(w, i, p)); err != nil {
				return err
			}
		}
		if i > 0 {
			if err := tx.Delete("g", groupKey(w, i-1, 'c')); err != nil {
				return err
			}
		}
		n, err := tx.NextSequence("seqs")
		if err != nil {
			return err
		}
		if err := tx.Put("seqs", binary.BigEndian.AppendUint64(nil, n), fmt.Appendf(nil, "%d/%d", w, i)); err != nil {
			return err
		}
		var c uint64
		if v := tx.Get("ctr", []byte("n")); v != nil {
			c = binary.BigEndian.Uint64(v)
		}
		return tx.Put("ctr", []byte("n"), binary.BigEndian.AppendUint64(nil, c+1))
	}
}

// TestCrashChild is the child process of the crash tests.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		t.Skip("child process of TestCrashPoints and TestTornTail")
	}
	f := strings.Split(spec, "|")
	dir, step, mode := f[0], f[1], f[3]
	hit, _ := strconv.Atoi(f[2])
	opts := crashOptions()
	var hits atomic.Int64
	store.SetFailpoint(&opts, func(s string) error {
		if s == step && hits.Add(1) == int64(hit) {
			os.Exit(137)
		}
		return nil
	})
	if mode == "torn" {
		opts = store.Options{JournalMemory: 1 << 30}
		store.SetMergeInterval(&opts, time.Hour)
	}
	s, err := store.Open(filepath.Join(dir, "vault.db"), opts)
	if err != nil {
		fmt.Printf("open: %v\n", err)
		os.Exit(3)
	}
	var mu sync.Mutex
	ack := func(w, i int) {
		mu.Lock()
		fmt.Fprintf(os.Stdout, "ack %d %d\n", w, i) // unbuffered: one write each
		mu.Unlock()
	}
	switch mode {
	case "recover": // only the Open above
	case "torn":
		// Sequential groups, one record each, never merged; exit without Close.
		for i := range 20 {
			if err := s.Update(t.Context(), crashUpdate(0, i)); err != nil {
				fmt.Printf("update: %v\n", err)
				os.Exit(4)
			}
			ack(0, i)
		}
		os.Exit(0)
	default:
		var wg sync.WaitGroup
		for w := range crashWorkers {
			wg.Go(func() {
				for i := range crashIters {
					// A function that fails after writing: its writes must never appear.
					if i%7 == 3 {
						err := s.Update(t.Context(), func(tx store.Tx) error {
							_ = tx.Put("fail", groupKey(w, i, 'f'), []byte("never"))
							_, _ = tx.NextSequence("seqs")
							return errors.New("fails on purpose")
						})
						if err == nil {
							fmt.Printf("failing update returned nil\n")
							os.Exit(5)
						}
					}
					if err := s.Update(t.Context(), crashUpdate(w, i)); err != nil {
						fmt.Printf("update: %v\n", err)
						os.Exit(4)
					}
					ack(w, i)
				}
			})
		}
		wg.Wait()
	}
	if err := s.Close(); err != nil {
		fmt.Printf("close: %v\n", err)
		os.Exit(6)
	}
	fmt.Println("done")
	os.Exit(0)
}

// runChild runs the child; it returns the acknowledged groups and the exit code.
func runChild(t *testing.T, dir, step string, hit int, mode string) (map[[2]int]bool, int, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%d|%s", crashEnv, dir, step, hit, mode))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("child: %v", err)
	}
	acked := make(map[[2]int]bool)
	sc := bufio.NewScanner(bytes.NewReader(out))
	var other []string
	for sc.Scan() {
		var w, i int
		if _, err := fmt.Sscanf(sc.Text(), "ack %d %d", &w, &i); err == nil {
			acked[[2]int{w, i}] = true
		} else {
			other = append(other, sc.Text())
		}
	}
	return acked, code, strings.Join(other, "\n") + stderr.String()
}

// verifyCrash opens the store and checks the groups: each one all there or
// not at all, those acknowledged there, each worker's groups a prefix, the
// counter and the sequence values consistent with the groups there.
func verifyCrash(t *testing.T, path string, acked map[[2]int]bool, workers, iters int, opts store.Options) int {
	t.Helper()
	s, err := store.Open(path, opts)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer func() {
		if err := s.Check(); err != nil {
			t.Errorf("check: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	total := checkGroups(t, s, acked, workers, iters)
	// The store takes writes after recovery.
	if err := s.Update(t.Context(), crashUpdate(workers, 0)); err != nil {
		t.Errorf("Update after recovery: %v", err)
	}
	return total
}

// checkGroups does verifyCrash's checks on an open store and returns the
// number of groups there.
func checkGroups(t *testing.T, s store.Store, acked map[[2]int]bool, workers, iters int) int {
	t.Helper()
	total := 0
	err := s.View(t.Context(), func(tx store.Tx) error {
		applied := func(w, i int) bool { return tx.Get("g", groupKey(w, i, 'a')) != nil }
		for w := range workers {
			n := 0
			for n < iters && applied(w, n) {
				n++
			}
			for i := range iters {
				if acked[[2]int{w, i}] && i >= n {
					t.Errorf("group %d/%d was acknowledged but is not there", w, i)
				}
			}
			for i := n; i < iters; i++ {
				for _, p := range []byte("abcde") {
					if v := tx.Get("g", groupKey(w, i, p)); v != nil {
						t.Errorf("group %d/%d: %c there, but not its a or an earlier group of the worker (half applied, or not a prefix)", w, i, p)
					}
				}
			}
			for i := range n {
				for _, p := range []byte("abde") {
					if v := tx.Get("g", groupKey(w, i, p)); !bytes.Equal(v, crashValue(w, i, p)) {
						t.Errorf("group %d/%d: %c = %q, want %q", w, i, p, v, crashValue(w, i, p))
					}
				}
				v := tx.Get("g", groupKey(w, i, 'c'))
				if last := i == n-1; last != (v != nil) || (last && !bytes.Equal(v, crashValue(w, i, 'c'))) {
					t.Errorf("group %d/%d: c = %q; want it there only in the worker's last group (deleted by the next)", w, i, v)
				}
			}
			total += n
		}
		var ctr uint64
		if v := tx.Get("ctr", []byte("n")); v != nil {
			ctr = binary.BigEndian.Uint64(v)
		}
		if ctr != uint64(total) {
			t.Errorf("counter = %d, want %d (the groups there)", ctr, total)
		}
		seen := make(map[string]bool)
		var last uint64
		if err := tx.Scan("seqs", nil, nil, func(k, v []byte) error {
			n := binary.BigEndian.Uint64(k)
			if n <= last {
				t.Errorf("sequence %d after %d", n, last)
			}
			last = n
			var w, i int
			if _, err := fmt.Sscanf(string(v), "%d/%d", &w, &i); err != nil || !applied(w, i) || seen[string(v)] {
				t.Errorf("sequence %d: %q: not a group that is there, or twice", n, v)
			}
			seen[string(v)] = true
			return nil
		}); err != nil {
			return err
		}
		if len(seen) != total {
			t.Errorf("%d sequence entries, want %d", len(seen), total)
		}
		return tx.Scan("fail", nil, nil, func(k, v []byte) error {
			t.Errorf("write of a failed function is there: %q", k)
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

func TestCrashPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process per crash point")
	}
	steps := []struct {
		step string
		hits []int
	}{
		{"journal.extended", []int{1, 2}},
		{"journal.write", []int{1, 20}},
		{"journal.written", []int{2, 25}},
		{"journal.synced", []int{3, 30}},
		{"rotate.begin", []int{1, 4}},
		{"rotate.truncated", []int{1, 4}},
		{"rotate.created", []int{1, 5}},
		{"rotate.header", []int{1, 6}},
		{"rotate.done", []int{2, 7}},
		{"merge.writing", []int{1, 3}},
		{"merge.commit", []int{1, 4}},
		{"merge.committed", []int{1, 5}},
		{"merge.removed", []int{2, 6}},
	}
	for _, st := range steps {
		for _, hit := range st.hits {
			t.Run(fmt.Sprintf("%s#%d", st.step, hit), func(t *testing.T) {
				t.Parallel()
				dir := t.TempDir()
				acked, code, out := runChild(t, dir, st.step, hit, "load")
				if code != 137 {
					t.Fatalf("child exited %d, want 137 at the failpoint (never reached?): %s", code, out)
				}
				total := verifyCrash(t, filepath.Join(dir, "vault.db"), acked, crashWorkers, crashIters, store.Options{})
				t.Logf("%d groups acknowledged, %d there after recovery", len(acked), total)
			})
		}
	}
	// Crashes during recovery: the first child leaves a journal, the second
	// crashes while replaying it.
	for _, step := range []string{"recover.writing", "recover.commit", "recover.committed"} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			acked, code, out := runChild(t, dir, "journal.synced", 30, "load")
			if code != 137 {
				t.Fatalf("first child exited %d, want 137: %s", code, out)
			}
			if len(store.JournalFiles(filepath.Join(dir, "vault.db"))) == 0 {
				t.Fatal("the first child left no journal to replay")
			}
			_, code, out = runChild(t, dir, step, 1, "recover")
			if code != 137 {
				t.Fatalf("recovering child exited %d, want 137 at %s: %s", code, step, out)
			}
			total := verifyCrash(t, filepath.Join(dir, "vault.db"), acked, crashWorkers, crashIters, store.Options{})
			t.Logf("%d groups acknowledged, %d there after two crashes", len(acked), total)
		})
	}
}

// TestTornTail truncates the journal at every byte offset of its last record,
// and flips every third byte of that record's payload: recovery keeps all the
// records before it, and the last one only when it is whole.
func TestTornTail(t *testing.T) {
	src := t.TempDir()
	acked, code, out := runChild(t, src, "none", 0, "torn")
	if code != 0 || len(acked) != 20 {
		t.Fatalf("child: exit %d, %d acknowledged: %s", code, len(acked), out)
	}
	files := store.JournalFiles(filepath.Join(src, "vault.db"))
	if len(files) != 1 {
		t.Fatalf("journal files %q, want one", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(filepath.Join(src, "vault.db"))
	if err != nil {
		t.Fatal(err)
	}
	ends := store.RecordEnds(data)
	if len(ends) != 20 {
		t.Fatalf("%d records in %d bytes, want 20", len(ends), len(data))
	}
	// The journal is written ahead with zeros (the committer's fdatasync then rewrites
	// blocks the file has instead of growing it): the cases below cut them off first, and the
	// file as left is checked after them.
	if bytes.ContainsFunc(data[ends[19]:], func(r rune) bool { return r != 0 }) {
		t.Fatal("the journal holds something other than zeros after its last record")
	}
	written := data
	data = data[:ends[19]]
	start := ends[18]
	// check opens a copy with journal j and expects the first n groups.
	check := func(what string, j []byte, n int) {
		dir := t.TempDir()
		path := filepath.Join(dir, "vault.db")
		writeSparse(t, path, db)
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(files[0])), j, 0o600); err != nil {
			t.Fatal(err)
		}
		want := make(map[[2]int]bool)
		for i := range n {
			want[[2]int{0, i}] = true
		}
		// No fsync: this opens hundreds of stores.
		if got := verifyCrash(t, path, want, 1, 20, store.Options{NoSync: true}); got != n {
			t.Errorf("%s: %d groups after recovery, want %d", what, got, n)
		}
	}
	for off := start; off <= int64(len(data)); off++ {
		n := 19
		if off == int64(len(data)) {
			n = 20
		}
		check(fmt.Sprintf("truncated at %d (last record %d..%d)", off, start, len(data)), data[:off], n)
		if t.Failed() {
			t.FailNow()
		}
	}
	for off := start + 8; off < int64(len(data)); off += 3 {
		j := bytes.Clone(data)
		j[off] ^= 0x5a
		check(fmt.Sprintf("byte %d of the last record flipped", off), j, 19)
		if t.Failed() {
			t.FailNow()
		}
	}
	check("as written, zeros ahead included", written, 20)
	// Zeros after a torn record (a file system may leave them) change nothing.
	check("zeros after a torn record", append(bytes.Clone(data[:start+20]), make([]byte, 100)...), 19)
	// A damaged record that is not the last one is corruption, not a torn tail.
	j := bytes.Clone(data)
	j[ends[10]+12] ^= 0x5a
	dir := t.TempDir()
	path := filepath.Join(dir, "vault.db")
	writeSparse(t, path, db)
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(files[0])), j, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := store.Open(path, store.Options{}); !errors.Is(err, store.ErrCorrupt) {
		if err == nil {
			s.Close()
		}
		t.Errorf("Open with a damaged record before the last: %v, want ErrCorrupt", err)
	}
}

// writeSparse writes data to a new file at path, skipping the pages of zeros
// (bbolt grows its file ahead of the data: copying the zeros is slow).
func writeSparse(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	const page = 4096
	zero := make([]byte, page)
	for off := 0; off < len(data); off += page {
		p := data[off:min(off+page, len(data))]
		if bytes.Equal(p, zero[:len(p)]) {
			continue
		}
		if _, err := f.WriteAt(p, int64(off)); err != nil {
			t.Fatal(err)
		}
	}
}

var errInjected = errors.New("injected merge failure")

// TestRecoveryMergeFails: when Open cannot merge the journal into bbolt (a
// full disk), it serves the replayed journal from memory, cuts the torn tail
// off the last file, and writes after it; a later Open replays all of it.
func TestRecoveryMergeFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vault.db")
	acked, code, out := runChild(t, dir, "journal.synced", 20, "load")
	if code != 137 {
		t.Fatalf("child exited %d: %s", code, out)
	}
	files := store.JournalFiles(path)
	if len(files) == 0 {
		t.Fatal("the child left no journal")
	}
	// A torn record at the end of the last file.
	f, err := os.OpenFile(files[len(files)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0, 0, 0, 200, 1, 2, 3, 4, 5}); err != nil {
		t.Fatal(err)
	}
	f.Close()

	opts := store.Options{}
	store.SetFailpoint(&opts, func(step string) error {
		if strings.HasSuffix(step, ".writing") {
			return errInjected // every merge fails
		}
		return nil
	})
	s, err := store.Open(path, opts)
	if err != nil {
		t.Fatalf("Open when the recovery merge fails: %v", err)
	}
	checkGroups(t, s, acked, crashWorkers, crashIters)
	if err := s.Update(t.Context(), crashUpdate(crashWorkers, 0)); err != nil {
		t.Fatalf("Update over an unmerged replayed journal: %v", err)
	}
	if err := s.Close(); !errors.Is(err, errInjected) {
		t.Errorf("Close with failing merges: %v, want the merge error", err)
	}
	if len(store.JournalFiles(path)) == 0 {
		t.Fatal("Close removed a journal it could not merge")
	}
	acked[[2]int{crashWorkers, 0}] = true
	verifyCrash(t, path, acked, crashWorkers+1, crashIters, store.Options{})
}

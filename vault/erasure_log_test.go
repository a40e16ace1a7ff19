package vault

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/tokenvault/tokenvault/vault/store"
)

// failAfterErase fails every View once an Update that deleted a subject key committed
// (a request cancelled, or a PostgreSQL connection lost, right after step 1's commit).
type failAfterErase struct {
	store.Store
	failViews atomic.Bool
}

type eraseSpyTx struct {
	store.Tx
	deleted *bool
}

func (t eraseSpyTx) Delete(b store.Bucket, k []byte) error {
	if b == bucketSubjectKeys {
		*t.deleted = true
	}
	return t.Tx.Delete(b, k)
}

func (f *failAfterErase) Update(ctx context.Context, fn func(store.Tx) error) error {
	deleted := false
	err := f.Store.Update(ctx, func(tx store.Tx) error { deleted = false; return fn(eraseSpyTx{Tx: tx, deleted: &deleted}) })
	if err == nil && deleted {
		f.failViews.Store(true)
	}
	return err
}

func (f *failAfterErase) View(ctx context.Context, fn func(store.Tx) error) error {
	if f.failViews.Load() {
		return errors.New("injected: connection lost")
	}
	return f.Store.View(ctx, fn)
}

// TestEraseLoggedBeforeSweep: the erasure log entry is written as soon as the subject key is
// destroyed (step 1), not after the sweep: when the sweep cannot run (here every read fails
// right after step 1's commit), a backup taken before the erasure and restored with the log
// must not serve the subject again.
func TestEraseLoggedBeforeSweep(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kek := newKEK(t)
	log := filepath.Join(dir, "erasure.log")
	fs := &failAfterErase{}
	v, st := openTest(t, atPath(filepath.Join(dir, "v.db")), withKEK(kek), withErasureLog(log),
		wrapStore(func(s store.Store) store.Store { fs.Store = s; return fs }))
	res, err := v.Tokenize(ctx, []TokenizeItem{{Value: "jane@example.com", Template: "email", Subject: "cust-1"}})
	if err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if _, err := st.Snapshot(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	if _, err := v.EraseSubject(ctx, "cust-1"); err == nil {
		t.Fatal("EraseSubject succeeded although every read after step 1 failed: the test injects nothing")
	}
	fs.failViews.Store(false)
	if got, _ := v.Detokenize(ctx, "p", []TokenRef{{Token: res[0].Token}}); got[0].Err == nil {
		t.Fatal("the live vault still reveals the subject after step 1")
	}
	if b, _ := os.ReadFile(log); len(b) == 0 {
		t.Error("the erasure log is empty after step 1 destroyed the subject key")
	}
	st.Close()

	rdir := t.TempDir()
	if _, err := store.RestoreFile(&backup, filepath.Join(rdir, "v.db")); err != nil {
		t.Fatal(err)
	}
	v2, _ := openTest(t, atPath(filepath.Join(rdir, "v.db")), withKEK(kek), withErasureLog(log))
	got, _ := v2.Detokenize(ctx, "p", []TokenRef{{Token: res[0].Token}})
	if got[0].Err == nil {
		t.Error("a backup restored with the erasure log reveals the subject erased by step 1")
	}
}

// TestEraseReplayKeepsLaterKey: the erasure log names the subject key it destroyed, so
// replaying it (at every start) erases that key when a restore brought it back, and never a
// key the subject was given after the erasure: a plain restart must not lose what was
// tokenized for the subject since.
func TestEraseReplayKeepsLaterKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kek := newKEK(t)
	log := filepath.Join(dir, "erasure.log")
	v, st := openTest(t, atPath(filepath.Join(dir, "v.db")), withKEK(kek), withErasureLog(log))
	if _, err := v.Tokenize(ctx, []TokenizeItem{{Value: "old@example.com", Template: "email", Subject: "cust-1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.EraseSubject(ctx, "cust-1"); err != nil {
		t.Fatal(err)
	}
	res, err := v.Tokenize(ctx, []TokenizeItem{{Value: "new@example.com", Template: "email", Subject: "cust-1"}})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	v2, _ := openTest(t, atPath(filepath.Join(dir, "v.db")), withKEK(kek), withErasureLog(log))
	got, _ := v2.Detokenize(ctx, "p", []TokenRef{{Token: res[0].Token}})
	if got[0].Err != nil {
		t.Errorf("a plain restart (no restore) erased data tokenized after the erasure: %v", got[0].Err)
	}
}

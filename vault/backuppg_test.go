package vault

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/tokenvault/tokenvault/vault/audit"
	"github.com/tokenvault/tokenvault/vault/store"
)

// TestBackupFromPostgres: Backup on a vault over PostgreSQL writes a bbolt snapshot
// (pgstore's Snapshotter, through store.SnapshotOf) that restores into a data directory,
// where a vault with the same KEK reveals every value and the audit trail holds the Backup
// event.
func TestBackupFromPostgres(t *testing.T) {
	ctx := context.Background()
	kek := newKEK(t)
	v, st := countingVault(t, kek)
	items := []TokenizeItem{{Value: "4111111111111111", Template: "pan"}, {Value: "a@example.com", Template: "email", Subject: "s"}}
	res, err := v.Tokenize(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := v.Backup(ctx, &buf)
	if err != nil || n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Backup = %d, %v (wrote %d bytes)", n, err, buf.Len())
	}
	want, err := store.Counts(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), store.FileName)
	if _, err := store.RestoreFile(&buf, path); err != nil {
		t.Fatal(err)
	}
	// Compared before a vault opens it: that migrates a bbolt store to schema 3 (the
	// database stays at 2), with an audit event.
	restored := openStore(t, path, store.Options{})
	if _, err := store.VerifyCopy(ctx, want, restored); err != nil {
		t.Errorf("the restored backup differs from the database: %v", err)
	}
	if err := restored.Close(); err != nil {
		t.Fatal(err)
	}
	r, bst := openTest(t, atPath(path), withKEK(kek))
	refs := []TokenRef{{Token: res[0].Token}, {Token: res[1].Token}}
	got, err := r.Detokenize(ctx, "test", refs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i].Err != nil || got[i].Value != items[i].Value {
			t.Errorf("restored: Detokenize(%q) = %q, %v; want %q", refs[i].Token, got[i].Value, got[i].Err, items[i].Value)
		}
	}
	if _, err := VerifyStoreAudit(ctx, bst, audit.Options{}); err != nil {
		t.Errorf("the restored audit trail does not verify: %v", err)
	}
}

package vault

import (
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"

	"github.com/tokenvault/tokenvault/vault/store"
)

// TestMigratesVersion1Store writes a store as version 1 did (no schema version, version-1
// records, a blind-index entry per deterministic token) and opens it with this binary.
func TestMigratesVersion1Store(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	kek := newKEK(t)
	v, st := openTest(t, atPath(path), withKEK(kek))
	// Rewrite the store to look like version 1.
	ad := recordAD(DefaultDomain, "pan", "4000001234561111")
	ct, err := v.keyring().Seal([]byte("4111111111111111"), ad)
	if err != nil {
		t.Fatal(err)
	}
	v1 := []byte{1}
	v1 = binary.AppendUvarint(v1, 3)
	v1 = append(v1, "pan"...)
	v1 = binary.AppendVarint(v1, 1700000000)
	v1 = binary.AppendVarint(v1, 0)
	v1 = append(v1, ct...)
	k, _ := v.hmacKey("index", DefaultDomain, "pan")
	if err := st.Update(ctx, func(tx store.Tx) error {
		if err := tx.Delete(bucketMeta, metaSchema); err != nil {
			return err
		}
		if err := tx.Put(bucketRecords, recordKey(DefaultDomain, "4000001234561111"), v1); err != nil {
			return err
		}
		return tx.Put(bucketIndex, indexKey(DefaultDomain, "pan", fingerprint(k, "4111111111111111")), []byte("4000001234561111"))
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	v2, st2 := openTest(t, atPath(path), withKEK(kek))
	var ver uint64
	_ = st2.View(ctx, func(tx store.Tx) error { ver = binary.BigEndian.Uint64(tx.Get(bucketMeta, metaSchema)); return nil })
	if ver != SchemaVersion {
		t.Fatalf("schema after open = %d, want %d", ver, SchemaVersion)
	}
	got, err := v2.Detokenize(ctx, "p", []TokenRef{{Token: "4000001234561111"}})
	if err != nil || got[0].Value != "4111111111111111" {
		t.Fatalf("version-1 record after migration: %+v, %v", got, err)
	}
	evs, _, _ := v2.ListAudit(ctx, AuditFilter{Method: "MigrateSchema"})
	if len(evs) != 1 {
		t.Fatalf("migration audited %d times", len(evs))
	}
}

func TestRefusesNewerStore(t *testing.T) {
	ctx := context.Background()
	kek := newKEK(t)
	_, st := openTest(t, withKEK(kek))
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.Put(bucketMeta, metaSchema, seqKey(SchemaVersion+1)) }); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Config{Store: st, KEK: kek}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open(newer store) = %v, want ErrSchemaTooNew", err)
	}
}

// TestSchemaByBackend: a bbolt store records SchemaVersion (3: generations), a PostgreSQL
// store 2, whose layout schema 3 does not change, so that a replica of the previous version
// (which refuses anything over 2) can still start on it; a PostgreSQL store that already
// records 3 (moved from bbolt) keeps it and opens.
func TestSchemaByBackend(t *testing.T) {
	ctx := context.Background()
	schemaOf := func(s store.Store) uint64 {
		var ver uint64
		_ = s.View(ctx, func(tx store.Tx) error {
			if b := tx.Get(bucketMeta, metaSchema); len(b) == 8 {
				ver = binary.BigEndian.Uint64(b)
			}
			return nil
		})
		return ver
	}
	_, bolt := openTest(t)
	if got := schemaOf(bolt); got != SchemaVersion || SchemaVersion != 3 {
		t.Errorf("bbolt store: schema %d, want %d (3)", got, SchemaVersion)
	}
	kek := newKEK(t)
	_, pg := countingVault(t, kek)
	if got := schemaOf(pg); got != 2 {
		t.Fatalf("PostgreSQL store: schema %d, want 2 (what a replica of the previous version accepts)", got)
	}
	if err := pg.Update(ctx, func(tx store.Tx) error { return tx.Put(bucketMeta, metaSchema, seqKey(3)) }); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, Config{Store: pg, KEK: kek}); err != nil {
		t.Fatalf("Open(PostgreSQL store at schema 3) = %v", err)
	}
	if got := schemaOf(pg); got != 3 {
		t.Errorf("PostgreSQL store at schema 3 after Open: %d, want 3 (never moved back)", got)
	}
}

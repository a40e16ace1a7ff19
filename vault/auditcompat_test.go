package vault

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/tokenvault/tokenvault/crypto/insecurekek"
	"github.com/tokenvault/tokenvault/vault/audit"
	"github.com/tokenvault/tokenvault/vault/store"
)

// TestAuditOldFormat verifies an export and a bbolt store written before replica chains
// (testdata/audit-main), then continues the store: first on the single-process chain (the
// same bytes as before: no replica field, the next sequence numbers, the first of them the
// migration from the fixture's schema 2), then with a replica chain beside it.
func TestAuditOldFormat(t *testing.T) {
	ctx := context.Background()
	pub, err := os.ReadFile("testdata/audit-main/audit-pub.json")
	if err != nil {
		t.Fatal(err)
	}
	opts := audit.Options{PublicKeyset: pub}
	f, err := os.Open("testdata/audit-main/export-main.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := audit.Verify(f, audit.Options{PublicKeyset: pub, Strict: true})
	if err != nil || rep.Events != 12 || !rep.HeaderSigned || len(rep.Chains) != 0 {
		t.Fatalf("old export: %+v, %v", rep, err)
	}

	gz, err := os.Open("testdata/audit-main/tokenvault.db.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer gz.Close()
	zr, err := gzip.NewReader(gz)
	if err != nil {
		t.Fatal(err)
	}
	var db bytes.Buffer
	if _, err := db.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "tokenvault.db")
	if err := os.WriteFile(path, db.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	st := openStore(t, path, store.Options{})
	rep, err = VerifyStoreAudit(ctx, st, opts)
	if err != nil || rep.FirstSeq != 5 || rep.LastSeq != 14 || rep.Unsigned != 0 {
		t.Fatalf("old store: %+v, %v; want events 5..14 after the anchor at 4, all signed", rep, err)
	}

	kekJSON, err := os.ReadFile("testdata/audit-main/kek.json")
	if err != nil {
		t.Fatal(err)
	}
	kekPath := filepath.Join(t.TempDir(), "kek.json") // git keeps no 0600
	if err := os.WriteFile(kekPath, kekJSON, 0o600); err != nil {
		t.Fatal(err)
	}
	kek, err := insecurekek.Load(kekPath)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Open(ctx, Config{Store: st, KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Audit(ctx, AuditEvent{Method: "/continued", Outcome: OutcomeAllowed}); err != nil {
		t.Fatal(err)
	}
	evs, _, err := v.ListAudit(ctx, AuditFilter{AfterSeq: 14})
	if err != nil || len(evs) != 2 || evs[0].Seq != 15 || evs[0].Method != "MigrateSchema" || evs[1].Seq != 16 || evs[1].Method != "/continued" || evs[0].Replica != "" || evs[1].Replica != "" {
		t.Fatalf("the next events on the old chain = %+v, %v; want the migration at seq 15 and /continued at 16, no replica", evs, err)
	}
	for _, seq := range []uint64{15, 16} {
		var line []byte
		st.View(ctx, func(tx store.Tx) error { line = bytes.Clone(tx.Get(bucketAudit, seqKey(seq))); return nil })
		if bytes.Contains(line, []byte(`"replica"`)) {
			t.Errorf("an event of the single-process chain names a replica: %s", line)
		}
	}
	c, ok, err := v.Checkpoint(ctx)
	if err != nil || !ok || len(c.Heads) != 0 {
		t.Fatalf("checkpoint of the single chain = %+v, %v, %v; want the first format", c, ok, err)
	}
	if rep, err := VerifyStoreAudit(ctx, st, audit.Options{PublicKeyset: pub, Strict: true}); err != nil || rep.LastSeq != 16 {
		t.Fatalf("continued store: %+v, %v", rep, err)
	}

	// A replica joins: two chains, the old one with its pruning anchor.
	r1, err := Open(ctx, Config{Store: st, KEK: kek, ReplicaID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []*Vault{r1, v, r1} {
		if err := w.Audit(ctx, AuditEvent{Method: "/mixed", Outcome: OutcomeAllowed}); err != nil {
			t.Fatal(err)
		}
	}
	if c, ok, err := r1.Checkpoint(ctx); err != nil || !ok || len(c.Heads) != 2 || c.Seq != 19 {
		t.Fatalf("checkpoint of two chains = %+v, %v, %v", c, ok, err)
	}
	rep, err = VerifyStoreAudit(ctx, st, audit.Options{PublicKeyset: pub, Strict: true})
	if err != nil || len(rep.Chains) != 2 || rep.Events != 15 {
		t.Fatalf("store with two chains: %+v, %v", rep, err)
	}
	var buf bytes.Buffer
	if err := v.ExportAudit(ctx, 1, &buf); err != nil {
		t.Fatal(err)
	}
	rep, err = audit.Verify(bytes.NewReader(buf.Bytes()), audit.Options{PublicKeyset: pub, Strict: true})
	if err != nil || len(rep.Chains) != 2 || rep.FirstSeq != 5 {
		t.Fatalf("export with two chains: %+v, %v", rep, err)
	}
	// A partial export verifies on its own too.
	buf.Reset()
	if err := v.ExportAudit(ctx, 17, &buf); err != nil {
		t.Fatal(err)
	}
	var h audit.ExportHeader
	json.Unmarshal(bytes.SplitN(buf.Bytes(), []byte("\n"), 2)[0], &h)
	rep, err = audit.Verify(bytes.NewReader(buf.Bytes()), audit.Options{PublicKeyset: pub, Strict: true})
	if err != nil || rep.FirstSeq != 17 || rep.Events != 3 || len(h.Chains) != 2 {
		t.Fatalf("partial export with two chains: %+v, %v (header %+v)", rep, err, h)
	}
	// Pruning across chains keeps it verifiable.
	if _, err := v.PruneAudit(ctx, 17); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, err := VerifyStoreAudit(ctx, st, audit.Options{PublicKeyset: pub, Strict: true}); err != nil || rep.FirstSeq != 18 {
		t.Fatalf("after pruning through 17: %+v, %v", rep, err)
	}
	buf.Reset()
	if err := v.ExportAudit(ctx, 1, &buf); err != nil {
		t.Fatal(err)
	}
	if rep, err := audit.Verify(bytes.NewReader(buf.Bytes()), audit.Options{PublicKeyset: pub, Strict: true}); err != nil {
		t.Fatalf("export after pruning: %+v, %v", rep, err)
	}
}

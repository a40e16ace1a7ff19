package vault

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokenvault/tokenvault/vault/audit"
	"github.com/tokenvault/tokenvault/vault/store"
)

// witnessed makes events, signing a checkpoint after each call and handing it to a file
// witness; it returns the witness's checkpoints.
func witnessed(t *testing.T, v *Vault, calls int) []audit.Checkpoint {
	t.Helper()
	ctx := context.Background()
	w := FileWitness{Path: filepath.Join(t.TempDir(), "witness.jsonl")}
	for i := 0; i < calls; i++ {
		if _, err := v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: string(rune('a' + i))}}); err != nil {
			t.Fatal(err)
		}
		c, made, err := v.Checkpoint(ctx)
		if err != nil || !made {
			t.Fatalf("Checkpoint = %v, %v", made, err)
		}
		if err := w.Witness(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	info, err := os.Stat(w.Path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("witness file: %v, %v; want mode 0600", info, err)
	}
	f, _ := os.Open(w.Path)
	defer f.Close()
	cs, err := audit.ReadWitness(f)
	if err != nil || len(cs) != calls {
		t.Fatalf("ReadWitness = %d checkpoints, %v", len(cs), err)
	}
	return cs
}

// rewriteWithKey edits event seq, recomputes the chain and audit_head, and re-signs every
// checkpoint with the vault's own signing key: what an attacker holding the key can do.
func rewriteWithKey(t *testing.T, v *Vault, seq uint64) {
	t.Helper()
	err := v.store.Update(context.Background(), func(tx store.Tx) error {
		prev := ""
		var last []byte
		var lastSeq uint64
		var lines [][]byte
		if err := tx.Scan(bucketAudit, nil, nil, func(_, val []byte) error {
			lines = append(lines, append([]byte(nil), val...))
			return nil
		}); err != nil {
			return err
		}
		for _, val := range lines {
			var ev audit.Event
			if err := json.Unmarshal(val, &ev); err != nil {
				return err
			}
			if ev.Seq == seq {
				ev.Outcome, ev.Reason = OutcomeDenied, "rewritten"
			}
			if prev != "" {
				ev.PrevHash = prev
			}
			b, _ := json.Marshal(ev)
			if err := tx.Put(bucketAudit, seqKey(ev.Seq), b); err != nil {
				return err
			}
			prev, last, lastSeq = audit.Hash(b), b, ev.Seq
		}
		var ckeys [][]byte
		tx.Scan(bucketAuditCkpt, nil, nil, func(k, _ []byte) error { ckeys = append(ckeys, append([]byte(nil), k...)); return nil })
		for _, k := range ckeys {
			var c audit.Checkpoint
			json.Unmarshal(tx.Get(bucketAuditCkpt, k), &c)
			c.Hash = audit.Hash(tx.Get(bucketAudit, k))
			sig, err := v.keyring().Sign(audit.CheckpointMessage(c.Seq, c.Hash, c.Time))
			if err != nil {
				return err
			}
			c.Signature = base64.StdEncoding.EncodeToString(sig)
			b, _ := json.Marshal(c)
			tx.Put(bucketAuditCkpt, k, b)
		}
		head := make([]byte, 8, 40)
		binary.BigEndian.PutUint64(head, lastSeq)
		sum := audit.Hash(last)
		raw := make([]byte, 32)
		for i := range raw {
			var b byte
			for _, c := range sum[len(audit.HashPrefix)+2*i : len(audit.HashPrefix)+2*i+2] {
				b <<= 4
				if c <= '9' {
					b |= byte(c - '0')
				} else {
					b |= byte(c-'a') + 10
				}
			}
			raw[i] = b
		}
		return tx.Put(bucketMeta, metaAuditHead, append(head, raw...))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Probe 6: history rewritten and re-signed with the real signing key verifies without a
// witness (the key vouches for it), and is caught with the witness: in the store and in an
// export the vault itself signs afterwards.
func TestWitnessCatchesHistoryRewrittenWithTheSigningKey(t *testing.T) {
	ctx := context.Background()
	v, _ := openTest(t)
	cs := witnessed(t, v, 4) // events 1..4, each checkpointed and witnessed
	pub, _ := v.AuditPublicKeyset()
	opts := audit.Options{PublicKeyset: pub}
	if rep, err := VerifyStoreAudit(ctx, v.store, audit.Options{PublicKeyset: pub, Witnessed: cs}); err != nil || rep.Witnessed != 4 {
		t.Fatalf("honest trail with its witness: %+v, %v", rep, err)
	}
	rewriteWithKey(t, v, 2)
	if rep, err := VerifyStoreAudit(ctx, v.store, opts); err != nil {
		t.Fatalf("the rewrite is signed with the real key, so without a witness it verifies: %+v, %v", rep, err)
	}
	opts.Witnessed = cs
	rep, err := VerifyStoreAudit(ctx, v.store, opts)
	if !errors.Is(err, audit.ErrTampered) || rep.BadSeq != 2 || !strings.Contains(rep.Problem, "differs from witnessed checkpoint: history rewritten") {
		t.Fatalf("rewritten store with its witness: %+v, %v; want a failure at 2", rep, err)
	}
	var buf bytes.Buffer
	if err := v.ExportAudit(ctx, 1, &buf); err != nil {
		t.Fatal(err)
	}
	rep, err = audit.Verify(bytes.NewReader(buf.Bytes()), opts)
	if !errors.Is(err, audit.ErrTampered) || rep.BadSeq != 2 {
		t.Fatalf("export of the rewritten store with the witness: %+v, %v; want a failure at 2", rep, err)
	}
}

// Checkpoints and events deleted from the end of the store (a rollback) are caught by the
// witness; so is an export whose signed time is after a witnessed checkpoint it lacks.
func TestWitnessCatchesTruncation(t *testing.T) {
	ctx := context.Background()
	v, _ := openTest(t)
	cs := witnessed(t, v, 4)
	pub, _ := v.AuditPublicKeyset()
	var old bytes.Buffer
	if err := v.ExportAudit(ctx, 1, &old); err != nil {
		t.Fatal(err)
	}
	if err := v.store.Update(ctx, func(tx store.Tx) error {
		for _, s := range []uint64{3, 4} {
			tx.Delete(bucketAudit, seqKey(s))
			tx.Delete(bucketAuditCkpt, seqKey(s))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if rep, err := VerifyStoreAudit(ctx, v.store, audit.Options{PublicKeyset: pub}); err != nil {
		t.Fatalf("without a witness the truncated store verifies (rollback): %+v, %v", rep, err)
	}
	rep, err := VerifyStoreAudit(ctx, v.store, audit.Options{PublicKeyset: pub, Witnessed: cs})
	if !errors.Is(err, audit.ErrTampered) || rep.BadSeq != 3 || !strings.Contains(rep.Problem, "removed from the end") {
		t.Fatalf("truncated store with the witness: %+v, %v; want a failure at 3", rep, err)
	}
	// An export taken before later checkpoints is not truncated.
	rep, err = audit.Verify(bytes.NewReader(old.Bytes()), audit.Options{PublicKeyset: pub, Witnessed: cs[:2]})
	if err != nil || rep.Witnessed != 2 {
		t.Fatalf("honest export with its witness: %+v, %v", rep, err)
	}
}

package main

// audit verify against rewritten history (security issue 11, finding 2): every probe of the
// report, run with the real binary on trails made by a real server.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/signature"

	"github.com/tokenvault/tokenvault/vault/audit"
	"github.com/tokenvault/tokenvault/vault/store"
)

// auditFixture is a stopped server's data directory, an export of its whole trail and the
// trusted public key, fetched from the running server.
type auditFixture struct {
	data, export, pubkey, witness string
}

// newAuditFixture runs a server, makes events with two exports between them (each export
// signs a checkpoint first), exports everything, fetches the public key and stops cleanly.
func newAuditFixture(t *testing.T) auditFixture {
	t.Helper()
	dir := t.TempDir()
	fx := auditFixture{data: filepath.Join(dir, "data"), export: filepath.Join(dir, "audit.jsonl"), pubkey: filepath.Join(dir, "pub.json"), witness: filepath.Join(t.TempDir(), "witness.jsonl")}
	srv := startServer(t, fx.data, "--audit-witness-file", fx.witness)
	conn := []string{"--addr", srv.grpcAddr, "--token", rootToken}
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, childEnv(), append(args, conn...)...)
		if code != 0 {
			t.Fatalf("tokenvault %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		return out
	}
	for _, v := range []string{"4111111111111111", "5555555555554444", "4012888888881881"} {
		run("tokenize", "--template", "pan", "--domain", "acme", v)
	}
	// Event 1 is the dev root secret's; 2-4 the tokenizations.
	run("audit", "export", "--out", filepath.Join(dir, "first.jsonl")) // checkpoint at 4
	for _, v := range []string{"378282246310005", "6011111111111117"} {
		run("tokenize", "--template", "pan", "--domain", "acme", v)
	}
	run("audit", "export", "--out", fx.export) // checkpoint at 6
	fetchPubkey(t, srv, fx.pubkey)
	srv.stopClean()
	return fx
}

// fetchPubkey writes the server's audit public keyset to path.
func fetchPubkey(t *testing.T, srv *proc, path string) {
	t.Helper()
	code, body, err := httpDo(newHTTPClient(), "GET", "http://"+srv.httpAddr+"/v1/audit/public-key", rootToken, nil)
	if err != nil || code != 200 {
		t.Fatalf("GET /v1/audit/public-key = %d %s %v", code, body, err)
	}
	var pk struct {
		PublicKeyset string `json:"publicKeyset"`
	}
	if err := json.Unmarshal(body, &pk); err != nil || pk.PublicKeyset == "" {
		t.Fatalf("public key response %s: %v", body, err)
	}
	if err := os.WriteFile(path, []byte(pk.PublicKeyset), 0o600); err != nil {
		t.Fatal(err)
	}
}

// exportLines reads an export's lines.
func exportLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

func writeLines(t *testing.T, lines []string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tampered.jsonl")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func lineType(l string) string {
	var p struct {
		Type string `json:"type"`
	}
	json.Unmarshal([]byte(l), &p)
	return p.Type
}

// rechain rewrites event seq with edit and recomputes every prev_hash from there on, as
// anyone holding the file can (the chain has no key). Other lines are kept as they are.
func rechain(t *testing.T, lines []string, seq uint64, edit func(*audit.Event)) []string {
	t.Helper()
	out := append([]string(nil), lines...)
	prev, edited := "", false
	for i, l := range out {
		if lineType(l) != "" {
			continue
		}
		var ev audit.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Seq == seq {
			edit(&ev)
			edited = true
		}
		if edited && prev != "" {
			ev.PrevHash = prev
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
		prev = audit.Hash(b)
	}
	if !edited {
		t.Fatalf("no event %d to edit", seq)
	}
	return out
}

func withoutCheckpoints(lines []string, keep func(seq uint64) bool) []string {
	var out []string
	for _, l := range lines {
		if lineType(l) == "checkpoint" {
			var c audit.Checkpoint
			json.Unmarshal([]byte(l), &c)
			if !keep(c.Seq) {
				continue
			}
		}
		out = append(out, l)
	}
	return out
}

// mustFailVerify runs audit verify with args and wants a non-zero exit naming sequence seq.
func mustFailVerify(t *testing.T, seq uint64, args ...string) string {
	t.Helper()
	out, errOut, code := runCLI(t, childEnv(), append([]string{"audit", "verify"}, args...)...)
	want := "at sequence " + itoa(uint32(seq)) + ":"
	if code == 0 || !strings.Contains(errOut, want) {
		t.Fatalf("audit verify %s = exit %d, want a failure naming %q\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
	}
	return errOut
}

func editPurpose(ev *audit.Event) { ev.Outcome = "denied"; ev.Reason = "rewritten" }

// Probe 1: delete every checkpoint line, edit an event, recompute prev_hash forward.
func TestAuditVerifyRejectsRewrittenExportWithoutCheckpoints(t *testing.T) {
	fx := newAuditFixture(t)
	lines := rechain(t, withoutCheckpoints(exportLines(t, fx.export), func(uint64) bool { return false }), 2, editPurpose)
	errOut := mustFailVerify(t, 1, "--file", writeLines(t, lines), "--pubkey", fx.pubkey)
	t.Logf("rejected: %s", errOut)
}

// Probe 2: delete only the last checkpoint and edit an event it covered.
func TestAuditVerifyRejectsEditUnderDeletedLastCheckpoint(t *testing.T) {
	fx := newAuditFixture(t)
	lines := rechain(t, withoutCheckpoints(exportLines(t, fx.export), func(s uint64) bool { return s < 6 }), 5, editPurpose)
	mustFailVerify(t, 5, "--file", writeLines(t, lines), "--pubkey", fx.pubkey)
}

// Probe 3: delete the oldest events and move the header's from_seq to the next one.
func TestAuditVerifyRejectsCutStartOfExport(t *testing.T) {
	fx := newAuditFixture(t)
	lines := exportLines(t, fx.export)
	var hdr map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &hdr); err != nil {
		t.Fatal(err)
	}
	hdr["from_seq"] = 3
	h, _ := json.Marshal(hdr)
	cut := []string{string(h)}
	for _, l := range lines[1:] {
		var p struct {
			Type string `json:"type"`
			Seq  uint64 `json:"seq"`
		}
		json.Unmarshal([]byte(l), &p)
		if p.Seq >= 3 {
			cut = append(cut, l)
		}
	}
	// The header's signature no longer verifies: its start was moved.
	mustFailVerify(t, 3, "--file", writeLines(t, cut), "--pubkey", fx.pubkey)
	// Without the header's signature (an attacker can drop it) the start is no better.
	delete(hdr, "signature")
	h, _ = json.Marshal(hdr)
	cut[0] = string(h)
	mustFailVerify(t, 1, "--file", writeLines(t, cut), "--pubkey", fx.pubkey)
}

// tamperStore edits a stopped server's bbolt file.
func tamperStore(t *testing.T, data string, fn func(tx store.Tx)) {
	t.Helper()
	st, err := store.Open(filepath.Join(data, store.FileName), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Update(context.Background(), func(tx store.Tx) error { fn(tx); return nil }); err != nil {
		t.Fatal(err)
	}
}

func storeKeys(t *testing.T, tx store.Tx, b store.Bucket) [][]byte {
	var keys [][]byte
	if err := tx.Scan(b, nil, nil, func(k, _ []byte) error { keys = append(keys, append([]byte(nil), k...)); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// rechainStore edits event seq in the store, recomputes the chain and audit_head, and hands
// every checkpoint to ckpt (which may delete or re-sign it).
func rechainStore(t *testing.T, tx store.Tx, seq uint64, edit func(*audit.Event)) {
	var lines []string
	for _, k := range storeKeys(t, tx, "audit") {
		lines = append(lines, string(tx.Get("audit", k)))
	}
	lines = rechain(t, lines, seq, edit)
	var ev audit.Event
	for _, l := range lines {
		json.Unmarshal([]byte(l), &ev)
		k := make([]byte, 8)
		binary.BigEndian.PutUint64(k, ev.Seq)
		tx.Put("audit", k, []byte(l))
	}
	last := []byte(lines[len(lines)-1])
	head := make([]byte, 8, 40)
	binary.BigEndian.PutUint64(head, ev.Seq)
	sum := audit.Hash(last)
	raw, _ := hexDecode(strings.TrimPrefix(sum, audit.HashPrefix))
	tx.Put("meta", []byte("audit_head"), append(head, raw...))
}

func hexDecode(s string) ([]byte, error) {
	out := make([]byte, len(s)/2)
	for i := range out {
		var b byte
		for _, c := range s[2*i : 2*i+2] {
			b <<= 4
			switch {
			case c >= '0' && c <= '9':
				b |= byte(c - '0')
			default:
				b |= byte(c-'a') + 10
			}
		}
		out[i] = b
	}
	return out, nil
}

// Probe 4: with the server stopped, edit an event in the bbolt file, recompute the chain and
// audit_head, delete the checkpoints: verify --data must fail, with and without --pubkey.
func TestAuditVerifyDataRejectsRewrittenStore(t *testing.T) {
	fx := newAuditFixture(t)
	tamperStore(t, fx.data, func(tx store.Tx) {
		rechainStore(t, tx, 2, editPurpose)
		for _, k := range storeKeys(t, tx, "auditckpt") {
			tx.Delete("auditckpt", k)
		}
	})
	mustFailVerify(t, 1, "--data", fx.data, "--pubkey", fx.pubkey)
	mustFailVerify(t, 1, "--data", fx.data)
	// With the witness too (it holds the checkpoint signed at shutdown, which no longer matches).
	errOut := mustFailVerify(t, 1, "--data", fx.data, "--pubkey", fx.pubkey, "--witness", fx.witness)
	if !strings.Contains(errOut, "differs from witnessed checkpoint: history rewritten") {
		t.Fatalf("verify --witness of a rewritten store: %s", errOut)
	}
}

// Honest trails verify: the export and the stopped server's data directory.
func TestAuditVerifyHonestTrails(t *testing.T) {
	fx := newAuditFixture(t)
	for _, args := range [][]string{{"--file", fx.export, "--pubkey", fx.pubkey}, {"--data", fx.data, "--pubkey", fx.pubkey}, {"--file", fx.export, "--pubkey", fx.pubkey, "--strict"}, {"--data", fx.data, "--pubkey", fx.pubkey, "--strict"},
		{"--data", fx.data, "--pubkey", fx.pubkey, "--witness", fx.witness, "--strict"}, {"--file", fx.export, "--pubkey", fx.pubkey, "--witness", fx.witness}} {
		out, errOut, code := runCLI(t, childEnv(), append([]string{"audit", "verify"}, args...)...)
		if code != 0 || !strings.Contains(out, "OK") {
			t.Fatalf("audit verify %s = exit %d\n%s\n%s", strings.Join(args, " "), code, out, errOut)
		}
	}
}

// Probe 5: --data --pubkey must use that key, never the one stored in the data: a store whose
// history was rewritten and re-signed under a new key (stored in its place) fails; without
// --pubkey it verifies under the stored key, and verify says so loudly.
func TestAuditVerifyDataHonoursPubkey(t *testing.T) {
	fx := newAuditFixture(t)
	h, err := keyset.NewHandle(signature.ED25519KeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	signer, err := signature.NewSigner(h)
	if err != nil {
		t.Fatal(err)
	}
	pubH, _ := h.Public()
	var pub bytes.Buffer
	if err := pubH.WriteWithNoSecrets(keyset.NewJSONWriter(&pub)); err != nil {
		t.Fatal(err)
	}
	tamperStore(t, fx.data, func(tx store.Tx) {
		rechainStore(t, tx, 2, editPurpose)
		for _, k := range storeKeys(t, tx, "auditckpt") {
			seq := binary.BigEndian.Uint64(k)
			c := audit.Checkpoint{Type: "checkpoint", Seq: seq, Hash: audit.Hash(tx.Get("audit", k)), Time: time.Now().UTC()}
			sig, err := signer.Sign(audit.CheckpointMessage(c.Seq, c.Hash, c.Time))
			if err != nil {
				t.Fatal(err)
			}
			c.Signature = base64.StdEncoding.EncodeToString(sig)
			b, _ := json.Marshal(c)
			tx.Put("auditckpt", k, b)
		}
		tx.Put("meta", []byte("audit_pubkey"), pub.Bytes())
	})
	mustFailVerify(t, 4, "--data", fx.data, "--pubkey", fx.pubkey)
	out, errOut, code := runCLI(t, childEnv(), "audit", "verify", "--data", fx.data, "-o", "json")
	if code != 0 || !strings.Contains(errOut, "WARNING: trusting the public key stored in the data") || !strings.Contains(out, `"key_source": "data"`) {
		t.Fatalf("verify --data without --pubkey = exit %d, want 0 with a loud warning and key_source data\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// Probe 8: a tail younger than the checkpoint interval (the server was killed before its next
// checkpoint) passes, reported as unsigned; with --strict it fails at its first event.
func TestAuditVerifyYoungTail(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	pubkey := filepath.Join(t.TempDir(), "pub.json")
	srv := startServer(t, data)
	conn := []string{"--addr", srv.grpcAddr, "--token", rootToken}
	run := func(args ...string) {
		t.Helper()
		if _, errOut, code := runCLI(t, childEnv(), append(args, conn...)...); code != 0 {
			t.Fatalf("tokenvault %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
	}
	run("tokenize", "--template", "ssn", "123-45-6789", "234-56-7890", "345-67-8901")
	run("audit", "export", "--out", filepath.Join(t.TempDir(), "x.jsonl")) // checkpoint at 2 (1 is the root secret's event)
	run("tokenize", "--template", "ssn", "456-78-9012")
	run("tokenize", "--template", "ssn", "567-89-0123")
	fetchPubkey(t, srv, pubkey)
	srv.kill() // before the next checkpoint
	out, errOut, code := runCLI(t, childEnv(), "audit", "verify", "--data", data, "--pubkey", pubkey)
	if code != 0 || !strings.Contains(out+errOut, "2 events after the last checkpoint are unsigned") {
		t.Fatalf("verify of a young unsigned tail = exit %d, want 0 and the tail reported\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	mustFailVerify(t, 3, "--data", data, "--pubkey", pubkey, "--strict")
}

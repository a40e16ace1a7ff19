package audit_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/signature"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/tokenvault/tokenvault/vault/audit"
)

// trail builds trails in the stored format, signed with a fresh Ed25519 key.
type trail struct {
	t      *testing.T
	signer tink.Signer
	pub    []byte
	lines  [][]byte // event lines, seq = index+1
	t0     time.Time
}

func newTrail(t *testing.T, events int, step time.Duration) *trail {
	h, err := keyset.NewHandle(signature.ED25519KeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	s, _ := signature.NewSigner(h)
	ph, _ := h.Public()
	var pub bytes.Buffer
	if err := ph.WriteWithNoSecrets(keyset.NewJSONWriter(&pub)); err != nil {
		t.Fatal(err)
	}
	tr := &trail{t: t, signer: s, pub: pub.Bytes(), t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	prev := audit.ZeroHash
	for i := 1; i <= events; i++ {
		b, _ := json.Marshal(audit.Event{Seq: uint64(i), Time: tr.t0.Add(time.Duration(i) * step), Method: "m", Outcome: "allowed", PrevHash: prev})
		tr.lines = append(tr.lines, b)
		prev = audit.Hash(b)
	}
	return tr
}

func (tr *trail) sign(msg []byte) string {
	sig, err := tr.signer.Sign(msg)
	if err != nil {
		tr.t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func (tr *trail) ckpt(seq uint64, at time.Time) audit.Checkpoint {
	h := audit.Hash(tr.lines[seq-1])
	return audit.Checkpoint{Type: "checkpoint", Seq: seq, Hash: h, Time: at, Signature: tr.sign(audit.CheckpointMessage(seq, h, at))}
}

// export renders events from..to with checkpoints at ckpts (and a signed header when signed).
func (tr *trail) export(from, to uint64, signed bool, ckpts ...uint64) string {
	h := audit.ExportHeader{Type: "header", FromSeq: from, PublicKeyset: tr.pub}
	if signed {
		var ev audit.Event
		json.Unmarshal(tr.lines[from-1], &ev)
		h.PrevHash, h.ToSeq, h.ToHash, h.Time = ev.PrevHash, to, audit.Hash(tr.lines[to-1]), tr.t0.Add(time.Hour)
		h.Signature = tr.sign(audit.ExportMessage(h))
	}
	hb, _ := json.Marshal(h)
	out := []string{string(hb)}
	for s := from; s <= to; s++ {
		out = append(out, string(tr.lines[s-1]))
		for _, c := range ckpts {
			if c == s {
				cb, _ := json.Marshal(tr.ckpt(s, tr.t0.Add(time.Duration(s)*time.Second+time.Millisecond)))
				out = append(out, string(cb))
			}
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// store feeds a store's trail (no header) to a Verifier.
func (tr *trail) store(opts audit.Options, ckpts map[uint64]time.Time) (audit.Report, error) {
	v, err := audit.NewVerifier(opts)
	if err != nil {
		tr.t.Fatal(err)
	}
	if err := v.Start(0, "", ""); err != nil {
		return v.Finish()
	}
	for i, l := range tr.lines {
		v.Event(l)
		if at, ok := ckpts[uint64(i+1)]; ok {
			v.Checkpoint(tr.ckpt(uint64(i+1), at))
		}
	}
	return v.Finish()
}

func wantFail(t *testing.T, rep audit.Report, err error, seq uint64, sub string) {
	t.Helper()
	if !errors.Is(err, audit.ErrTampered) || rep.BadSeq != seq || !strings.Contains(rep.Problem, sub) {
		t.Fatalf("got %+v, %v; want a failure at %d mentioning %q", rep, err, seq, sub)
	}
}

func TestVerifyExport(t *testing.T) {
	tr := newTrail(t, 6, time.Second)
	key := audit.Options{PublicKeyset: tr.pub}
	rep, err := audit.Verify(strings.NewReader(tr.export(1, 6, true)), key)
	if err != nil || !rep.HeaderSigned || rep.SignedUpTo != 6 || rep.Unsigned != 0 || rep.KeySource != audit.KeyFromPubkey {
		t.Fatalf("signed export without checkpoints: %+v, %v", rep, err)
	}
	// A partial export is covered from its signed start.
	if rep, err := audit.Verify(strings.NewReader(tr.export(3, 6, true)), key); err != nil || rep.FirstSeq != 3 {
		t.Fatalf("signed partial export: %+v, %v", rep, err)
	}
	// Without a key: the header's, reported.
	if rep, _ := audit.Verify(strings.NewReader(tr.export(1, 6, true)), audit.Options{}); rep.KeySource != audit.KeyFromExport {
		t.Fatalf("key source without a key = %q", rep.KeySource)
	}
	// Unsigned header (older export): from event 1 and fully checkpointed passes, with a warning.
	rep, err = audit.Verify(strings.NewReader(tr.export(1, 6, false, 3, 6)), key)
	if err != nil || len(rep.Warnings) == 0 {
		t.Fatalf("unsigned export covered by checkpoints: %+v, %v", rep, err)
	}
	rep, err = audit.Verify(strings.NewReader(tr.export(1, 6, false, 3, 6)), audit.Options{PublicKeyset: tr.pub, Strict: true})
	wantFail(t, rep, err, 1, "not signed")
	rep, err = audit.Verify(strings.NewReader(tr.export(1, 6, false, 3)), key)
	wantFail(t, rep, err, 4, "header is not signed")
	rep, err = audit.Verify(strings.NewReader(tr.export(1, 6, false)), key)
	wantFail(t, rep, err, 1, "not covered by any valid checkpoint")
	rep, err = audit.Verify(strings.NewReader(tr.export(3, 6, false, 6)), key)
	wantFail(t, rep, err, 1, "nothing signed says where it starts")
	// Cut at the end, or events appended.
	cut := tr.export(1, 6, true)
	cut = cut[:strings.LastIndex(strings.TrimSuffix(cut, "\n"), "\n")+1]
	rep, err = audit.Verify(strings.NewReader(cut), key)
	wantFail(t, rep, err, 6, "removed from the end")
	// Another key.
	other := newTrail(t, 1, time.Second)
	rep, err = audit.Verify(strings.NewReader(tr.export(1, 6, true)), audit.Options{PublicKeyset: other.pub})
	wantFail(t, rep, err, 1, "signature does not verify")
}

func TestVerifyStoreTail(t *testing.T) {
	tr := newTrail(t, 6, time.Second) // events at t0+1s .. t0+6s
	key := audit.Options{PublicKeyset: tr.pub}
	at := func(s uint64) time.Time { return tr.t0.Add(time.Duration(s)*time.Second + time.Millisecond) }
	rep, err := tr.store(key, map[uint64]time.Time{6: at(6)})
	if err != nil || rep.Unsigned != 0 || rep.SignedUpTo != 6 {
		t.Fatalf("fully checkpointed store: %+v, %v", rep, err)
	}
	// A tail within the interval of the last checkpoint passes, reported.
	rep, err = tr.store(key, map[uint64]time.Time{3: at(3)})
	if err != nil || rep.Unsigned != 3 || len(rep.Warnings) != 1 {
		t.Fatalf("young tail: %+v, %v", rep, err)
	}
	rep, err = tr.store(audit.Options{PublicKeyset: tr.pub, Strict: true}, map[uint64]time.Time{3: at(3)})
	wantFail(t, rep, err, 4, "--strict")
	// Older than the interval: checkpoints were deleted.
	rep, err = tr.store(audit.Options{PublicKeyset: tr.pub, CheckpointInterval: time.Second}, map[uint64]time.Time{1: at(1)})
	wantFail(t, rep, err, 2, "longer than the checkpoint interval")
	rep, err = tr.store(key, nil)
	wantFail(t, rep, err, 1, "not covered by any valid checkpoint")
}

func TestVerifyWitness(t *testing.T) {
	tr := newTrail(t, 6, time.Second)
	at := tr.t0.Add(time.Minute)
	witnessed := []audit.Checkpoint{tr.ckpt(2, at), tr.ckpt(5, at)}
	var wf bytes.Buffer
	for _, c := range witnessed {
		b, _ := json.Marshal(c)
		wf.Write(append(b, '\n'))
	}
	cs, err := audit.ReadWitness(&wf)
	if err != nil || len(cs) != 2 {
		t.Fatalf("ReadWitness = %v, %v", cs, err)
	}
	opts := audit.Options{PublicKeyset: tr.pub, Witnessed: cs}
	rep, err := tr.store(opts, map[uint64]time.Time{6: tr.t0.Add(time.Hour)})
	if err != nil || rep.Witnessed != 2 {
		t.Fatalf("honest store with witness: %+v, %v", rep, err)
	}
	// Witnessed checkpoints count as coverage: deleting the trail's checkpoints does not help.
	rep, err = tr.store(audit.Options{PublicKeyset: tr.pub, Witnessed: cs, Strict: true}, nil)
	wantFail(t, rep, err, 6, "--strict")
	// Rewritten with the key (the attacker re-signs): the witness disagrees.
	forged := newTrail(t, 0, 0)
	forged.signer, forged.pub = tr.signer, tr.pub
	forged.lines = append(forged.lines, tr.lines[:3]...)
	ev := audit.Event{Seq: 4, Time: tr.t0.Add(4 * time.Second), Method: "m", Outcome: "denied", PrevHash: audit.Hash(tr.lines[2])}
	b, _ := json.Marshal(ev)
	forged.lines = append(forged.lines, b)
	for s := 5; s <= 6; s++ {
		var e audit.Event
		json.Unmarshal(tr.lines[s-1], &e)
		e.PrevHash = audit.Hash(forged.lines[s-2])
		b, _ := json.Marshal(e)
		forged.lines = append(forged.lines, b)
	}
	rep, err = forged.store(opts, map[uint64]time.Time{6: tr.t0.Add(time.Hour)})
	wantFail(t, rep, err, 3, "differs from witnessed checkpoint: history rewritten")
	// Truncated: a witnessed checkpoint past the end of a store.
	short := &trail{t: t, signer: tr.signer, pub: tr.pub, lines: tr.lines[:4], t0: tr.t0}
	rep, err = short.store(opts, map[uint64]time.Time{4: tr.t0.Add(time.Hour)})
	wantFail(t, rep, err, 5, "removed from the end")
	// A witnessed checkpoint by another key.
	other := newTrail(t, 6, time.Second)
	rep, err = tr.store(audit.Options{PublicKeyset: tr.pub, Witnessed: []audit.Checkpoint{other.ckpt(2, at)}}, nil)
	wantFail(t, rep, err, 2, "does not verify")
	if _, err := audit.ReadWitness(strings.NewReader("{\"seq\":1}\n")); err == nil {
		t.Fatal("ReadWitness accepted a line that is not a signed checkpoint")
	}
}

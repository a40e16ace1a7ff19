package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// TestAuditEventAtAndVerifyDetectTampering: an intact trail verifies event by event and as a
// whole; an event edited in the store breaks the link of the next one and the signature
// coverage of both; a checkpoint with a forged signature signs nothing.
func TestAuditEventAtAndVerifyDetectTampering(t *testing.T) {
	ctx := WithRequest(context.Background(), RequestInfo{RequestID: "req-1", Method: "/test", Principal: Principal{ID: "root", Role: RoleAdmin}})
	v, st := openTest(t)
	for _, d := range []string{"a", "b", "c", "d"} {
		if _, err := v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: d}}); err != nil {
			t.Fatal(err)
		}
		if d == "b" {
			if _, _, err := v.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Events after the last checkpoint, within its interval: reported, not a failure.
	if status, err := v.VerifyAudit(ctx, 0); err != nil || !status.Verified || status.UnsignedCount == 0 {
		t.Fatalf("intact trail with a young unsigned tail: %+v, %v", status, err)
	}
	c, made, err := v.Checkpoint(ctx)
	if err != nil || !made {
		t.Fatal(made, err)
	}
	head := c.Seq
	status, err := v.VerifyAudit(ctx, 0)
	if err != nil || !status.Verified || status.HeadSeq != head || status.Checkpoint.Seq != head || status.UnsignedCount != 0 {
		t.Fatalf("intact trail: %+v, %v", status, err)
	}
	for seq := uint64(1); seq <= head; seq++ {
		ev, line, pos, err := v.AuditEventAt(ctx, seq)
		if err != nil || ev.Seq != seq || len(line) == 0 || !pos.Verified() || pos.CheckpointSeq < seq {
			t.Fatalf("event %d: %+v %+v %v", seq, ev, pos, err)
		}
	}
	if _, _, _, err := v.AuditEventAt(ctx, head+1); err != ErrNoAuditEvent {
		t.Fatalf("event past the head: %v, want ErrNoAuditEvent", err)
	}

	// Edit event 3 in the store (after the first checkpoint, before the last).
	const edited = 3
	_, line, _, err := v.AuditEventAt(ctx, edited)
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(line, &ev); err != nil {
		t.Fatal(err)
	}
	ev["outcome"] = "failed"
	forged, _ := json.Marshal(ev)
	if bytes.Equal(forged, line) {
		t.Fatal("the edit changed nothing")
	}
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.Put(bucketAudit, seqKey(edited), forged) }); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= head; seq++ {
		_, _, pos, err := v.AuditEventAt(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		wantLinked := seq != edited+1
		// A checkpoint before the edit still holds; so does the last one for the events after
		// the edit (the chain from them to it is intact).
		wantSigned := seq > edited || pos.CheckpointSeq < edited
		if pos.Linked != wantLinked || pos.Signed != wantSigned || pos.Verified() != (wantLinked && wantSigned) {
			t.Errorf("after editing event %d, event %d: %+v (want linked %v, signed %v)", edited, seq, pos, wantLinked, wantSigned)
		}
	}
	status, err = v.VerifyAudit(ctx, 0)
	if err != nil || status.Verified || status.Problem == "" {
		t.Fatalf("edited trail: %+v, %v; want a problem", status, err)
	}

	// Put the event back, and forge the last checkpoint's signature instead.
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.Put(bucketAudit, seqKey(edited), line) }); err != nil {
		t.Fatal(err)
	}
	c.Time = c.Time.Add(time.Second) // the signature no longer matches what it signs
	blob, _ := json.Marshal(c)
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.Put(bucketAuditCkpt, seqKey(c.Seq), blob) }); err != nil {
		t.Fatal(err)
	}
	_, _, pos, err := v.AuditEventAt(ctx, head)
	if err != nil || !pos.Linked || pos.Signed || pos.CheckpointSeq != head {
		t.Errorf("under a forged checkpoint: %+v, %v; want linked, not signed", pos, err)
	}
	if status, err := v.VerifyAudit(ctx, 0); err != nil || status.Verified {
		t.Errorf("forged checkpoint: %+v, %v; want a problem", status, err)
	}
}

// TestAuditStatsWindowBuckets: events land in the bucket of their time; events outside the
// window are not counted, including those just before it that a backtrack reads.
func TestAuditStatsWindowBuckets(t *testing.T) {
	clk := newClock(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	v, _ := openTest(t, withClock(clk))
	ctx := WithRequest(context.Background(), RequestInfo{RequestID: "r", Method: "/tokenvault.v1.TokenService/Detokenize", Principal: Principal{ID: "root", Role: RoleAdmin}})
	res, err := v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	reveal := func(n int) {
		refs := make([]TokenRef, n)
		for i := range refs {
			refs[i] = TokenRef{Token: res[0].Token, Domain: "a"}
		}
		if _, err := v.Detokenize(ctx, "p", refs); err != nil {
			t.Fatal(err)
		}
	}
	reveal(1) // 00:00, before the window
	start := clk.now().Add(time.Hour)
	clk.add(time.Hour + 30*time.Minute)
	reveal(2) // bucket 0
	clk.add(2 * time.Hour)
	reveal(3) // bucket 2
	if err := v.AuditDenial(ctx, "no"); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Hour)
	reveal(4) // 05:30: past the window's end
	st, err := v.AuditStatsWindow(ctx, start, start.Add(4*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if st.Reveals != 5 || st.DenialTotal != 1 || len(st.Series) != 1 || len(st.Denials) != 4 {
		t.Fatalf("stats %+v", st)
	}
	if got := st.Series[0].Reveals; got[0] != 2 || got[1] != 0 || got[2] != 3 || got[3] != 0 || st.Denials[2] != 1 {
		t.Errorf("buckets %v, denials %v", got, st.Denials)
	}
	if _, err := v.AuditStatsWindow(ctx, start, start, time.Hour); err == nil {
		t.Error("an empty window was accepted")
	}
}

// BenchmarkAuditStatsWindow counts a trail of 20,000 events (a third of them reveals) over a
// window that holds them all: the cost of GET /v1/audit/stats, which reads every event of
// its window.
func BenchmarkAuditStatsWindow(b *testing.B) {
	v, _ := openTest(b, withStoreOptions(store.Options{NoSync: true}))
	ctx := WithRequest(context.Background(), RequestInfo{RequestID: "r", Method: "/tokenvault.v1.VendorService/VendorDetokenize", Principal: Principal{ID: "c", Role: RoleVendor, Vendor: "acme"}})
	const n = 20000
	for i := range n {
		ev := v.newEvent(ctx, "")
		ev.Outcome = OutcomeAllowed
		if i%3 == 0 {
			ev.Allowed, ev.GrantIDs = 2, []string{"grant_1"}
		}
		if err := v.Audit(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
	end := v.now().Add(time.Hour)
	b.ResetTimer()
	for b.Loop() {
		st, err := v.AuditStatsWindow(ctx, end.Add(-30*24*time.Hour), end, 24*time.Hour)
		if err != nil || st.Reveals == 0 {
			b.Fatal(st.Reveals, err)
		}
	}
}

package vault

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testpg"
	"github.com/tokenvault/tokenvault/vault/audit"
	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/store/pgstore"
)

// Audit across replicas: several vaults, each with its own ReplicaID (its own audit chain),
// over one store, writing at once; then the store is tampered with directly (SQL on
// PostgreSQL, the bbolt file through its own transactions) and verification, of the store and
// of an export taken from it, must fail.

// chainsEnv is N vaults over one store.
type chainsEnv struct {
	vaults []*Vault
	st     store.Store // for verification and restoring
	// raw tampering, straight in the database: PostgreSQL SQL, or bbolt transactions.
	put    func(t *testing.T, b store.Bucket, key, value []byte)
	delete func(t *testing.T, b store.Bucket, key []byte)
}

var replicaIDs = []string{"a", "b", "c"}

func openChainsBolt(t *testing.T) *chainsEnv {
	st := openStore(t, filepath.Join(t.TempDir(), "v.db"), store.Options{})
	kek := newKEK(t)
	e := &chainsEnv{st: st}
	for _, id := range replicaIDs {
		v, err := Open(context.Background(), Config{Store: st, KEK: kek, ReplicaID: id})
		if err != nil {
			t.Fatal(err)
		}
		e.vaults = append(e.vaults, v)
	}
	e.put = func(t *testing.T, b store.Bucket, key, value []byte) {
		if err := st.Update(context.Background(), func(tx store.Tx) error { return tx.Put(b, key, value) }); err != nil {
			t.Fatal(err)
		}
	}
	e.delete = func(t *testing.T, b store.Bucket, key []byte) {
		if err := st.Update(context.Background(), func(tx store.Tx) error { return tx.Delete(b, key) }); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func openChainsPG(t *testing.T) *chainsEnv {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	c := testpg.Start(t)
	url := c.CreateDB(t, "chains")
	kek := newKEK(t)
	e := &chainsEnv{}
	for _, id := range replicaIDs {
		st := openPG(t, url)
		v, err := Open(context.Background(), Config{Store: st, KEK: kek, ReplicaID: id})
		if err != nil {
			t.Fatal(err)
		}
		e.vaults = append(e.vaults, v)
		if e.st == nil {
			e.st = st
		}
	}
	e.put = func(t *testing.T, b store.Bucket, key, value []byte) {
		c.Exec(t, "chains", `INSERT INTO tokenvault_kv (bucket, key, value) VALUES ($1, $2, $3)
ON CONFLICT (bucket, key) DO UPDATE SET value = excluded.value`, string(b), key, value)
	}
	e.delete = func(t *testing.T, b store.Bucket, key []byte) {
		c.Exec(t, "chains", `DELETE FROM tokenvault_kv WHERE bucket = $1 AND key = $2`, string(b), key)
	}
	return e
}

// openPG opens a pgstore pool on url, closed at cleanup.
func openPG(tb testing.TB, url string) *pgstore.Postgres {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := pgstore.Open(ctx, url, pgstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// write has every vault tokenize and detokenize at once, from several goroutines each.
func (e *chainsEnv) write(t *testing.T, rounds int) {
	var wg sync.WaitGroup
	for i, v := range e.vaults {
		for g := range 3 {
			wg.Go(func() {
				ctx := WithRequest(context.Background(), RequestInfo{RequestID: fmt.Sprintf("r%d-%d", i, g), Method: "/test", Principal: Principal{ID: "root", Role: RoleAdmin}})
				for r := range rounds {
					res, err := v.Tokenize(ctx, []TokenizeItem{{Value: fmt.Sprintf("value %d %d %d", i, g, r), Template: "opaque"}, {Value: "shared", Template: "opaque"}})
					if err != nil {
						t.Errorf("replica %s: Tokenize: %v", replicaIDs[i], err)
						return
					}
					if _, err := v.Detokenize(ctx, "p", []TokenRef{{Token: res[0].Token}}); err != nil {
						t.Errorf("replica %s: Detokenize: %v", replicaIDs[i], err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
}

type storedEvent struct {
	seq     uint64
	replica string
	line    []byte
}

// events returns the stored events in sequence order.
func (e *chainsEnv) events(t *testing.T) []storedEvent {
	var out []storedEvent
	err := e.st.View(context.Background(), func(tx store.Tx) error {
		out = out[:0]
		return tx.Scan(bucketAudit, nil, nil, func(k, v []byte) error {
			var ev AuditEvent
			if err := json.Unmarshal(v, &ev); err != nil {
				return err
			}
			out = append(out, storedEvent{binary.BigEndian.Uint64(k), ev.Replica, bytes.Clone(v)})
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// verify verifies the store directly and an export taken from it, with the trusted key and
// --strict (everything was checkpointed); it returns both reports and errors.
func (e *chainsEnv) verify(t *testing.T) (stRep audit.Report, stErr error, exRep audit.Report, exErr error) {
	ctx := context.Background()
	pub, err := e.vaults[0].AuditPublicKeyset()
	if err != nil {
		t.Fatal(err)
	}
	opts := audit.Options{PublicKeyset: pub, Strict: true}
	stRep, stErr = VerifyStoreAudit(ctx, e.st, opts)
	var buf bytes.Buffer
	if err := e.vaults[1].ExportAudit(ctx, 1, &buf); err != nil {
		t.Fatal(err)
	}
	exRep, exErr = audit.Verify(&buf, opts)
	return
}

func TestAuditChainsBolt(t *testing.T) { testAuditChains(t, openChainsBolt(t)) }

func TestAuditChainsPostgres(t *testing.T) { testAuditChains(t, openChainsPG(t)) }

func testAuditChains(t *testing.T, e *chainsEnv) {
	ctx := context.Background()
	e.write(t, 4)
	// A hole in the sequence (on PostgreSQL rolled-back transactions leave them too), where
	// an event can be inserted.
	if err := e.st.Update(ctx, func(tx store.Tx) error { _, err := tx.NextSequence(bucketAudit); return err }); err != nil {
		t.Fatal(err)
	}
	e.write(t, 2)
	if _, ok, err := e.vaults[2].Checkpoint(ctx); err != nil || !ok {
		t.Fatalf("Checkpoint = %v, %v", ok, err)
	}
	rep, err, xrep, xerr := e.verify(t)
	if err != nil || xerr != nil {
		t.Fatalf("honest trail: store %+v, %v; export %+v, %v", rep, err, xrep, xerr)
	}
	// Each replica has a chain per concurrent writer (lanes: "b", "b/1", …).
	if len(rep.Chains) < 3 || rep.Unsigned != 0 || rep.Events != 3*3*6*2 || !xrep.HeaderSigned || xrep.Events != rep.Events {
		t.Fatalf("honest trail: store %+v; export %+v; want at least 3 chains, 108 events, all signed", rep, xrep)
	}
	evs := e.events(t)
	var hole uint64 // a hole after b's first event
	for i, seenB := 1, false; i < len(evs) && hole == 0; i++ {
		seenB = seenB || evs[i-1].replica == "b"
		if seenB && evs[i].seq > evs[i-1].seq+1 {
			hole = evs[i-1].seq + 1
		}
	}
	if hole == 0 {
		t.Fatal("no hole in the sequence")
	}
	// byReplica lists the indexes in evs of one replica's events.
	byReplica := func(r string) []int {
		var out []int
		for i, ev := range evs {
			if ev.replica == r {
				out = append(out, i)
			}
		}
		return out
	}
	// allOf lists the indexes of every event of one replica, all its lanes.
	allOf := func(r string) []int {
		var out []int
		for i, ev := range evs {
			if ev.replica == r || strings.HasPrefix(ev.replica, r+"/") {
				out = append(out, i)
			}
		}
		return out
	}
	bs := byReplica("b")
	var mid storedEvent // a reveal of b's, in the middle of its chain
	for _, i := range bs[len(bs)/2:] {
		if bytes.Contains(evs[i].line, []byte(`"purpose":"p"`)) {
			mid = evs[i]
			break
		}
	}
	restore := func(t *testing.T) {
		t.Helper()
		// Put every original back, and remove what is not an original.
		orig := map[uint64]bool{}
		for _, ev := range evs {
			orig[ev.seq] = true
		}
		for _, ev := range e.events(t) {
			if !orig[ev.seq] {
				e.delete(t, bucketAudit, seqKey(ev.seq))
			}
		}
		for _, ev := range evs {
			e.put(t, bucketAudit, seqKey(ev.seq), ev.line)
		}
	}
	cases := []struct {
		name   string
		tamper func(t *testing.T)
	}{
		{"edited event", func(t *testing.T) {
			e.put(t, bucketAudit, seqKey(mid.seq), bytes.Replace(mid.line, []byte(`"purpose":"p"`), []byte(`"purpose":"q"`), 1))
		}},
		{"deleted event in the middle of a chain", func(t *testing.T) {
			e.delete(t, bucketAudit, seqKey(mid.seq))
		}},
		{"inserted event", func(t *testing.T) {
			// A copy of the b event before the hole, chained to it, at the hole.
			var prev storedEvent
			for _, ev := range evs {
				if ev.seq < hole && ev.replica == "b" {
					prev = ev
				}
			}
			var fake AuditEvent
			json.Unmarshal(prev.line, &fake)
			fake.Seq, fake.PrevHash, fake.Purpose = hole, audit.Hash(prev.line), "forged"
			line, _ := json.Marshal(fake)
			e.put(t, bucketAudit, seqKey(hole), line)
		}},
		{"two events swapped", func(t *testing.T) {
			x, y := evs[bs[2]], evs[bs[3]]
			e.put(t, bucketAudit, seqKey(x.seq), y.line)
			e.put(t, bucketAudit, seqKey(y.seq), x.line)
		}},
		{"a replica's events deleted", func(t *testing.T) {
			for _, i := range allOf("c") {
				e.delete(t, bucketAudit, seqKey(evs[i].seq))
			}
		}},
		{"a chain's tail truncated before a checkpoint", func(t *testing.T) {
			for _, i := range bs[len(bs)-3:] {
				e.delete(t, bucketAudit, seqKey(evs[i].seq))
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.tamper(t)
			rep, err, xrep, xerr := e.verify(t)
			restore(t)
			if !errors.Is(err, audit.ErrTampered) || rep.OK() {
				t.Errorf("store verification = %+v, %v; want ErrTampered", rep, err)
			} else {
				t.Logf("store: at %d (%s): %s", rep.BadSeq, rep.Replica, rep.Problem)
			}
			if !errors.Is(xerr, audit.ErrTampered) || xrep.OK() {
				t.Errorf("export verification = %+v, %v; want ErrTampered", xrep, xerr)
			} else {
				t.Logf("export: at %d (%s): %s", xrep.BadSeq, xrep.Replica, xrep.Problem)
			}
		})
	}
	// Restored: it verifies again (so the failures above were the tampering's).
	if rep, err, xrep, xerr := e.verify(t); err != nil || xerr != nil {
		t.Fatalf("restored trail: store %+v, %v; export %+v, %v", rep, err, xrep, xerr)
	}
	// The same attacks on the lines of an honest export.
	var buf bytes.Buffer
	if err := e.vaults[0].ExportAudit(ctx, 1, &buf); err != nil {
		t.Fatal(err)
	}
	testChainsExportTampering(t, strings.Split(strings.TrimSpace(buf.String()), "\n"), e)
}

// testChainsExportTampering edits the lines of an honest multi-replica export.
func testChainsExportTampering(t *testing.T, lines []string, e *chainsEnv) {
	pub, _ := e.vaults[0].AuditPublicKeyset()
	opts := audit.Options{PublicKeyset: pub}
	if rep, err := audit.Verify(strings.NewReader(strings.Join(lines, "\n")), opts); err != nil {
		t.Fatalf("honest export: %+v, %v", rep, err)
	}
	// line indexes of each replica's events
	idx := map[string][]int{}
	for i, l := range lines {
		var probe struct {
			Type    string `json:"type"`
			Replica string `json:"replica"`
		}
		json.Unmarshal([]byte(l), &probe)
		if probe.Type == "" {
			idx[probe.Replica] = append(idx[probe.Replica], i)
			r, _, _ := strings.Cut(probe.Replica, "/")
			idx[r+"/*"] = append(idx[r+"/*"], i) // every lane of replica r
		}
	}
	without := func(drop ...int) []string {
		skip := map[int]bool{}
		for _, d := range drop {
			skip[d] = true
		}
		var out []string
		for i, l := range lines {
			if !skip[i] {
				out = append(out, l)
			}
		}
		return out
	}
	b := idx["b"]
	swapped := append([]string(nil), lines...)
	swapped[b[2]], swapped[b[3]] = swapped[b[3]], swapped[b[2]]
	edited := append([]string(nil), lines...)
	edited[b[4]] = strings.Replace(edited[b[4]], `"method":"/test"`, `"method":"/edited"`, 1)
	inserted := append(append(append([]string(nil), lines[:b[4]+1]...), lines[b[4]]), lines[b[4]+1:]...)
	unsignedHeader := append([]string(nil), lines...)
	var h audit.ExportHeader
	json.Unmarshal([]byte(lines[0]), &h)
	var kept []audit.ChainExtent // drop c's chains from the header, and their events
	for _, c := range h.Chains {
		if c.Replica != "c" && !strings.HasPrefix(c.Replica, "c/") {
			kept = append(kept, c)
		}
	}
	h.Chains = kept
	hb, _ := json.Marshal(h)
	unsignedHeader[0] = string(hb)
	cases := map[string][]string{
		"edited":                   edited,
		"deleted in the middle":    without(b[4]),
		"inserted":                 inserted,
		"reordered":                swapped,
		"a replica's events gone":  without(idx["c/*"]...),
		"a chain's tail truncated": without(b[len(b)-2:]...),
		"a replica cut from the header and its events": func() []string {
			out := append([]string(nil), unsignedHeader...)
			for i := len(idx["c/*"]) - 1; i >= 0; i-- {
				j := idx["c/*"][i]
				out = append(out[:j], out[j+1:]...)
			}
			return out
		}(),
	}
	for name, ls := range cases {
		rep, err := audit.Verify(strings.NewReader(strings.Join(ls, "\n")), opts)
		if !errors.Is(err, audit.ErrTampered) {
			t.Errorf("export %s: %+v, %v; want ErrTampered", name, rep, err)
		} else {
			t.Logf("export %s: at %d (%s): %s", name, rep.BadSeq, rep.Replica, rep.Problem)
		}
	}
}

// On PostgreSQL an event can commit after an export that skipped it, with a number below the
// export's last. Pruning must not delete it: each chain's export mark moves only over what an
// export delivered without a gap in that chain. The late commit is made by hand here (bbolt
// commits in order), as the store would hold it.
func TestAuditPruneKeepsLateEvents(t *testing.T) {
	e := openChainsBolt(t)
	ctx := context.Background()
	e.write(t, 1)
	var hole uint64
	if err := e.st.Update(ctx, func(tx store.Tx) (err error) { hole, err = tx.NextSequence(bucketAudit); return err }); err != nil {
		t.Fatal(err)
	}
	if err := e.vaults[0].Audit(ctx, AuditEvent{Method: "/after", Outcome: OutcomeAllowed}); err != nil {
		t.Fatal(err)
	}
	export := func(from uint64) {
		t.Helper()
		var buf bytes.Buffer
		if err := e.vaults[0].ExportAudit(ctx, from, &buf); err != nil {
			t.Fatal(err)
		}
	}
	c1, ok, err := e.vaults[0].Checkpoint(ctx)
	if err != nil || !ok {
		t.Fatalf("Checkpoint = %v, %v", ok, err)
	}
	export(1)
	evs := e.events(t)
	last := evs[len(evs)-1].seq
	// b's transaction, in flight during the export, commits now with the number it took then.
	if err := e.st.Update(ctx, func(tx store.Tx) error {
		head := tx.Get(bucketAuditHead, []byte("b"))
		if binary.BigEndian.Uint64(head[:8]) > hole {
			return fmt.Errorf("b wrote after the hole")
		}
		ev := AuditEvent{Seq: hole, Replica: "b", Time: time.Now().UTC(), Method: "/late", Outcome: OutcomeAllowed, PrevHash: audit.HashOf(head[8:])}
		line, _ := json.Marshal(ev)
		sum := audit.Hash(line)
		if err := tx.Put(bucketAudit, seqKey(hole), line); err != nil {
			return err
		}
		raw := make([]byte, 40)
		binary.BigEndian.PutUint64(raw, hole)
		copy(raw[8:], mustHex(t, strings.TrimPrefix(sum, audit.HashPrefix)))
		return tx.Put(bucketAuditHead, []byte("b"), raw)
	}); err != nil {
		t.Fatal(err)
	}
	// The next checkpoint covers it, in place of the last one (the highest number is the same).
	c2, ok, err := e.vaults[0].Checkpoint(ctx)
	if err != nil || !ok || c2.Seq != c1.Seq || c2.Signature == c1.Signature {
		t.Fatalf("Checkpoint after a late event = %+v, %v, %v; want a new checkpoint at %d", c2, ok, err, c1.Seq)
	}
	pub, _ := e.vaults[0].AuditPublicKeyset()
	if rep, err := VerifyStoreAudit(ctx, e.st, audit.Options{PublicKeyset: pub, Strict: true}); err != nil {
		t.Fatalf("with the late event checkpointed: %+v, %v", rep, err)
	}
	if _, err := e.vaults[0].PruneAudit(ctx, last); !errors.Is(err, ErrNotExported) {
		t.Fatalf("PruneAudit over an event no export delivered = %v, want ErrNotExported", err)
	}
	export(last + 1) // a shipper resuming after the last event it saw: still skips it
	if _, err := e.vaults[0].PruneAudit(ctx, last); !errors.Is(err, ErrNotExported) {
		t.Fatalf("PruneAudit after a resumed export that skipped the event = %v, want ErrNotExported", err)
	}
	export(hole)
	if _, err := e.vaults[0].PruneAudit(ctx, last); err != nil {
		t.Fatalf("PruneAudit once an export delivered the late event: %v", err)
	}
	if _, _, err := e.vaults[0].Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, err := VerifyStoreAudit(ctx, e.st, audit.Options{PublicKeyset: pub, Strict: true}); err != nil {
		t.Fatalf("after pruning: %+v, %v", rep, err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A witness of multi-replica checkpoints catches what a store cannot show by itself: the end
// of the trail cut together with its checkpoints (a rollback), on any chain.
func TestAuditChainsWitness(t *testing.T) {
	e := openChainsBolt(t)
	ctx := context.Background()
	e.write(t, 1)
	c1, ok, err := e.vaults[0].Checkpoint(ctx)
	if err != nil || !ok || len(c1.Heads) < 3 {
		t.Fatalf("Checkpoint = %+v, %v, %v", c1, ok, err)
	}
	e.write(t, 1)
	c2, _, err := e.vaults[1].Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The witness keeps both, as JSON lines; they read back and verify the honest store.
	var wf bytes.Buffer
	for _, c := range []Checkpoint{c1, c2} {
		b, _ := json.Marshal(c)
		wf.Write(append(b, '\n'))
	}
	cs, err := audit.ReadWitness(&wf)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := e.vaults[0].AuditPublicKeyset()
	opts := audit.Options{PublicKeyset: pub, Witnessed: cs}
	rep, err := VerifyStoreAudit(ctx, e.st, opts)
	if err != nil || rep.Witnessed == 0 {
		t.Fatalf("honest store with its witness: %+v, %v", rep, err)
	}
	// Roll back: every event after the first checkpoint, and the second checkpoint, gone.
	for _, ev := range e.events(t) {
		if ev.seq > c1.Seq {
			e.delete(t, bucketAudit, seqKey(ev.seq))
		}
	}
	e.delete(t, bucketAuditCkpt, seqKey(c2.Seq))
	// (the heads still name the lost events; an attacker resets them too)
	for _, h := range c1.Heads {
		hb, hk := auditHeadKey(h.Replica)
		raw := append(seqKey(h.Seq), mustHex(t, strings.TrimPrefix(h.Hash, audit.HashPrefix))...)
		e.put(t, hb, hk, raw)
	}
	if rep, err := VerifyStoreAudit(ctx, e.st, audit.Options{PublicKeyset: pub}); err != nil {
		t.Fatalf("rolled-back store without the witness = %+v, %v; want it to pass (nothing in it shows the loss)", rep, err)
	}
	rep, err = VerifyStoreAudit(ctx, e.st, opts)
	if !errors.Is(err, audit.ErrTampered) || !strings.Contains(rep.Problem, "removed from the end") {
		t.Fatalf("rolled-back store with the witness = %+v, %v; want events removed from the end", rep, err)
	}
}

// Retention prunes a multi-replica trail up to the first event no export delivered.
func TestAuditRetentionStopsAtUndelivered(t *testing.T) {
	e := openChainsBolt(t)
	ctx := context.Background()
	e.write(t, 1)
	var buf bytes.Buffer
	if err := e.vaults[0].ExportAudit(ctx, 1, &buf); err != nil {
		t.Fatal(err)
	}
	evs := e.events(t)
	// Forget what chain "b" delivered: its events are now undelivered as far as pruning knows.
	e.delete(t, bucketAuditExported, exportedKey("b"))
	firstB := evs[slices.IndexFunc(evs, func(ev storedEvent) bool { return ev.replica == "b" })].seq
	n, err := e.vaults[0].pruneOld(ctx, time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	var left []uint64
	for _, ev := range e.events(t) {
		left = append(left, ev.seq)
	}
	if n != int(firstB-evs[0].seq) || left[0] != firstB {
		t.Fatalf("retention pruned %d events, the trail now starts at %d; want everything before b's first event %d", n, left[0], firstB)
	}
}

func TestReplicaIDIsChecked(t *testing.T) {
	st := openStore(t, filepath.Join(t.TempDir(), "v.db"), store.Options{})
	kek := newKEK(t)
	for _, id := range []string{"a/1", "has space", strings.Repeat("x", 129), "tab\t"} {
		if _, err := Open(context.Background(), Config{Store: st, KEK: kek, ReplicaID: id}); err == nil || !strings.Contains(err.Error(), "ReplicaID") {
			t.Errorf("Open with ReplicaID %q = %v, want an error about it", id, err)
		}
	}
	if _, err := Open(context.Background(), Config{Store: st, KEK: kek, ReplicaID: "pod-7.tokenvault_0"}); err != nil {
		t.Errorf("Open with a valid ReplicaID: %v", err)
	}
}

package vault

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/audit"
	"github.com/tokenvault/tokenvault/vault/store"
)

// auditedVault runs a few operations of each kind and returns the vault and an export.
func auditedVault(t *testing.T) (*Vault, []string) {
	t.Helper()
	ctx := WithRequest(context.Background(), RequestInfo{RequestID: "req-1", Method: "/test", Principal: Principal{ID: "root", Role: RoleAdmin}})
	v, _ := openTest(t)
	res, err := v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: "acme"}, {Value: "123-45-6789", Template: "ssn", Domain: "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Detokenize(ctx, "case-1", []TokenRef{{Token: res[0].Token, Domain: "acme"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.CreateGrant(ctx, Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"pan"}, Purpose: "refunds", ExpireTime: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "order-1", Items: []TokenRef{{Token: res[0].Token, Domain: "acme"}, {Token: res[1].Token, Domain: "acme"}}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := v.ExportAudit(ctx, 1, &buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	for _, l := range lines {
		for _, pii := range []string{"4111111111111111", "123-45-6789", res[0].Token, res[1].Token} {
			if strings.Contains(l, pii) {
				t.Fatalf("audit line holds a value or a token: %s", l)
			}
		}
	}
	return v, lines
}

func verifyLines(t *testing.T, lines []string) (audit.Report, error) {
	t.Helper()
	return audit.Verify(strings.NewReader(strings.Join(lines, "\n")+"\n"), audit.Options{})
}

func TestAuditChainVerifies(t *testing.T) {
	v, lines := auditedVault(t)
	rep, err := verifyLines(t, lines)
	if err != nil || !rep.OK() {
		t.Fatalf("VerifyAudit = %+v, %v", rep, err)
	}
	if rep.Events != 4 || rep.Checkpoints != 2 || rep.SignedUpTo != 4 || rep.Unsigned != 0 {
		t.Errorf("report = %+v: want 4 events (tokenize, detokenize, grant, vendor), 2 checkpoints, all signed", rep)
	}
	// The vendor event says who saw what: vendor, grant, purpose, token fingerprints.
	var vendorEv AuditEvent
	if err := json.Unmarshal([]byte(lines[len(lines)-2]), &vendorEv); err != nil {
		t.Fatal(err)
	}
	if vendorEv.Method != "/test" || vendorEv.Purpose != "order-1" || len(vendorEv.GrantIDs) != 1 || vendorEv.Allowed != 1 || vendorEv.Denied != 1 || len(vendorEv.Tokens) != 1 || vendorEv.Outcome != OutcomePartial {
		t.Errorf("vendor event = %+v", vendorEv)
	}
	// The store verifies offline too.
	rep, err = VerifyStoreAudit(context.Background(), v.store, audit.Options{})
	if err != nil || rep.Events != 4 {
		t.Fatalf("VerifyStoreAudit = %+v, %v", rep, err)
	}
	// Listing with filters and pages.
	evs, next, err := v.ListAudit(context.Background(), AuditFilter{Limit: 2})
	if err != nil || len(evs) != 2 || next != 2 {
		t.Fatalf("ListAudit page 1 = %d events, next %d, %v", len(evs), next, err)
	}
	evs, next, err = v.ListAudit(context.Background(), AuditFilter{AfterSeq: next, Outcome: OutcomePartial})
	if err != nil || len(evs) != 1 || evs[0].Seq != 4 || next != 0 {
		t.Fatalf("ListAudit filtered = %+v, next %d, %v", evs, next, err)
	}
}

func TestAuditTamperingIsDetected(t *testing.T) {
	_, lines := auditedVault(t)
	// lines: 0 header, 1 ev1, 2 ckpt@1, 3 ev2, 4 ev3, 5 ev4, 6 ckpt@4
	edit := func(i int, from, to string) []string {
		out := append([]string(nil), lines...)
		if !strings.Contains(out[i], from) {
			t.Fatalf("line %d has no %q: %s", i, from, out[i])
		}
		out[i] = strings.Replace(out[i], from, to, 1)
		return out
	}
	without := func(i int) []string {
		out := append([]string(nil), lines[:i]...)
		return append(out, lines[i+1:]...)
	}
	swap := func(i, j int) []string {
		out := append([]string(nil), lines...)
		out[i], out[j] = out[j], out[i]
		return out
	}
	cases := []struct {
		name    string
		lines   []string
		wantBad uint64
	}{
		{"edited event", edit(3, `"purpose":"case-1"`, `"purpose":"case-2"`), 2},
		{"edited last event", edit(5, `"purpose":"order-1"`, `"purpose":"order-9"`), 4},
		{"deleted event", without(4), 3},
		{"inserted event", append(append(append([]string(nil), lines[:2]...), lines[1]), lines[2:]...), 2},
		{"reordered events", swap(4, 5), 3},
		{"forged checkpoint", edit(6, `"seq":4`, `"seq":3`), 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, err := verifyLines(t, c.lines)
			if !errors.Is(err, ErrAuditTampered) || rep.OK() {
				t.Fatalf("VerifyAudit = %+v, %v; want ErrAuditTampered", rep, err)
			}
			if rep.BadSeq != c.wantBad {
				t.Errorf("first bad sequence = %d (%s), want %d", rep.BadSeq, rep.Problem, c.wantBad)
			}
		})
	}
	// The export's signed header covers its end: deleting the last checkpoint changes nothing,
	// and cutting events at the end is detected.
	rep, err := verifyLines(t, append([]string(nil), lines[:6]...))
	if err != nil || rep.Unsigned != 0 || rep.SignedUpTo != 4 || !rep.HeaderSigned {
		t.Fatalf("last checkpoint deleted: %+v, %v; want all 4 events covered by the header", rep, err)
	}
	rep, err = verifyLines(t, append([]string(nil), lines[:5]...))
	if !errors.Is(err, ErrAuditTampered) || rep.BadSeq != 4 {
		t.Fatalf("last event cut: %+v, %v; want a failure at 4", rep, err)
	}
	// A signature by another key fails.
	other, _ := auditedVault(t)
	pub, _ := other.AuditPublicKeyset()
	if _, err := audit.Verify(strings.NewReader(strings.Join(lines, "\n")), audit.Options{PublicKeyset: pub}); !errors.Is(err, ErrAuditTampered) {
		t.Fatalf("verify with another vault's key = %v", err)
	}
}

// failingStore fails every write to the audit bucket while fail is set.
type failingStore struct {
	store.Store
	fail atomic.Bool
}

var errInjected = errors.New("injected store failure")

type failingTx struct {
	store.Tx
	s *failingStore
}

func (t failingTx) Put(b store.Bucket, k, v []byte) error {
	if b == bucketAudit && t.s.fail.Load() {
		return errInjected
	}
	return t.Tx.Put(b, k, v)
}

func (f *failingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return f.Store.Update(ctx, func(tx store.Tx) error { return fn(failingTx{Tx: tx, s: f}) })
}

func TestAuditFailsClosed(t *testing.T) {
	ctx := context.Background()
	fs := &failingStore{}
	v, st := openTest(t, wrapStore(func(s store.Store) store.Store { fs.Store = s; return fs }))
	res, err := v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan", Domain: "acme"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.CreateGrant(ctx, Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"pan"}, Purpose: "p", ExpireTime: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	fs.fail.Store(true)
	if got, err := v.Detokenize(ctx, "p", []TokenRef{{Token: res[0].Token, Domain: "acme"}}); err == nil || got != nil {
		t.Fatalf("Detokenize with a failing audit = %+v, %v; want an error and nothing revealed", got, err)
	}
	if got, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", Items: []TokenRef{{Token: res[0].Token, Domain: "acme"}}}); err == nil || got != nil {
		t.Fatalf("VendorDetokenize with a failing audit = %+v, %v", got, err)
	}
	if got, err := v.Tokenize(ctx, []TokenizeItem{{Value: "5555555555554444", Template: "pan", Domain: "acme"}}); err == nil || got != nil {
		t.Fatalf("Tokenize with a failing audit = %+v, %v", got, err)
	}
	fs.fail.Store(false)
	if _, _, err := v.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// Nothing of the failed tokenize was kept, and the chain still verifies.
	rep, err := VerifyStoreAudit(ctx, st, audit.Options{})
	if err != nil || rep.Events != 2 {
		t.Fatalf("after failures: %+v, %v; want the 2 events that succeeded", rep, err)
	}
	g, _ := v.ListGrants(ctx, "acme")
	if g[0].Used != 0 {
		t.Errorf("a failed vendor call counted %d uses", g[0].Used)
	}
}

// TestAuditFullDisk fills a small filesystem, then checks that every value returned has a
// durable reveal event: count of values returned == count of items in durable reveal events.
func TestAuditFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a filesystem")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=768k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here (needs root): %v %s", err, out)
	}
	defer exec.Command("umount", "-l", dir).Run()
	ctx := context.Background()
	path := filepath.Join(dir, "v.db")
	kek := newKEK(t)
	v, st := openTest(t, atPath(path), withKEK(kek), withStoreOptions(store.Options{InitialMmapSize: 1 << 20}))
	var tokens []string
	for i := 0; ; i++ {
		res, err := v.Tokenize(ctx, []TokenizeItem{{Value: fmt.Sprintf("customer note %06d %s", i, strings.Repeat("x", 200)), Template: "opaque"}})
		if err != nil {
			break // the disk is full
		}
		tokens = append(tokens, res[0].Token)
		if i > 20000 {
			t.Fatal("the filesystem never filled up")
		}
	}
	if len(tokens) == 0 {
		t.Fatal("nothing was tokenized")
	}
	revealed, failures := 0, 0
	for i := 0; i < 200; i++ {
		got, err := v.Detokenize(ctx, "disk-full", []TokenRef{{Token: tokens[i%len(tokens)]}})
		if err != nil {
			failures++
			continue
		}
		for _, r := range got {
			if r.Err == nil && r.Value != "" {
				revealed++
			}
		}
	}
	st.Close()
	// Count durable reveal events after reopening.
	st2 := openStore(t, path, store.Options{InitialMmapSize: 1 << 20})
	var buf bytes.Buffer
	publess := exportAudit(ctx, st2, 1, []byte("{}"), nil, time.Time{}, &buf)
	if publess != nil {
		t.Fatal(publess)
	}
	durable := 0
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var ev AuditEvent
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Method == "Detokenize" {
			durable += ev.Allowed
		}
	}
	t.Logf("%d tokens before the disk filled; %d reveals, %d refused calls, %d durable reveal events' items", len(tokens), revealed, failures, durable)
	if revealed != durable {
		t.Fatalf("values returned (%d) != items in durable reveal events (%d)", revealed, durable)
	}
	if err := st2.Check(); err != nil {
		t.Fatalf("store check after a full disk: %v", err)
	}
	_ = os.Remove(path)
}

func TestAuditPruneKeepsChainVerifiable(t *testing.T) {
	v, _ := auditedVault(t)
	ctx := context.Background()
	if _, err := v.PruneAudit(ctx, 2); err != nil {
		t.Fatalf("PruneAudit after a full export: %v", err)
	}
	if _, err := v.Tokenize(ctx, []TokenizeItem{{Value: "x", Template: "opaque"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := v.PruneAudit(ctx, 6); !errors.Is(err, ErrNotExported) {
		t.Fatalf("PruneAudit past the export = %v, want ErrNotExported", err)
	}
	rep, err := VerifyStoreAudit(ctx, v.store, audit.Options{})
	if err != nil || rep.FirstSeq != 3 {
		t.Fatalf("after pruning: %+v, %v", rep, err)
	}
	// Deleting the first remaining event is still detected through the anchor.
	var buf bytes.Buffer
	if err := v.ExportAudit(ctx, 1, &buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	cut := append([]string{lines[0]}, lines[2:]...)
	if _, err := verifyLines(t, cut); !errors.Is(err, ErrAuditTampered) {
		t.Fatalf("deleting the first event after the anchor = %v", err)
	}
}

// Deleting the first events of an export must fail verification.
func TestVerifyDetectsDeletedFirstEvents(t *testing.T) {
	ctx := context.Background()
	v, _, _ := openClock(t)
	for i := 0; i < 5; i++ {
		v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan"}})
	}
	if _, _, err := v.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := v.ExportAudit(ctx, 1, &buf); err != nil {
		t.Fatal(err)
	}
	pub, _ := v.AuditPublicKeyset()
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if rep, err := audit.Verify(strings.NewReader(buf.String()), audit.Options{PublicKeyset: pub}); err != nil {
		t.Fatal(rep, err)
	}
	// Drop events 1..3 (lines 1..3 after header), keep header (claims from_seq 1).
	tampered := lines[0] + "\n" + strings.Join(lines[4:], "\n") + "\n"
	t.Logf("header: %s", lines[0][:60])
	rep, err := audit.Verify(strings.NewReader(tampered), audit.Options{PublicKeyset: pub})
	if !errors.Is(err, ErrAuditTampered) || rep.BadSeq != 1 {
		t.Fatalf("events 1-3 deleted, verified with the trusted key: %+v, %v", rep, err)
	}
}

// A resumed export from further on must not count the events before it as delivered, or
// retention would prune events no export ever delivered.
func TestResumedExportDoesNotAllowPruning(t *testing.T) {
	ctx := context.Background()
	v, _, _ := openClock(t)
	for i := 0; i < 10; i++ {
		v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan"}})
	}
	var buf bytes.Buffer
	if err := v.ExportAudit(ctx, 10, &buf); err != nil { // only event 10 delivered
		t.Fatal(err)
	}
	n, err := v.PruneAudit(ctx, 9)
	if !errors.Is(err, ErrNotExported) || n != 0 {
		t.Fatalf("a resumed export from 10 let PruneAudit(9) delete %d never-exported events (err %v)", n, err)
	}
}

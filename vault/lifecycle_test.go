package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/template"
)

func rewrapAll(t *testing.T, v *Vault) {
	t.Helper()
	for i := 0; i < 10000; i++ {
		done, err := v.rewrapStep(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if done {
			return
		}
	}
	t.Fatal("rewrap did not finish")
}

func TestRotationKeepsTokensAndRewraps(t *testing.T) {
	ctx := context.Background()
	v, _ := openTest(t)
	var items []TokenizeItem
	for i := 0; i < 700; i++ { // more than two rewrap batches
		it := TokenizeItem{Value: fmt.Sprintf("4111%012d", i), Template: "pan"}
		if i%7 == 0 {
			it.Subject = fmt.Sprintf("customer-%d", i%21)
		}
		items = append(items, it)
	}
	before, err := v.Tokenize(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	oldKey := v.keyring().PrimaryKeyID()
	newKey, err := v.RotateDataKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Destroying or disabling the old key is refused while records need it.
	if err := v.DisableDataKey(ctx, oldKey); !errors.Is(err, ErrKeyInUse) {
		t.Fatalf("DisableDataKey(in use) = %v", err)
	}
	st, err := v.KeyStatus(ctx)
	if err != nil || st.Rewrap.Target != newKey || st.Rewrap.Remaining == 0 {
		t.Fatalf("status before rewrap = %+v, %v", st, err)
	}
	rewrapAll(t, v)
	st, _ = v.KeyStatus(ctx)
	if st.Rewrap.Remaining != 0 || !st.Rewrap.Done {
		t.Fatalf("status after rewrap = %+v", st)
	}
	for _, k := range st.Keys {
		if k.ID == oldKey && k.Records != 0 {
			t.Fatalf("old key still protects %d records", k.Records)
		}
	}
	if err := v.DestroyDataKey(ctx, oldKey); !errors.Is(err, ErrKeyState) {
		t.Fatalf("DestroyDataKey(enabled) = %v", err)
	}
	if err := v.DisableDataKey(ctx, oldKey); err != nil {
		t.Fatal(err)
	}
	if err := v.DestroyDataKey(ctx, oldKey); err != nil {
		t.Fatal(err)
	}
	st, _ = v.KeyStatus(ctx)
	states := map[uint32]string{}
	for _, k := range st.Keys {
		states[k.ID] = k.State
	}
	if states[oldKey] != "destroyed" || states[newKey] != "primary" {
		t.Fatalf("key states = %v", states)
	}
	// Every token still detokenizes, and no token changed.
	var ds []TokenRef
	for _, r := range before {
		ds = append(ds, TokenRef{Token: r.Token})
	}
	got, err := v.Detokenize(ctx, "check", ds)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i].Value != items[i].Value {
			t.Fatalf("after rotation, token %d detokenizes to %q (%v), want %q", i, got[i].Value, got[i].Err, items[i].Value)
		}
	}
	after, err := v.Tokenize(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	for i := range after {
		if after[i].Token != before[i].Token {
			t.Fatalf("token %d changed across rotation: %q → %q", i, before[i].Token, after[i].Token)
		}
	}
}

func TestRewrapResumesAfterRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")
	kek := newKEK(t)
	v, st := openTest(t, atPath(path), withKEK(kek))
	tokenizeValues(t, v, 600)
	if _, err := v.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	if done, err := v.rewrapStep(ctx); err != nil || done {
		t.Fatalf("first step = %v, %v", done, err)
	}
	st.Close() // "crash" mid-rewrap
	v2, _ := openTest(t, atPath(path), withKEK(kek))
	s1, _ := v2.KeyStatus(ctx)
	if s1.Rewrap.Rewrapped != rewrapBatchSize || s1.Rewrap.Done {
		t.Fatalf("after restart: %+v", s1.Rewrap)
	}
	rewrapAll(t, v2)
	s2, _ := v2.KeyStatus(ctx)
	if s2.Rewrap.Remaining != 0 || s2.Rewrap.Rewrapped != 600 {
		t.Fatalf("resumed rewrap: %+v", s2.Rewrap)
	}
}

func TestDeleteTokensWithReceipt(t *testing.T) {
	ctx := context.Background()
	v, _ := openTest(t)
	res, err := v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan"}, {Value: "5555555555554444", Template: "pan"}})
	if err != nil {
		t.Fatal(err)
	}
	rc, errs, err := v.DeleteTokens(ctx, []TokenRef{{Token: res[0].Token}, {Token: "0000000000000000"}})
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || !errors.Is(errs[1], ErrNotFound) || len(rc.Erased) != 1 || rc.Erased[0] != TokenFingerprint(DefaultDomain, res[0].Token) {
		t.Fatalf("receipt %+v, errs %v", rc, errs)
	}
	pub, _ := v.AuditPublicKeyset()
	if err := VerifyReceipt(rc, pub); err != nil {
		t.Fatalf("VerifyReceipt = %v", err)
	}
	forged := rc
	forged.Erased = []string{"0000"}
	if err := VerifyReceipt(forged, pub); err == nil {
		t.Fatal("a forged receipt verified")
	}
	got, _ := v.Detokenize(ctx, "p", []TokenRef{{Token: res[0].Token}, {Token: res[1].Token}})
	if !errors.Is(got[0].Err, ErrNotFound) || got[1].Value != "5555555555554444" {
		t.Fatalf("after delete: %+v", got)
	}
}

func TestSubjectErasureReachesBackups(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kek := newKEK(t)
	log := filepath.Join(dir, "erasure.log")
	v, st := openTest(t, atPath(filepath.Join(dir, "v.db")), withKEK(kek), withErasureLog(log))
	res, err := v.Tokenize(ctx, []TokenizeItem{
		{Value: "jane@example.com", Template: "email", Subject: "cust-1"},
		{Value: "123-45-6789", Template: "ssn", Subject: "cust-1", Domain: "hr"},
		{Value: "john@example.com", Template: "email", Subject: "cust-2"},
		{Value: "4111111111111111", Template: "pan"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var backup bytes.Buffer
	if _, err := v.Backup(ctx, &backup); err != nil {
		t.Fatal(err)
	}
	rc, err := v.EraseSubject(ctx, "cust-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := v.DeleteTokens(ctx, []TokenRef{{Token: res[3].Token}}); err != nil {
		t.Fatal(err)
	}
	if len(rc.Erased) != 2 {
		t.Fatalf("receipt erased %d tokens, want 2", len(rc.Erased))
	}
	items := []TokenRef{{Token: res[0].Token}, {Token: res[1].Token, Domain: "hr"}, {Token: res[2].Token}}
	got, _ := v.Detokenize(ctx, "p", items)
	if !errors.Is(got[0].Err, ErrNotFound) || !errors.Is(got[1].Err, ErrNotFound) || got[2].Value != "john@example.com" {
		t.Fatalf("after erasure: %+v", got)
	}
	st.Close()

	// Restore the backup taken before the erasure: the erasure log erases it again.
	rdir := t.TempDir()
	if _, err := store.RestoreFile(&backup, filepath.Join(rdir, "v.db")); err != nil {
		t.Fatal(err)
	}
	v2, _ := openTest(t, atPath(filepath.Join(rdir, "v.db")), withKEK(kek), withErasureLog(log))
	got, _ = v2.Detokenize(ctx, "p", append(items, TokenRef{Token: res[3].Token}))
	if !errors.Is(got[0].Err, ErrNotFound) || !errors.Is(got[1].Err, ErrNotFound) || got[2].Value != "john@example.com" || !errors.Is(got[3].Err, ErrNotFound) {
		t.Fatalf("restored backup after replay: %+v", got)
	}
	if _, err := os.Stat(log); err != nil {
		t.Fatal(err)
	}
}

func TestTokenTTL(t *testing.T) {
	ctx := context.Background()
	clk := newClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	v, _ := openTest(t, withClock(clk))
	res, err := v.Tokenize(ctx, []TokenizeItem{{Value: "short-lived", Template: "opaque", TTL: time.Hour}, {Value: "long-lived", Template: "opaque"}})
	if err != nil {
		t.Fatal(err)
	}
	clk.add(59 * time.Minute)
	if got, _ := v.Detokenize(ctx, "p", []TokenRef{{Token: res[0].Token}}); got[0].Value != "short-lived" {
		t.Fatalf("before expiry: %+v", got)
	}
	clk.add(2 * time.Minute)
	got, _ := v.Detokenize(ctx, "p", []TokenRef{{Token: res[0].Token}, {Token: res[1].Token}})
	if !errors.Is(got[0].Err, ErrNotFound) || got[1].Value != "long-lived" {
		t.Fatalf("after expiry: %+v", got)
	}
	n, err := v.PurgeExpired(ctx)
	if err != nil || n != 1 {
		t.Fatalf("PurgeExpired = %d, %v", n, err)
	}
	if n, _ := v.PurgeExpired(ctx); n != 0 {
		t.Fatalf("second purge = %d", n)
	}
	// A template may set the expiry for all its tokens.
	if _, err := v.CreateTemplate(ctx, template.Definition{Name: "session-notes", Base: "opaque", TTL: 2 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	res, err = v.Tokenize(ctx, []TokenizeItem{{Value: "note", Template: "session-notes"}})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	clk.add(2*time.Hour + time.Second)
	if got, _ := v.Detokenize(ctx, "p", []TokenRef{{Token: res[0].Token}}); !errors.Is(got[0].Err, ErrNotFound) {
		t.Fatalf("template TTL: %+v", got)
	}
}

// TestErasedTokenNeverReissued: after an erasure the token stays retired (a tombstone), and
// tokenizing the value again gives a new token.
func TestErasedTokenNeverReissued(t *testing.T) {
	ctx := context.Background()
	v, _ := openTest(t)
	res, err := v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan"}})
	if err != nil {
		t.Fatal(err)
	}
	old := res[0].Token
	if _, _, err := v.DeleteTokens(ctx, []TokenRef{{Token: old}}); err != nil {
		t.Fatal(err)
	}
	again, err := v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan"}})
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Token == old || again[0].Token == "" {
		t.Fatalf("re-tokenized after erasure: %q (old %q)", again[0].Token, old)
	}
	got, _ := v.Detokenize(ctx, "p", []TokenRef{{Token: old}, {Token: again[0].Token}})
	if !errors.Is(got[0].Err, ErrNotFound) || got[1].Value != "4111111111111111" {
		t.Fatalf("after re-tokenize: %+v", got)
	}
	// And the new token is stable.
	third, _ := v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan"}})
	if third[0].Token != again[0].Token {
		t.Fatalf("token after erasure not deterministic: %q then %q", again[0].Token, third[0].Token)
	}
}

// TestRewrapSurvivesRacingRotation: a rotation that commits between a rewrap step's read and
// its write must not be undone, and a stale target heals itself.
func TestRewrapSurvivesRacingRotation(t *testing.T) {
	ctx := context.Background()
	v, st := openTest(t)
	var items []TokenizeItem
	for i := 0; i < 600; i++ {
		items = append(items, TokenizeItem{Value: fmt.Sprintf("v-%d", i), Template: "opaque"})
	}
	if _, err := v.Tokenize(ctx, items); err != nil {
		t.Fatal(err)
	}
	if _, err := v.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := v.rewrapStep(ctx); err != nil {
		t.Fatal(err)
	}
	second, err := v.RotateDataKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate the lost update: the stored state names the first target again.
	if err := st.Update(ctx, func(tx store.Tx) error {
		b, _ := json.Marshal(rewrapState{Target: 12345, Started: time.Now()})
		return tx.Put(bucketMeta, metaRewrap, b)
	}); err != nil {
		t.Fatal(err)
	}
	rewrapAll(t, v)
	s, _ := v.KeyStatus(ctx)
	if s.Rewrap.Target != second || s.Rewrap.Remaining != 0 || !s.Rewrap.Done {
		t.Fatalf("after a stale target: %+v", s.Rewrap)
	}
}

func TestAutoRotatePolicies(t *testing.T) {
	ctx := context.Background()
	clk := newClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	v, _ := openTest(t, withClock(clk))
	first := v.keyring().PrimaryKeyID()
	if err := v.autoRotate(ctx, BackgroundOptions{RotateAfter: 24 * time.Hour}); err != nil || v.keyring().PrimaryKeyID() != first {
		t.Fatalf("rotated too early: %v", err)
	}
	clk.add(25 * time.Hour)
	if err := v.autoRotate(ctx, BackgroundOptions{RotateAfter: 24 * time.Hour}); err != nil || v.keyring().PrimaryKeyID() == first {
		t.Fatalf("age policy did not rotate: %v", err)
	}
	second := v.keyring().PrimaryKeyID()
	var items []TokenizeItem
	for i := 0; i < 10; i++ {
		items = append(items, TokenizeItem{Value: fmt.Sprintf("v%d", i), Template: "opaque"})
	}
	if _, err := v.Tokenize(ctx, items); err != nil {
		t.Fatal(err)
	}
	if err := v.autoRotate(ctx, BackgroundOptions{RotateAfterRecords: 11}); err != nil || v.keyring().PrimaryKeyID() != second {
		t.Fatalf("rotated under the record limit: %v", err)
	}
	if err := v.autoRotate(ctx, BackgroundOptions{RotateAfterRecords: 10}); err != nil || v.keyring().PrimaryKeyID() == second {
		t.Fatalf("record policy did not rotate: %v", err)
	}
}

// The blind index must not hand out a token that has expired (or was erased).
func TestIndexSkipsExpiredToken(t *testing.T) {
	ctx := context.Background()
	v, clk, _ := openClock(t)
	it := TokenizeItem{Value: "ab@example.com", Template: "email", TTL: time.Hour}
	r1, err := v.Tokenize(ctx, []TokenizeItem{it})
	if err != nil || r1[0].Err != nil {
		t.Fatal(err, r1)
	}
	clk.add(2 * time.Hour)
	r2, err := v.Tokenize(ctx, []TokenizeItem{{Value: "ab@example.com", Template: "email"}}) // no TTL now
	if err != nil || r2[0].Err != nil {
		t.Fatal(err, r2)
	}
	got, _ := v.Detokenize(ctx, "p", []TokenRef{{Token: r2[0].Token}})
	if got[0].Err != nil || got[0].Value != "ab@example.com" {
		t.Fatalf("tokenize returned %q after the first token %q expired, but it detokenizes to %q, %v", r2[0].Token, r1[0].Token, got[0].Value, got[0].Err)
	}
}

// Issue 14: keys status showed rewrapped + remaining exceeding the total by one batch during a
// rewrap: the record counts and the rewrap's progress came from two reads, with a committed
// batch in between. They come from one snapshot now, so every status a reader sees while the
// rewrap runs adds up.
func TestKeyStatusAddsUpDuringRewrap(t *testing.T) {
	ctx := context.Background()
	v, _ := openTest(t)
	tokenizeValues(t, v, 6*rewrapBatchSize)
	if _, err := v.RotateDataKey(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for {
			fin, err := v.rewrapStep(ctx)
			if err != nil || fin {
				done <- err
				return
			}
		}
	}()
	seen := 0
	for finished := false; !finished; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			finished = true
		default:
		}
		st, err := v.KeyStatus(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen++
		if st.Rewrap.Rewrapped+st.Rewrap.Remaining != st.Records {
			t.Fatalf("status %d: rewrapped %d + remaining %d != %d records", seen, st.Rewrap.Rewrapped, st.Rewrap.Remaining, st.Records)
		}
	}
	if seen < 2 {
		t.Logf("only %d statuses seen during the rewrap", seen)
	}
}

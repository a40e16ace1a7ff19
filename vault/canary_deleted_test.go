package vault

import (
	"context"
	"errors"
	"testing"
)

// A canary mark is reported only for a token whose record exists: a deleted canary
// token (DeleteTokens tombstones the record and leaves the mark in bucketCanaries) is not
// found and not flagged, on bbolt (two reads) and on PostgreSQL (the marks in the records'
// statement, store.GetManyIn). No other test holds a mark without its record, so nothing
// pinned readItems' `raws[k].rec != nil` on the paired path.
func TestCanaryOfDeletedTokenNotFlagged(t *testing.T) {
	onBothBackends(t, testCanaryOfDeletedTokenNotFlagged)
}

func testCanaryOfDeletedTokenNotFlagged(t *testing.T, v *Vault) {
	ctx := context.Background()
	can, err := v.CreateCanary(ctx, "", "pan", "4000000000000002", "honeytoken-1")
	if err != nil {
		t.Fatal(err)
	}
	ref := []TokenRef{{Token: can.Token, Domain: can.Domain}}
	got, err := v.Detokenize(ctx, "p", ref)
	if err != nil || !got[0].Canary {
		t.Fatalf("live canary: %+v, %v", got, err)
	}
	if _, errs, err := v.DeleteTokens(ctx, ref); err != nil || errs[0] != nil {
		t.Fatalf("DeleteTokens: %v %v", errs, err)
	}
	got, err = v.Detokenize(ctx, "p", ref)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Canary || got[0].CanaryLabel != "" || !errors.Is(got[0].Err, ErrNotFound) {
		t.Errorf("deleted canary token: %+v, want not found and not flagged", got[0])
	}
}

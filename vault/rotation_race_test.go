package vault

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// holdStore blocks the first Update after arming until release is closed.
type holdStore struct {
	store.Store
	armed   atomic.Bool
	blocked chan struct{}
	release chan struct{}
}

func (h *holdStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if h.armed.CompareAndSwap(true, false) {
		close(h.blocked)
		<-h.release
	}
	return h.Store.Update(ctx, fn)
}

// openHeld opens a vault over a holdStore.
func openHeld(t *testing.T) (*Vault, *holdStore) {
	h := &holdStore{blocked: make(chan struct{}), release: make(chan struct{})}
	v, _ := openTest(t, wrapStore(func(s store.Store) store.Store { h.Store = s; return h }))
	return v, h
}

func TestRotationWaitsForInFlightWrites(t *testing.T) {
	ctx := context.Background()
	v, h := openHeld(t)
	tokenizeValues(t, v, 600)
	old := v.keyring().PrimaryKeyID()
	// A tokenize call that has sealed its value (under the current primary) and waits for its commit.
	h.armed.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := v.Tokenize(ctx, []TokenizeItem{{Value: "late value", Template: "opaque"}})
		done <- err
	}()
	<-h.blocked
	// Meanwhile a rotation: it must wait for the write sealed under the old primary.
	rotated := make(chan error, 1)
	go func() { _, err := v.RotateDataKey(ctx); rotated <- err }()
	select {
	case err := <-rotated:
		t.Fatalf("the rotation did not wait for an in-flight write sealed under the old key (err %v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(h.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-rotated; err != nil {
		t.Fatal(err)
	}
	rewrapAll(t, v)
	ks, _ := v.KeyStatus(ctx)
	t.Logf("rewrap: done=%v remaining=%d; keys %+v", ks.Rewrap.Done, ks.Rewrap.Remaining, ks.Keys)
	if ks.Rewrap.Remaining != 0 {
		t.Errorf("rewrap reports done with %d record(s) still under old key %d", ks.Rewrap.Remaining, old)
	}
	if err := v.DisableDataKey(ctx, old); errors.Is(err, ErrKeyInUse) {
		t.Errorf("the old key can never be disabled: %v", err)
	}
}

func TestRotationDuringRewrapStep(t *testing.T) {
	ctx := context.Background()
	v, h := openHeld(t)
	tokenizeValues(t, v, 600)
	if _, err := v.RotateDataKey(ctx); err != nil { // first rotation: a rewrap starts
		t.Fatal(err)
	}
	// One rewrap step reads its state and a batch, and is about to commit...
	h.armed.Store(true)
	done := make(chan error, 1)
	go func() { _, err := v.rewrapStep(ctx); done <- err }()
	<-h.blocked
	// ...when a second rotation commits.
	second, err := v.RotateDataKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	close(h.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rewrapAll(t, v)
	ks, _ := v.KeyStatus(ctx)
	t.Logf("primary %d; rewrap target %d done=%v remaining=%d", second, ks.Rewrap.Target, ks.Rewrap.Done, ks.Rewrap.Remaining)
	if ks.Rewrap.Target != second || ks.Rewrap.Remaining != 0 {
		t.Errorf("after the second rotation the rewrap targets %d (primary %d) and leaves %d records under old keys", ks.Rewrap.Target, second, ks.Rewrap.Remaining)
	}
}

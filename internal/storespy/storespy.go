// Package storespy is test support: a store.Store wrapper that tells a test when a transaction
// wrote to a bucket or read keys of one for share, and a one-shot gate to hold the caller
// there. The erasure tests of vault/ and server/ use it to hold an erasure after it committed
// its erasing mark, and a tokenize while it holds its share lock, at points of their choosing.
package storespy

import (
	"context"
	"sync"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Store wraps a store.Store. Its transactions keep the share reads of the store under it
// (store.SharedGetter, store.GuardedSharedGetter), so that on PostgreSQL a tokenize through
// it still locks keys and reads guards in one statement.
type Store struct {
	store.Store
	// Bucket is the bucket whose writes Committed watches.
	Bucket store.Bucket
	// Committed, when set, is called after an Update whose function's last run wrote (Put) to
	// Bucket, outside the transaction, with the Update's error; what it returns is the
	// Update's result.
	Committed func(err error) error
	// ShareBucket is the bucket whose share reads Shared watches.
	ShareBucket store.Bucket
	// Shared, when set, is called inside the transaction after a share read of keys of
	// ShareBucket, with the values read.
	Shared func(vals [][]byte)
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	wrote := false
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		wrote = false
		return fn(spyTx{Tx: tx, s: s, wrote: &wrote})
	})
	if wrote && s.Committed != nil {
		return s.Committed(err)
	}
	return err
}

type spyTx struct {
	store.Tx
	s     *Store
	wrote *bool
}

func (t spyTx) Put(b store.Bucket, k, v []byte) error {
	if b == t.s.Bucket {
		*t.wrote = true
	}
	return t.Tx.Put(b, k, v)
}

func (t spyTx) shared(b store.Bucket, vals [][]byte) {
	if b == t.s.ShareBucket && t.s.Shared != nil {
		t.s.Shared(vals)
	}
}

func (t spyTx) GetForShare(b store.Bucket, key []byte) []byte {
	v := store.GetForShare(t.Tx, b, key)
	t.shared(b, [][]byte{v})
	return v
}

func (t spyTx) GetManyForShare(b store.Bucket, keys [][]byte) [][]byte {
	vals := store.GetManyForShare(t.Tx, b, keys)
	t.shared(b, vals)
	return vals
}

func (t spyTx) GetManyForShareUnless(b, guard store.Bucket, keys [][]byte) (vals, guards [][]byte, ok bool) {
	vals, guards = store.GetManyForShareUnless(t.Tx, b, guard, keys)
	t.shared(b, vals)
	return vals, guards, true
}

func (t spyTx) GetManyIn(reads []store.Read) ([][][]byte, bool) {
	return store.GetManyIn(t.Tx, reads), true
}

// Hold is a one-shot gate: after Arm, the next Pass closes reached and waits until release is
// closed; a Pass with the gate not armed goes on at once. Its zero value is ready to use.
type Hold struct {
	mu               sync.Mutex
	reached, release chan struct{} // nil: not armed
}

// Arm arms the gate for the next Pass.
func (h *Hold) Arm() (reached, release chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reached, h.release = make(chan struct{}), make(chan struct{})
	return h.reached, h.release
}

// Pass holds the caller if the gate is armed (and disarms it).
func (h *Hold) Pass() {
	h.mu.Lock()
	reached, release := h.reached, h.release
	h.reached, h.release = nil, nil
	h.mu.Unlock()
	if reached != nil {
		close(reached)
		<-release
	}
}

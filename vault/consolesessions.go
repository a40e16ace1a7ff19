package vault

import (
	"bytes"
	"context"
	"fmt"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Web console sessions (server/console) are kept in the store, so that every replica serves
// every session and a load balancer needs no affinity. The vault keeps each as an opaque value
// under the SHA-256 of its session id: the id itself (the browser's cookie) is never stored.
// The console owns the value's format and the timeouts. Like heartbeats, these writes are not
// audit events: the console audits sign-in, sign-out and refusals itself.

// MaxConsoleSessionSize bounds a console session's stored value.
const MaxConsoleSessionSize = 4 << 10

func checkConsoleSession(value []byte) error {
	if len(value) > MaxConsoleSessionSize {
		return fmt.Errorf("%w: a console session is at most %d bytes", ErrInvalidArgument, MaxConsoleSessionSize)
	}
	return nil
}

// PutConsoleSession stores the session whose id hashes to key.
func (v *Vault) PutConsoleSession(ctx context.Context, key [32]byte, value []byte) error {
	if err := checkConsoleSession(value); err != nil {
		return err
	}
	return v.store.Update(ctx, func(tx store.Tx) error {
		return tx.Put(bucketConsoleSessions, key[:], value)
	})
}

// ConsoleSession returns the stored session whose id hashes to key, nil when there is none.
func (v *Vault) ConsoleSession(ctx context.Context, key [32]byte) ([]byte, error) {
	var out []byte
	err := v.store.View(ctx, func(tx store.Tx) error {
		out = bytes.Clone(tx.Get(bucketConsoleSessions, key[:]))
		return nil
	})
	return out, err
}

// DeleteConsoleSessions deletes the sessions whose ids hash to keys (those that exist).
func (v *Vault) DeleteConsoleSessions(ctx context.Context, keys ...[32]byte) error {
	if len(keys) == 0 {
		return nil
	}
	return v.store.Update(ctx, func(tx store.Tx) error {
		for _, k := range keys {
			if err := tx.Delete(bucketConsoleSessions, k[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// RangeConsoleSessions calls fn with every stored session, in one snapshot, until fn returns
// false. value is fn's to keep.
func (v *Vault) RangeConsoleSessions(ctx context.Context, fn func(key [32]byte, value []byte) bool) error {
	return v.store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(bucketConsoleSessions, nil, nil, func(k, val []byte) error {
			var key [32]byte
			if len(k) != len(key) {
				return nil
			}
			copy(key[:], k)
			if !fn(key, bytes.Clone(val)) {
				return store.ErrStopScan
			}
			return nil
		})
	})
}

// UpdateConsoleSession replaces the session whose id hashes to key with fn's result, in one
// transaction, only while it exists: fn is not called when it does not (a session ended on
// another replica stays ended), and a nil result writes nothing. fn may run more than once.
func (v *Vault) UpdateConsoleSession(ctx context.Context, key [32]byte, fn func(cur []byte) []byte) error {
	return v.store.Update(ctx, func(tx store.Tx) error {
		cur := tx.Get(bucketConsoleSessions, key[:])
		if cur == nil {
			return nil
		}
		next := fn(bytes.Clone(cur))
		if next == nil {
			return nil
		}
		if err := checkConsoleSession(next); err != nil {
			return err
		}
		return tx.Put(bucketConsoleSessions, key[:], next)
	})
}

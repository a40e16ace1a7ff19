package vault

import (
	"bytes"
	"encoding/json"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Small helpers over store transactions: stored JSON objects and key scans.

// updateJSON reads the JSON object at (b, key) inside tx, lets change modify it, and writes it
// back. It reports whether the object existed; change's error aborts without writing.
func updateJSON[T any](tx store.Tx, b store.Bucket, key []byte, change func(*T) error) (bool, error) {
	blob := tx.Get(b, key)
	if blob == nil {
		return false, nil
	}
	var obj T
	if err := json.Unmarshal(blob, &obj); err != nil {
		return true, err
	}
	if err := change(&obj); err != nil {
		return true, err
	}
	nb, err := json.Marshal(obj)
	if err != nil {
		return true, err
	}
	return true, tx.Put(b, key, nb)
}

// scanKeys returns copies of the keys of bucket b with prefix, in order, up to the first for
// which stop (if not nil) is true: to delete them after the scan.
func scanKeys(tx store.Tx, b store.Bucket, prefix []byte, stop func(k []byte) bool) ([][]byte, error) {
	var keys [][]byte
	err := tx.Scan(b, prefix, nil, func(k, _ []byte) error {
		if stop != nil && stop(k) {
			return store.ErrStopScan
		}
		keys = append(keys, bytes.Clone(k))
		return nil
	})
	return keys, err
}

package vault

import (
	"encoding/json"

	"github.com/tokenvault/tokenvault/vault/store"
)

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

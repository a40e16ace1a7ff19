package store_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/tokenvault/tokenvault/vault/store"
)

func Example() {
	dir, err := os.MkdirTemp("", "store-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := store.Open(filepath.Join(dir, "vault.db"), store.Options{})
	if err != nil {
		log.Fatal(err) // errors.Is(err, store.ErrLocked) if another process has it
	}
	defer s.Close()
	ctx := context.Background()

	// Update returns once the write is fsynced. The function may run more
	// than once: it only touches the Tx and its own result variable.
	var seq uint64
	err = s.Update(ctx, func(tx store.Tx) error {
		var err error
		if seq, err = tx.NextSequence("audit"); err != nil {
			return err
		}
		if err := tx.Put("audit", fmt.Appendf(nil, "%020d", seq), []byte("tokenized")); err != nil {
			return err
		}
		return tx.Put("tokens", []byte("tok_1"), []byte("ciphertext"))
	})
	if err != nil {
		log.Fatal(err)
	}

	// Values read in View are valid only inside it: copy them out.
	var value []byte
	err = s.View(ctx, func(tx store.Tx) error {
		value = bytes.Clone(tx.Get("tokens", []byte("tok_1")))
		return tx.Scan("audit", nil, nil, func(k, v []byte) error {
			fmt.Printf("audit %s: %s\n", bytes.TrimLeft(k, "0"), v)
			return nil
		})
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("seq %d, value %s\n", seq, value)
	// Output:
	// audit 1: tokenized
	// seq 1, value ciphertext
}

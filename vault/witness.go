package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
)

// Witness keeps signed checkpoints outside the vault's store, on storage the vault's operator
// cannot rewrite, so that `audit verify --witness` catches history rewritten even with the
// signing key, and checkpoints or events deleted from the store. A checkpoint covers every
// event before it: a witness that missed some only needs the latest.
type Witness interface {
	Witness(ctx context.Context, c Checkpoint) error
}

// FileWitness appends each checkpoint as one JSON line (the checkpoint as signed) to a file,
// opened O_APPEND|O_CREATE with mode 0600 and synced before Witness returns. It belongs on
// another volume, ideally append-only storage: a witness beside the store can be rewritten
// with it.
type FileWitness struct{ Path string }

// Check opens the file for appending (creating it): a path that cannot be written fails at
// start rather than at the first checkpoint.
func (f FileWitness) Check() error {
	fh, err := os.OpenFile(f.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return fh.Close()
}

// Witness appends c and syncs the file.
func (f FileWitness) Witness(_ context.Context, c Checkpoint) error {
	line, err := json.Marshal(c)
	if err != nil {
		return err
	}
	fh, err := os.OpenFile(f.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := fh.Write(append(line, '\n')); err != nil {
		fh.Close()
		return fmt.Errorf("appending to the witness file: %w", err)
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return fmt.Errorf("syncing the witness file: %w", err)
	}
	return fh.Close()
}

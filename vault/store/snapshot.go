package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Snapshotter is implemented by stores that can write a consistent copy of themselves while
// serving (an online backup).
type Snapshotter interface {
	// Snapshot writes a consistent copy of the whole store to w and returns its size. Writes
	// go on meanwhile; they are not in the copy.
	Snapshot(ctx context.Context, w io.Writer) (int64, error)
}

// Snapshot implements Snapshotter: the copy is a bbolt file, written from one read
// transaction. With the journal, everything committed before the call is merged into the
// B-tree first, so the copy holds it and needs no journal.
func (s *Bolt) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.isDone.Load() {
		return 0, ErrClosed
	}
	if s.j != nil {
		if err := s.j.flush(ctx); err != nil {
			return 0, fmt.Errorf("store: snapshot: %w", err)
		}
	}
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx: ctx, w: w})
		return err
	})
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return 0, ErrClosed
	}
	if err != nil {
		return n, fmt.Errorf("store: snapshot: %w", err)
	}
	return n, nil
}

// ctxWriter stops a long copy when its context ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// WriteFile writes what r holds to path, opened write-only with os.O_CREATE, flag (such as
// os.O_EXCL, os.O_APPEND or os.O_TRUNC) and mode DefaultMode if created, and fsyncs it
// before closing, as the store's own files are written. It returns the bytes written; on an
// error the file may hold part of them.
func WriteFile(path string, flag int, r io.Reader) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, DefaultMode)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// RestoreFile writes a snapshot read from r to path, which must not exist, with mode 0600,
// fsynced, and checks that the result opens as a consistent store. It is an offline
// operation: no server may be using path.
func RestoreFile(r io.Reader, path string) (int64, error) {
	if ids, err := journalIDs(path); err == nil && len(ids) > 0 {
		return 0, fmt.Errorf("store: restore: %s holds the journal of another store: restore into an empty directory", journalPath(path, ids[0]))
	}
	n, err := WriteFile(path, os.O_EXCL, r)
	if err != nil {
		if !errors.Is(err, os.ErrExist) {
			os.Remove(path)
		}
		return n, fmt.Errorf("store: restore: %w", err)
	}
	s, err := Open(path, Options{})
	if err == nil {
		err = s.Check()
		if cerr := s.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		os.Remove(path)
		return n, fmt.Errorf("store: restore: the snapshot is not a consistent store: %w", err)
	}
	return n, nil
}

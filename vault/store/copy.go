package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Limits of one Update of Copy: a copy commits in chunks, so a large store never makes one
// huge transaction.
const (
	copyChunkKeys  = 1000
	copyChunkBytes = 8 << 20
)

// BucketCount describes one bucket of a store: how many keys it holds and its sequence.
type BucketCount struct {
	Bucket   Bucket `json:"bucket"`
	Keys     int    `json:"keys"`
	Sequence uint64 `json:"sequence"`
}

// Counts returns every bucket of s (Tx.Buckets) with its number of keys and its sequence,
// read in one View, in bucket order.
func Counts(ctx context.Context, s Store) ([]BucketCount, error) {
	var out []BucketCount
	err := s.View(ctx, func(tx Tx) (err error) {
		out, err = walkBuckets(tx, nil, nil)
		return err
	})
	return out, err
}

// walkBuckets scans every bucket of tx in bucket order, passing each pair to visit (when not
// nil) and, after a bucket's last pair, its count and sequence to done (when not nil). It
// returns the counts: the one walk that Counts and Copy share.
func walkBuckets(tx Tx, visit func(b Bucket, k, v []byte) error, done func(BucketCount) error) ([]BucketCount, error) {
	bs, err := tx.Buckets()
	if err != nil {
		return nil, err
	}
	out := make([]BucketCount, 0, len(bs))
	for _, b := range bs {
		c := BucketCount{Bucket: b}
		if c.Sequence, err = tx.Sequence(b); err != nil {
			return nil, err
		}
		err := tx.Scan(b, nil, nil, func(k, v []byte) error {
			c.Keys++
			if visit == nil {
				return nil
			}
			return visit(b, k, v)
		})
		if err == nil && done != nil {
			err = done(c)
		}
		if err != nil {
			return nil, fmt.Errorf("bucket %s: %w", b, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// ErrNotEmpty is returned by Copy when the destination already holds data.
var ErrNotEmpty = errors.New("store: the destination is not empty")

// Copy copies every bucket of src (keys, values and sequence) into dst, which must be empty
// (else ErrNotEmpty, and nothing is written). It reads src in one View, so the copy is a
// consistent snapshot while src keeps serving, and writes dst in Updates of at most about a
// thousand keys or a few MiB each. It returns the counts it copied, in bucket order. On an
// error dst may hold part of the copy: empty it (a new file, a new database) before trying
// again. Values are copied as they are: encrypted values stay encrypted under the same keys.
func Copy(ctx context.Context, dst, src Store) ([]BucketCount, error) {
	empty := true
	if err := dst.View(ctx, func(tx Tx) error {
		bs, err := tx.Buckets()
		empty = len(bs) == 0
		return err
	}); err != nil {
		return nil, fmt.Errorf("store: copy: reading the destination: %w", err)
	}
	if !empty {
		return nil, ErrNotEmpty
	}
	var out []BucketCount
	err := src.View(ctx, func(tx Tx) error {
		var keys, values [][]byte
		size := 0
		flush := func(b Bucket) error {
			if len(keys) == 0 {
				return nil
			}
			err := dst.Update(ctx, func(w Tx) error {
				for i, k := range keys {
					if err := w.Put(b, k, values[i]); err != nil {
						return err
					}
				}
				return nil
			})
			keys, values, size = keys[:0], values[:0], 0
			return err
		}
		var err error
		out, err = walkBuckets(tx, func(b Bucket, k, v []byte) error {
			keys, values = append(keys, k), append(values, v)
			size += len(k) + len(v)
			if len(keys) >= copyChunkKeys || size >= copyChunkBytes {
				return flush(b)
			}
			return nil
		}, func(c BucketCount) error {
			if err := flush(c.Bucket); err != nil || c.Sequence == 0 {
				return err
			}
			return dst.Update(ctx, func(w Tx) error { return w.AdvanceSequence(c.Bucket, c.Sequence) })
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: copy: %w", err)
	}
	return out, nil
}

// SnapshotOf writes a consistent copy of any store to w, in the format of Bolt.Snapshot (a
// bbolt file that RestoreFile accepts), and returns its size. It copies src (Copy: one View)
// into a temporary bbolt file in dir (os.TempDir() if empty), which it removes before
// returning: dir needs room for a copy of the store. It is how a store that cannot write a
// bbolt file itself (pgstore) produces a backup that restores on either backend.
func SnapshotOf(ctx context.Context, src Store, w io.Writer, dir string) (int64, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	tmp, err := os.MkdirTemp(dir, "tokenvault-snapshot-")
	if err != nil {
		return 0, fmt.Errorf("store: snapshot: %w", err)
	}
	defer os.RemoveAll(tmp)
	b, err := Open(filepath.Join(tmp, FileName), Options{NoSync: true, InitialMmapSize: -1, NoKeyFilter: true})
	if err != nil {
		return 0, fmt.Errorf("store: snapshot: %w", err)
	}
	defer b.Close()
	if _, err := Copy(ctx, b, src); err != nil {
		return 0, fmt.Errorf("store: snapshot: %w", err)
	}
	return b.Snapshot(ctx, w)
}

// equalCounts reports whether two count lists are the same.
func equalCounts(a, b []BucketCount) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// VerifyCopy compares the counts of two stores (Counts) and returns an error naming the first
// bucket that differs; want is usually what Copy returned.
func VerifyCopy(ctx context.Context, want []BucketCount, dst Store) ([]BucketCount, error) {
	got, err := Counts(ctx, dst)
	if err != nil {
		return nil, err
	}
	if equalCounts(want, got) {
		return got, nil
	}
	gm := map[Bucket]BucketCount{}
	for _, c := range got {
		gm[c.Bucket] = c
	}
	for _, c := range want {
		if g := gm[c.Bucket]; g != c {
			return got, fmt.Errorf("store: copy: bucket %s: %d keys and sequence %d copied, the destination has %d and %d", c.Bucket, c.Keys, c.Sequence, g.Keys, g.Sequence)
		}
	}
	return got, fmt.Errorf("store: copy: the destination has %d buckets, %d were copied", len(got), len(want))
}

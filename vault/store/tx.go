package store

import (
	"bytes"
	"context"
	"errors"

	bolt "go.etcd.io/bbolt"
)

// emptyValue is stored for nil values so that Get can tell an empty value
// (non-nil, length 0) from an absent key (nil).
var emptyValue = []byte{}

// scanCtxEvery is how many keys a View's Scan visits between context checks.
const scanCtxEvery = 256

// groupTx is one bbolt transaction, shared by the functions of a group.
type groupTx struct {
	btx     *bolt.Tx
	buckets map[Bucket]*bolt.Bucket // opened buckets; only valid names
}

func newGroupTx(btx *bolt.Tx) *groupTx { return &groupTx{btx: btx} }

// bucket returns bucket b, which must be a valid name, creating it if create
// is set. It returns nil, nil if b does not exist and create is not set.
func (g *groupTx) bucket(b Bucket, create bool) (*bolt.Bucket, error) {
	if bk := g.buckets[b]; bk != nil {
		return bk, nil
	}
	name := []byte(b)
	bk := g.btx.Bucket(name)
	if bk == nil {
		if !create {
			return nil, nil
		}
		var err error
		if bk, err = g.btx.CreateBucket(name); err != nil {
			return nil, err
		}
	}
	if g.buckets == nil {
		g.buckets = make(map[Bucket]*bolt.Bucket)
	}
	g.buckets[b] = bk
	return bk, nil
}

// validBucket is Bucket.Validate with a fast path for buckets already opened.
func (g *groupTx) validBucket(b Bucket) error {
	if _, ok := g.buckets[b]; ok {
		return nil
	}
	return b.Validate()
}

// boltTx is the Tx handed to one run of one function.
type boltTx struct {
	g        *groupTx
	ctx      context.Context // View only: checked during Scan
	writable bool
	dirty    bool     // a write may have reached g.btx
	done     bool     // the function has returned
	scanning []Bucket // buckets being scanned, innermost last
}

var _ Tx = (*boltTx)(nil)

func (t *boltTx) finish() { t.done = true }

func (t *boltTx) GetMany(b Bucket, keys [][]byte) [][]byte {
	if len(keys) == 0 {
		return nil
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = t.Get(b, k)
	}
	return out
}

func (t *boltTx) Get(b Bucket, key []byte) []byte {
	if t.done || ValidateKey(key) != nil || t.g.validBucket(b) != nil {
		return nil
	}
	bk, _ := t.g.bucket(b, false)
	if bk == nil {
		return nil
	}
	return bk.Get(key)
}

func (t *boltTx) checkWrite(b Bucket, key []byte) error {
	return checkWrite(t.done, t.writable, t.scanning, b, key)
}

func (t *boltTx) Put(b Bucket, key, value []byte) error {
	if err := t.checkWrite(b, key); err != nil {
		return err
	}
	if err := ValidateValue(value); err != nil {
		return err
	}
	if value == nil {
		value = emptyValue
	}
	t.dirty = true
	bk, err := t.g.bucket(b, true)
	if err != nil {
		return err
	}
	return bk.Put(key, value)
}

func (t *boltTx) Insert(b Bucket, key, value []byte) error {
	if err := t.checkWrite(b, key); err != nil {
		return err
	}
	if err := ValidateValue(value); err != nil {
		return err
	}
	if t.Get(b, key) != nil {
		return ErrExists
	}
	return t.Put(b, key, value)
}

func (t *boltTx) Delete(b Bucket, key []byte) error {
	if err := t.checkWrite(b, key); err != nil {
		return err
	}
	bk, _ := t.g.bucket(b, false)
	if bk == nil {
		return nil
	}
	t.dirty = true
	return bk.Delete(key)
}

func (t *boltTx) NextSequence(b Bucket) (uint64, error) {
	bk, err := t.sequenceBucket(b)
	if err != nil {
		return 0, err
	}
	return bk.NextSequence()
}

// sequenceBucket checks a sequence call and returns bucket b, created if needed.
func (t *boltTx) sequenceBucket(b Bucket) (*bolt.Bucket, error) {
	switch {
	case t.done:
		return nil, ErrTxDone
	case !t.writable:
		return nil, ErrReadOnly
	}
	if err := t.g.validBucket(b); err != nil {
		return nil, err
	}
	t.dirty = true
	return t.g.bucket(b, true)
}

func (t *boltTx) Scan(b Bucket, prefix, start []byte, fn func(k, v []byte) error) error {
	if t.done {
		return ErrTxDone
	}
	if err := t.g.validBucket(b); err != nil {
		return err
	}
	bk, _ := t.g.bucket(b, false)
	if bk == nil {
		return nil
	}
	seek := prefix
	if start != nil && bytes.Compare(start, prefix) > 0 {
		seek = start
	}
	t.scanning = append(t.scanning, b)
	defer func() { t.scanning = t.scanning[:len(t.scanning)-1] }()

	c := bk.Cursor()
	var k, v []byte
	if len(seek) == 0 {
		k, v = c.First()
	} else {
		k, v = c.Seek(seek)
	}
	for n := 1; k != nil; k, v = c.Next() {
		if !bytes.HasPrefix(k, prefix) {
			break
		}
		if v == nil {
			continue // a nested bbolt bucket: never created by this package
		}
		if stop, err := visit(t.ctx, n, fn, k, v); stop {
			return err
		}
		n++
	}
	return nil
}

// visit passes the n-th pair of a Scan to fn. It reports whether the scan
// stops, and with what result: fn returned ErrStopScan (nil) or another
// error, or, every scanCtxEvery pairs, ctx (a View's) is done.
func visit(ctx context.Context, n int, fn func(k, v []byte) error, k, v []byte) (bool, error) {
	if err := fn(k, v); err != nil {
		if errors.Is(err, ErrStopScan) {
			return true, nil
		}
		return true, err
	}
	if ctx != nil && n%scanCtxEvery == 0 {
		if err := ctx.Err(); err != nil {
			return true, err
		}
	}
	return false, nil
}

func (t *boltTx) Buckets() ([]Bucket, error) {
	if t.done {
		return nil, ErrTxDone
	}
	var out []Bucket
	err := t.g.btx.ForEach(func(name []byte, bk *bolt.Bucket) error {
		b := Bucket(name)
		if b.Validate() != nil {
			return nil // not one of ours
		}
		if bk.Sequence() != 0 {
			out = append(out, b)
			return nil
		}
		if k, _ := bk.Cursor().First(); k != nil {
			out = append(out, b)
		}
		return nil
	})
	return out, err
}

func (t *boltTx) Sequence(b Bucket) (uint64, error) {
	if t.done {
		return 0, ErrTxDone
	}
	if err := t.g.validBucket(b); err != nil {
		return 0, err
	}
	bk, _ := t.g.bucket(b, false)
	if bk == nil {
		return 0, nil
	}
	return bk.Sequence(), nil
}

// AdvanceSequence implements Tx.
// It writes nothing (and costs no commit) when the sequence is already there.
func (t *boltTx) AdvanceSequence(b Bucket, atLeast uint64) error {
	if t.writable && !t.done && t.g.validBucket(b) == nil {
		if bk, _ := t.g.bucket(b, false); bk != nil && bk.Sequence() >= atLeast {
			return nil
		}
	}
	bk, err := t.sequenceBucket(b)
	if err != nil || bk.Sequence() >= atLeast {
		return err
	}
	return bk.SetSequence(atLeast)
}

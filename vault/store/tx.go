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
	btx *bolt.Tx
	w   *genWriter
	ok  map[Bucket]bool // names already validated
}

func newGroupTx(btx *bolt.Tx, genKeys int) *groupTx {
	return &groupTx{btx: btx, w: newGenWriter(btx, genKeys)}
}

// bucket returns bucket b's B-trees, b being a valid name, creating its base
// if create is set. It returns nil, nil if b does not exist and create is
// not set.
func (g *groupTx) bucket(b Bucket, create bool) (*wgens, error) {
	bk, err := g.w.bucket([]byte(b), create)
	if bk != nil {
		if g.ok == nil {
			g.ok = make(map[Bucket]bool)
		}
		g.ok[b] = true
	}
	return bk, err
}

// validBucket is Bucket.Validate with a fast path for buckets already opened.
func (g *groupTx) validBucket(b Bucket) error {
	if g.ok[b] {
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
	return bk.lookup(key)
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
	_, err = t.g.w.put(bk, key, value, keyProbe{})
	return err
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
	_, err := t.g.w.delete(bk, key, keyProbe{})
	return err
}

func (t *boltTx) NextSequence(b Bucket) (uint64, error) {
	bk, err := t.sequenceBucket(b)
	if err != nil {
		return 0, err
	}
	return bk.base().NextSequence()
}

// sequenceBucket checks a sequence call and returns bucket b, created if needed.
func (t *boltTx) sequenceBucket(b Bucket) (*wgens, error) {
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

	c := bk.cursor()
	for n, k, v := 1, []byte(nil), []byte(nil); ; n++ {
		if n == 1 {
			k, v = c.seek(seek)
		} else {
			k, v = c.next()
		}
		if k == nil || !bytes.HasPrefix(k, prefix) {
			return nil
		}
		if stop, err := visit(t.ctx, n, fn, k, v); stop {
			return err
		}
	}
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
			return nil // not one of ours, or a generation (listed as its bucket)
		}
		if bk.Sequence() != 0 || !openGens(t.g.btx, name).empty() {
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
	return bk.base().Sequence(), nil
}

// AdvanceSequence implements Tx.
// It writes nothing (and costs no commit) when the sequence is already there.
func (t *boltTx) AdvanceSequence(b Bucket, atLeast uint64) error {
	if t.writable && !t.done && t.g.validBucket(b) == nil {
		if bk, _ := t.g.bucket(b, false); bk != nil && bk.base().Sequence() >= atLeast {
			return nil
		}
	}
	bk, err := t.sequenceBucket(b)
	if err != nil || bk.base().Sequence() >= atLeast {
		return err
	}
	return bk.base().SetSequence(atLeast)
}

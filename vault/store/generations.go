package store

import (
	"bytes"
	"encoding/binary"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// Generations: a bucket's keys in several B-trees (see doc.go, "Generations").
//
// A bucket is one bbolt bucket, its base, until genKeys new keys were put
// into it; the next new key begins generation 1, the bbolt bucket named
// "b 0x00 n" (n as 4 bytes big-endian, a name no Bucket can have), and so on.
// New keys go into the newest generation; a key already stored stays where
// it is (Put overwrites it there, Delete removes it there), so a key is in
// at most one generation. The base holds the bucket's sequence. Generations
// are never removed, and are found by name: generation n+1 exists only if n
// does.
//
// Why: a merge of random keys into one large B-tree touches a page per key,
// and the cost of each grows with the tree. Keeping new keys in a tree of at
// most genKeys keys bounds what a merge rewrites, whatever the store's size;
// reads pay a descent per generation for keys the key filter cannot rule
// out.

// defaultGenKeys is how many new keys a generation takes before the next
// one begins.
const defaultGenKeys = 1 << 20

// genKeyPrefix, followed by a bucket's name, is the key in metaBucket of the
// number of new keys put into that bucket's newest generation (uint64,
// big-endian; deletes do not lower it).
var genKeyPrefix = []byte("gen-keys\x00")

// genName appends to dst the bbolt name of generation n (n >= 1) of bucket b.
func genName(dst, b []byte, n int) []byte {
	dst = append(dst, b...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint32(dst, uint32(n))
}

// splitGenName returns the bucket and generation a bbolt bucket name is
// of: a generation's name is its bucket's, 0x00 and its number; any other
// name is a base (generation 0).
func splitGenName(name []byte) (bucket []byte, gen int) {
	if i := bytes.IndexByte(name, 0); i > 0 && len(name) == i+5 {
		return name[:i], int(binary.BigEndian.Uint32(name[i+1:]))
	}
	return name, 0
}

// gens is a bucket's B-trees in one bbolt transaction, newest first, the
// base last.
type gens struct {
	bks []*bolt.Bucket
	cs  []*bolt.Cursor // read cursors, made on first use (read transactions only)
}

// openGens returns bucket b's B-trees in btx, or nil if it has none.
func openGens(btx *bolt.Tx, b []byte) *gens {
	base := btx.Bucket(b)
	if base == nil {
		return nil
	}
	g := &gens{bks: []*bolt.Bucket{base}}
	var name []byte
	for n := 1; ; n++ {
		name = genName(name[:0], b, n)
		bk := btx.Bucket(name)
		if bk == nil {
			break
		}
		g.bks = append(g.bks, bk)
	}
	slices.Reverse(g.bks)
	return g
}

// base returns the bucket's base B-tree, which holds its sequence.
func (g *gens) base() *bolt.Bucket { return g.bks[len(g.bks)-1] }

// get returns key's value, nil if absent, with one reused cursor per
// B-tree (Bucket.Get allocates one per call). Read transactions only. p is
// the key's probe of a key filter valid for the transaction (or the zero
// probe): generations it rules out are not read. read reports whether any was.
func (g *gens) get(key []byte, p keyProbe) (value []byte, read bool) {
	if g.cs == nil {
		g.cs = make([]*bolt.Cursor, len(g.bks))
	}
	for i, bk := range g.bks {
		if !p.has(len(g.bks) - 1 - i) {
			continue
		}
		read = true
		c := g.cs[i]
		if c == nil {
			c = bk.Cursor()
			g.cs[i] = c
		}
		if k, v := c.Seek(key); v != nil && bytes.Equal(k, key) {
			return v, true
		}
	}
	return nil, read
}

// lookup returns key's value, nil if absent (for write transactions,
// whose cursors get may not reuse).
func (g *gens) lookup(key []byte) []byte {
	for _, bk := range g.bks {
		if v := bk.Get(key); v != nil {
			return v
		}
	}
	return nil
}

// holder returns the index of the B-tree holding key, -1 if none does. p
// is as for get.
func (g *gens) holder(key []byte, p keyProbe) int {
	for i, bk := range g.bks {
		if !p.has(len(g.bks) - 1 - i) {
			continue
		}
		if bk.Get(key) != nil {
			return i
		}
	}
	return -1
}

// empty reports whether no B-tree of g has a key (its sequence aside).
func (g *gens) empty() bool {
	for _, bk := range g.bks {
		if k, _ := bk.Cursor().First(); k != nil {
			return false
		}
	}
	return true
}

// cursor returns a cursor over the keys of all of g's B-trees, in order.
func (g *gens) cursor() *genCursor {
	c := &genCursor{cs: make([]*bolt.Cursor, len(g.bks)), ks: make([][]byte, len(g.bks)), vs: make([][]byte, len(g.bks))}
	for i, bk := range g.bks {
		c.cs[i] = bk.Cursor()
	}
	return c
}

// genCursor walks the keys of a bucket's generations in key order (each key
// being in one generation only), skipping nested bbolt buckets, which this
// package never creates.
type genCursor struct {
	cs     []*bolt.Cursor
	ks, vs [][]byte // each cursor's current pair; ks[i] nil once it is done
	cur    int      // the cursor of the last pair returned
}

// seek moves to the first key at or after key (the first key of all if key
// is empty) and returns it with its value, or nil, nil.
func (c *genCursor) seek(key []byte) ([]byte, []byte) {
	for i, bc := range c.cs {
		var k, v []byte
		if len(key) == 0 {
			k, v = bc.First()
		} else {
			k, v = bc.Seek(key)
		}
		c.settle(i, k, v)
	}
	return c.min()
}

// next moves past the pair last returned and returns the next one.
func (c *genCursor) next() ([]byte, []byte) {
	if c.ks[c.cur] != nil {
		k, v := c.cs[c.cur].Next()
		c.settle(c.cur, k, v)
	}
	return c.min()
}

// settle records cursor i's pair k, v, first moving it past nested buckets.
func (c *genCursor) settle(i int, k, v []byte) {
	for k != nil && v == nil {
		k, v = c.cs[i].Next()
	}
	c.ks[i], c.vs[i] = k, v
}

func (c *genCursor) min() ([]byte, []byte) {
	c.cur = -1
	for i, k := range c.ks {
		if k != nil && (c.cur < 0 || bytes.Compare(k, c.ks[c.cur]) < 0) {
			c.cur = i
		}
	}
	if c.cur < 0 {
		c.cur = 0
		return nil, nil
	}
	return c.ks[c.cur], c.vs[c.cur]
}

// genWriter writes the keys of a bbolt write transaction's buckets into
// their generations. Its counts are written back by flush, which must run
// before the transaction commits.
type genWriter struct {
	btx   *bolt.Tx
	limit uint64 // genKeys
	open  map[string]*wgens
}

// wgens is a bucket's B-trees in a write transaction, and its count of new
// keys in the newest.
type wgens struct {
	gens
	name    []byte
	count   uint64
	counted bool // count read from metaBucket (only a new key needs it)
	dirty   bool // count changed
}

func newGenWriter(btx *bolt.Tx, limit int) *genWriter {
	if limit <= 0 {
		limit = defaultGenKeys
	}
	return &genWriter{btx: btx, limit: uint64(limit)}
}

// bucket returns bucket b's B-trees, creating its base if create is set; it
// returns nil, nil if b has none and create is not set.
func (w *genWriter) bucket(b []byte, create bool) (*wgens, error) {
	if g := w.open[string(b)]; g != nil {
		return g, nil
	}
	g := openGens(w.btx, b)
	if g == nil {
		if !create {
			return nil, nil
		}
		base, err := w.btx.CreateBucket(b)
		if err != nil {
			return nil, err
		}
		g = &gens{bks: []*bolt.Bucket{base}}
	}
	wg := &wgens{gens: *g, name: bytes.Clone(b)}
	if w.open == nil {
		w.open = make(map[string]*wgens)
	}
	w.open[string(b)] = wg
	return wg, nil
}

// put writes key in g where it is, or, if it is in none of g's B-trees, in
// the newest generation as a new key, beginning a generation if the newest
// is full. p is as for get. It returns the generation written.
func (w *genWriter) put(g *wgens, key, value []byte, p keyProbe) (gen int, err error) {
	if i := g.holder(key, p); i >= 0 {
		return len(g.bks) - 1 - i, g.bks[i].Put(key, value)
	}
	if !g.counted {
		// Read here, not when the bucket is opened: a read-only View (plain
		// path) or a transaction that only overwrites never needs it.
		if meta := w.btx.Bucket(metaBucket); meta != nil {
			if v := meta.Get(append(slices.Clip(genKeyPrefix), g.name...)); len(v) == 8 {
				g.count = binary.BigEndian.Uint64(v)
			}
		}
		g.counted = true
	}
	if g.count >= w.limit {
		bk, err := w.btx.CreateBucket(genName(nil, g.name, len(g.bks)))
		if err != nil {
			return 0, err
		}
		g.bks = slices.Insert(g.bks, 0, bk)
		g.count = 0
	}
	g.count++
	g.dirty = true
	return len(g.bks) - 1, g.bks[0].Put(key, value)
}

// delete deletes key from g, and returns the generation it was in, -1 if
// it was absent. p is as for get.
func (w *genWriter) delete(g *wgens, key []byte, p keyProbe) (gen int, err error) {
	i := g.holder(key, p)
	if i < 0 {
		return -1, nil
	}
	return len(g.bks) - 1 - i, g.bks[i].Delete(key)
}

// flush writes the changed counts of new keys into metaBucket.
func (w *genWriter) flush() error {
	var meta *bolt.Bucket
	for _, g := range w.open {
		if !g.dirty {
			continue
		}
		if meta == nil {
			var err error
			if meta, err = w.btx.CreateBucketIfNotExists(metaBucket); err != nil {
				return err
			}
		}
		if err := meta.Put(append(slices.Clip(genKeyPrefix), g.name...), binary.BigEndian.AppendUint64(nil, g.count)); err != nil {
			return err
		}
		g.dirty = false
	}
	return nil
}

package store

import (
	"bytes"
	"hash/maphash"
	"slices"
	"sync/atomic"
)

// The in-memory overlay of the journaled Bolt: one memtable per journal file
// (see journal.go). A memtable is a skiplist of composite keys (bucket, 0x00,
// key; bucket names never contain 0x00, so the order is bucket then key),
// each with a chain of versions, newest first. It has a single writer (the
// committer goroutine) and any number of concurrent readers: nodes and
// versions are published with atomic stores after they are complete, and a
// reader only follows versions whose commit sequence number is at most the
// one its snapshot took. The writer pushes a function's versions with the
// group's sequence number (not yet visible to anyone) and can pop them again
// when the function fails: that is the savepoint bbolt lacks.
//
// A new key goes into the hash index at once (point reads and upsert find
// it there) but is linked into the skiplist later, by link, with the other
// new keys of its group: sorted, and each found from the previous one's
// predecessors (a finger search) instead of from the head. Until then the
// skiplist misses it, which only the writer could notice (its versions are
// not visible to any snapshot yet): the committer links the pending keys
// before it publishes the group, and a Scan or Buckets in an Update links
// them before it walks the skiplist.

const (
	maxHeight = 12 // 4^12 = 16M keys before the skiplist degrades
	// nodeOverhead approximates the memory a key costs beyond its bytes: the
	// node (with its short key), its tower and one version.
	nodeOverhead = 224
)

// version is one write of a key. Immutable once published.
type version struct {
	seq   uint64 // commit sequence number of the group that wrote it
	value []byte // nil for a tombstone; otherwise non-nil (empty values too)
	older *version
}

func (v *version) tombstone() bool { return v.value == nil }

type node struct {
	// The fields a skiplist walk reads come first, and a short key lives in
	// the node itself: a step of a walk is then one cache miss (the node)
	// instead of two (the node, then its key in the arena).
	key []byte // composite key; never modified. A bucket's sequence is the key with an
	// empty user key (see sequenceKey), its value 8 bytes big-endian
	next []atomic.Pointer[node]
	// The first version, a short tower and a short key live in the node
	// itself: one allocation per new key instead of three.
	tower [4]atomic.Pointer[node]
	inl   [inlineKey]byte
	hash  uint64
	head  atomic.Pointer[version]
	v0    version
	v0use bool // writer only
}

// inlineKey is the longest composite key stored in its node.
const inlineKey = 64

// visible returns the newest version of n with seq <= at, or nil.
func (n *node) visible(at uint64) *version {
	for v := n.head.Load(); v != nil; v = v.older {
		if v.seq <= at {
			return v
		}
	}
	return nil
}

type memtable struct {
	id   uint64 // journal file id
	head node   // sentinel: key nil, a full tower
	// index finds a key's node without walking the skiplist: most reads
	// (and every Put of a new key) look for keys that are not there.
	index atomic.Pointer[hashIndex]
	seed  maphash.Seed
	h     atomic.Int32
	rng   uint64       // writer only
	bytes atomic.Int64 // memory estimate: keys, values, overheads
	// records is the number of groups (journal records) in the memtable.
	records atomic.Int64
	// fileBytes is the size of the memtable's journal file.
	fileBytes atomic.Int64

	// Written by the committer while the memtable is active; read by the
	// merger once it is frozen (the freeze is published through the
	// journal's state pointer, which orders these writes before the reads).
	endOff int64  // journal file size at the freeze
	arena  []byte // current chunk for copies of keys and values

	// pending are the nodes in the index but not yet in the skiplist.
	// Writer only.
	pending []*node
}

func newMemtable(id uint64) *memtable {
	m := &memtable{id: id, rng: id*0x9e3779b97f4a7c15 | 1, seed: maphash.MakeSeed()}
	m.head.next = make([]atomic.Pointer[node], maxHeight)
	m.index.Store(newHashIndex(1 << 12))
	m.h.Store(1)
	return m
}

const arenaChunk = 64 << 10

// copyBytes copies b into the memtable's arena. The result is non-nil.
func (m *memtable) copyBytes(b []byte) []byte {
	if len(b) == 0 {
		return emptyValue
	}
	if len(b) > arenaChunk/4 {
		return append(make([]byte, 0, len(b)), b...)
	}
	if cap(m.arena)-len(m.arena) < len(b) {
		m.arena = make([]byte, 0, arenaChunk)
	}
	n := len(m.arena)
	m.arena = append(m.arena, b...)
	return m.arena[n:len(m.arena):len(m.arena)]
}

func (m *memtable) randomHeight() int {
	// xorshift64
	x := m.rng
	x ^= x << 13
	x ^= x >> 7
	x ^= x << 17
	m.rng = x
	h := 1
	for h < maxHeight && x&3 == 0 {
		h++
		x >>= 2
	}
	return h
}

// seek returns the first node with key >= key, or nil. If prev is not nil
// it receives the last node before key at every level.
func (m *memtable) seek(key []byte, prev *[maxHeight]*node) *node {
	x := &m.head
	for level := int(m.h.Load()) - 1; level >= 0; level-- {
		for {
			nx := x.next[level].Load()
			if nx == nil || bytes.Compare(nx.key, key) >= 0 {
				break
			}
			x = nx
		}
		if prev != nil {
			prev[level] = x
		}
	}
	return x.next[0].Load()
}

// find returns the node of key, or nil.
func (m *memtable) find(key []byte) *node {
	return m.index.Load().find(maphash.Bytes(m.seed, key)|1, key)
}

// first returns the first node, or nil.
func (m *memtable) first() *node { return m.head.next[0].Load() }

// upsert returns the node of key, creating it (with a copy of key) if it is
// missing. A new node is in the index at once and in the skiplist after the
// next link. Writer only.
func (m *memtable) upsert(key []byte) *node {
	hv := maphash.Bytes(m.seed, key) | 1
	ix := m.index.Load()
	if n := ix.find(hv, key); n != nil {
		return n
	}
	height := m.randomHeight()
	nn := &node{hash: hv}
	if len(key) <= len(nn.inl) {
		nn.key = nn.inl[:copy(nn.inl[:], key):len(key)]
	} else {
		nn.key = m.copyBytes(key)
	}
	if height <= len(nn.tower) {
		nn.next = nn.tower[:height]
	} else {
		nn.next = make([]atomic.Pointer[node], height)
	}
	if ix.n >= len(ix.hashes)/2 {
		ix = ix.grow()
		m.index.Store(ix)
	}
	ix.insert(nn)
	m.pending = append(m.pending, nn)
	m.bytes.Add(int64(len(key) + nodeOverhead))
	return nn
}

// link links the pending nodes into the skiplist, in key order, each
// searched for from the predecessors of the one before. Readers may walk
// the skiplist meanwhile: a node is complete before it is linked, and it is
// linked bottom-up. Writer only.
func (m *memtable) link() {
	p := m.pending
	if len(p) == 0 {
		return
	}
	if len(p) > 1 {
		slices.SortFunc(p, func(a, b *node) int { return bytes.Compare(a.key, b.key) })
	}
	var prev [maxHeight]*node
	for i := range prev {
		prev[i] = &m.head
	}
	for _, nn := range p {
		m.linkNext(nn, &prev)
	}
	clear(p)
	m.pending = p[:0]
}

// linkNext links nn, whose key is greater than those of the nodes linked
// before it by the same link call. On entry prev[i] is, at every level i, a
// node before nn's key (the predecessors of the node linked before, or the
// head); on return, nn's predecessors, or nn itself where it is linked.
func (m *memtable) linkNext(nn *node, prev *[maxHeight]*node) {
	key := nn.key
	h := int(m.h.Load())
	// Going up, the first level whose predecessor is still right: so are
	// those above it (a higher level's next node is no nearer).
	top := 0
	for ; top < h; top++ {
		nx := prev[top].next[top].Load()
		if nx == nil || bytes.Compare(nx.key, key) >= 0 {
			break
		}
	}
	// Going down from there: the node reached one level up is past every
	// old predecessor (it is past the previous key), so the walk goes on
	// from it.
	if top > 0 {
		x := prev[top-1]
		for level := top - 1; level >= 0; level-- {
			for {
				nx := x.next[level].Load()
				if nx == nil || bytes.Compare(nx.key, key) >= 0 {
					break
				}
				x = nx
			}
			prev[level] = x
		}
	}
	height := len(nn.next)
	for i := range height {
		nn.next[i].Store(prev[i].next[i].Load())
	}
	if height > h {
		m.h.Store(int32(height))
	}
	for i := range height {
		prev[i].next[i].Store(nn)
		prev[i] = nn
	}
}

// hashIndex is an open-addressing hash table of a memtable's nodes, with a
// single writer and concurrent readers: a slot's hash is written before its
// node, and a slot, once filled, never changes. It grows by building a
// bigger copy and publishing it; a reader still on the old copy can miss
// only nodes inserted after the copy was made, whose versions are all newer
// than its snapshot.
type hashIndex struct {
	hashes []atomic.Uint64 // 0: empty
	nodes  []atomic.Pointer[node]
	n      int // writer only
}

func newHashIndex(size int) *hashIndex {
	return &hashIndex{hashes: make([]atomic.Uint64, size), nodes: make([]atomic.Pointer[node], size)}
}

func (ix *hashIndex) find(h uint64, key []byte) *node {
	mask := uint64(len(ix.hashes) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch ix.hashes[i].Load() {
		case 0:
			return nil
		case h:
			if n := ix.nodes[i].Load(); n != nil && bytes.Equal(n.key, key) {
				return n
			}
		}
	}
}

func (ix *hashIndex) insert(n *node) {
	mask := uint64(len(ix.hashes) - 1)
	i := n.hash & mask
	for ix.hashes[i].Load() != 0 {
		i = (i + 1) & mask
	}
	ix.hashes[i].Store(n.hash)
	ix.nodes[i].Store(n)
	ix.n++
}

func (ix *hashIndex) grow() *hashIndex {
	nx := newHashIndex(2 * len(ix.hashes))
	for i := range ix.nodes {
		if n := ix.nodes[i].Load(); n != nil {
			nx.insert(n)
		}
	}
	return nx
}

// push adds a version to n. Writer only.
func (m *memtable) push(n *node, seq uint64, value []byte, tombstone bool) {
	var v *version
	if !n.v0use {
		// Never published before: no reader can hold it.
		n.v0use = true
		v = &n.v0
	} else {
		v = &version{}
	}
	v.seq, v.older, v.value = seq, n.head.Load(), nil
	if !tombstone {
		v.value = m.copyBytes(value)
	}
	n.head.Store(v)
	m.bytes.Add(int64(len(value) + 48))
}

// pop removes n's newest version, which must be one pushed by the group in
// flight (not yet visible to any reader). Writer only.
func (m *memtable) pop(n *node) {
	v := n.head.Load()
	n.head.Store(v.older)
	// v0 is not reused after a pop: a reader may still be looking at it.
	m.bytes.Add(-int64(len(v.value) + 48))
}

package store

import (
	"bytes"
	"hash/maphash"
	"slices"
	"sync/atomic"
	"unsafe"
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
//
// Memory: arenas the garbage collector does not scan. A memtable holds up
// to hundreds of megabytes; if that memory held Go pointers, every GC cycle
// would mark all of it. So nodes, towers, versions, keys and values live in
// chunks of pointer-free types (nodeChunk, towerChunk, versionChunk, and
// []byte chunks), allocated by the writer and never freed or reused until
// the whole memtable is dropped; they refer to each other by integer
// handles: nodeRef (a node's index), verRef (a version's index, or a node's
// inline first version), a byte reference (chunk, offset) with a length.
// TestMemtableArenasPointerFree checks the element types.
//
// Memory model. A handle is turned into an address through a chunkDir: a
// fixed two-level directory of atomic chunk pointers, so a reader never
// reads a slice the writer reallocates. The writer stores a chunk in its
// directory slot before it fills any record of the chunk, fills a record
// (plain writes) before it publishes the record's handle with an atomic
// store (a hash index slot, a tower link, a node's head), and never writes a
// published record's plain fields again. A reader only uses handles it got
// from such atomic loads (or from the memtable's constant head node), so the
// chunk and the record's plain fields happen before its reads. The fields
// the writer changes after publishing (tower links, a node's head) are
// atomics. A node's inline first version (v0) is written after the node is
// in the index, but before the head store that makes it reachable, and is
// used at most once: a popped version, inline or not, is never overwritten,
// since a reader may still be looking at it. Byte slices returned to
// readers (keys, values) point into the arenas: they are valid for as long
// as the reader holds them, and must not be modified.
//
// The directories are sized so that a memtable cannot outgrow them before
// full reports it should be frozen (at half their capacity: at least 256 Mi
// nodes, 1 Gi versions and 32 GiB of keys and values).

const (
	maxHeight = 12 // 4^12 = 16M keys before the skiplist degrades
	// inlineTower is the number of tower levels in the node itself: 98 % of
	// the nodes have no more.
	inlineTower = 4
	// inlineKey is the longest composite key stored in its node.
	inlineKey = 64
	// nodeOverhead approximates the memory a key costs beyond its bytes: the
	// node (with its short key and its first version) and its share of the
	// hash index (2 to 4 slots of 12 bytes); towers above inlineTower are
	// rare enough to ignore.
	nodeOverhead = int(unsafe.Sizeof(nodeRec{})) + 36
	// versionOverhead is the memory of a version not inline in its node.
	versionOverhead = int(unsafe.Sizeof(versionRec{}))
)

// Arena sizes: records per chunk (powers of two).
const (
	nodeChunkBits    = 9  // 512 nodes of 128 bytes: 64 KiB
	towerChunkBits   = 6  // 64 links
	versionChunkBits = 11 // 2048 versions, 48 KiB
	byteChunk        = 64 << 10
	// tombstoneLen marks a tombstone in versionRec.valueLen.
	tombstoneLen = ^uint32(0)
	// v0Flag marks a verRef naming a node's inline version.
	v0Flag = 1 << 31
)

type (
	// nodeRef is a node's index in the node arena; 0 is the head sentinel,
	// and as a link or a result "none" (the head is nobody's successor).
	nodeRef uint32
	// verRef is 0 (none), a node's ref with v0Flag (its inline version), or
	// one more than a version's index in the version arena.
	verRef uint32
)

// versionRec is one write of a key. Immutable once published.
type versionRec struct {
	seq      uint64 // commit sequence number of the group that wrote it
	value    uint64 // byte reference of the value
	valueLen uint32 // tombstoneLen for a tombstone
	older    uint32 // verRef
}

// nodeRec is a skiplist node: a key and its versions.
type nodeRec struct {
	// The fields a skiplist walk reads come first, and a short key lives in
	// the node itself: a step of a walk is then one cache miss (the node)
	// instead of two (the node, then its key in the byte arena).
	next   [inlineTower]atomic.Uint32 // nodeRef at levels 0..inlineTower-1
	head   atomic.Uint32              // verRef of the newest version
	tower  uint32                     // first slot of levels inlineTower.. in the tower arena
	keyLen uint32                     // composite key's length
	height uint8
	v0use  bool   // writer only
	key    uint64 // byte reference of a key longer than inlineKey
	// The first version lives in the node: a new key is one record.
	v0  versionRec
	inl [inlineKey]byte
}

type (
	nodeChunk    [1 << nodeChunkBits]nodeRec
	towerChunk   [1 << towerChunkBits]atomic.Uint32 // nodeRef links
	versionChunk [1 << versionChunkBits]versionRec
)

// chunkDir maps a chunk number to its chunk: a fixed two-level directory of
// atomic pointers (a page of it is allocated when first needed). Slots are
// written once, by the writer, before any record of their chunk is
// published.
type chunkDir[C any] struct {
	top [dirTop]atomic.Pointer[[dirPage]atomic.Pointer[C]]
}

const (
	dirPageBits = 10
	dirPage     = 1 << dirPageBits
	dirTop      = 1 << 10
	// dirChunks is a directory's capacity in chunks.
	dirChunks = dirTop * dirPage
)

func (d *chunkDir[C]) get(i uint32) *C {
	return d.top[i>>dirPageBits].Load()[i&(dirPage-1)].Load()
}

// set stores chunk i. Writer only.
func (d *chunkDir[C]) set(i uint32, c *C) {
	if i >= dirChunks {
		// full freezes a memtable long before; only a journal file written
		// with far larger limits can get here, at recovery.
		panic("store: memtable arena directory full")
	}
	t := &d.top[i>>dirPageBits]
	p := t.Load()
	if p == nil {
		p = new([dirPage]atomic.Pointer[C])
		t.Store(p)
	}
	p[i&(dirPage-1)].Store(c)
}

type memtable struct {
	id uint64 // journal file id
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
	endOff int64 // journal file size at the freeze

	// The arenas. Node 0 is the head sentinel: key empty, a full tower.
	nodes    chunkDir[nodeChunk]
	towers   chunkDir[towerChunk]
	versions chunkDir[versionChunk]
	chunks   chunkDir[[]byte]

	// Allocation state. Writer only.
	nNodes, nVersions uint32
	nTower, towerFree uint32 // next tower slot, slots left in its chunk
	nChunks           uint32 // byte chunks
	cur               []byte // current byte chunk; len: bytes used
	curChunk          uint32

	// pending are the nodes in the index but not yet in the skiplist.
	// Writer only.
	pending []nodeRef
}

func newMemtable(id uint64) *memtable {
	m := &memtable{id: id, rng: id*0x9e3779b97f4a7c15 | 1, seed: maphash.MakeSeed()}
	m.newNode(maxHeight) // the head
	m.index.Store(newHashIndex(1 << 12))
	m.h.Store(1)
	return m
}

// full reports whether an arena is past half its directory: the memtable
// must be frozen.
func (m *memtable) full() bool {
	return m.nNodes >= dirChunks/2<<nodeChunkBits ||
		m.nVersions >= v0Flag/2 ||
		m.nTower >= dirChunks/2<<towerChunkBits ||
		m.nChunks >= dirChunks/2
}

// rec returns node n's record.
func (m *memtable) rec(n nodeRef) *nodeRec {
	return &m.nodes.get(uint32(n) >> nodeChunkBits)[n&(1<<nodeChunkBits-1)]
}

// nextAt returns x's link at level.
func (m *memtable) nextAt(x *nodeRec, level int) *atomic.Uint32 {
	if level < inlineTower {
		return &x.next[level]
	}
	i := x.tower + uint32(level-inlineTower)
	return &m.towers.get(i >> towerChunkBits)[i&(1<<towerChunkBits-1)]
}

// newNode allocates a node of the given height. Writer only.
func (m *memtable) newNode(height int) (nodeRef, *nodeRec) {
	n := m.nNodes
	if n&(1<<nodeChunkBits-1) == 0 {
		m.nodes.set(n>>nodeChunkBits, new(nodeChunk))
	}
	m.nNodes++
	r := m.rec(nodeRef(n))
	r.height = uint8(height)
	if k := uint32(height - inlineTower); height > inlineTower {
		if m.towerFree < k {
			m.nTower = (m.nTower + 1<<towerChunkBits - 1) &^ (1<<towerChunkBits - 1)
			m.towers.set(m.nTower>>towerChunkBits, new(towerChunk))
			m.towerFree = 1 << towerChunkBits
		}
		r.tower = m.nTower
		m.nTower += k
		m.towerFree -= k
	}
	return nodeRef(n), r
}

// copyBytes copies b into the byte arena and returns its reference.
// Writer only.
func (m *memtable) copyBytes(b []byte) uint64 {
	if len(b) > byteChunk/4 {
		c := slices.Clone(b)
		i := m.nChunks
		m.nChunks++
		m.chunks.set(i, &c)
		return uint64(i) << 32
	}
	if m.cur == nil || cap(m.cur)-len(m.cur) < len(b) {
		c := make([]byte, 0, byteChunk)
		m.curChunk = m.nChunks
		m.nChunks++
		m.chunks.set(m.curChunk, &c)
		m.cur = c
	}
	off := len(m.cur)
	m.cur = append(m.cur, b...)
	return uint64(m.curChunk)<<32 | uint64(off)
}

// bytesAt returns the n bytes at byte reference ref.
func (m *memtable) bytesAt(ref uint64, n uint32) []byte {
	c := *m.chunks.get(uint32(ref >> 32))
	off := uint32(ref)
	return c[off : off+n : off+n]
}

// keyOf returns the composite key of x; it must not be modified.
func (m *memtable) keyOf(x *nodeRec) []byte {
	if x.keyLen <= inlineKey {
		return x.inl[:x.keyLen:x.keyLen]
	}
	return m.bytesAt(x.key, x.keyLen)
}

// key returns n's composite key; it must not be modified. A bucket's
// sequence is the key with an empty user key (see sequenceKey), its value 8
// bytes big-endian.
func (m *memtable) key(n nodeRef) []byte { return m.keyOf(m.rec(n)) }

// next returns the node after n, or 0.
func (m *memtable) next(n nodeRef) nodeRef { return nodeRef(m.rec(n).next[0].Load()) }

// first returns the first node, or 0.
func (m *memtable) first() nodeRef { return m.next(0) }

func (m *memtable) version(v verRef) *versionRec {
	if v&v0Flag != 0 {
		return &m.rec(nodeRef(v &^ v0Flag)).v0
	}
	i := uint32(v) - 1
	return &m.versions.get(i >> versionChunkBits)[i&(1<<versionChunkBits-1)]
}

func (m *memtable) valueOf(v *versionRec) []byte {
	switch v.valueLen {
	case tombstoneLen:
		return nil
	case 0:
		return emptyValue
	}
	return m.bytesAt(v.value, v.valueLen)
}

// visible returns the value of the newest version of n with seq <= at (nil
// for a tombstone; otherwise non-nil, empty values too), and whether there
// is one. It must not be modified.
func (m *memtable) visible(n nodeRef, at uint64) (value []byte, ok bool) {
	for v := verRef(m.rec(n).head.Load()); v != 0; {
		r := m.version(v)
		if r.seq <= at {
			return m.valueOf(r), true
		}
		v = verRef(r.older)
	}
	return nil, false
}

// newest returns the value of n's newest version, as visible does.
func (m *memtable) newest(n nodeRef) (value []byte, ok bool) { return m.visible(n, ^uint64(0)) }

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

// seek returns the first node with key >= key, or 0. If prev is not nil
// it receives the last node before key at every level.
func (m *memtable) seek(key []byte, prev *[maxHeight]nodeRef) nodeRef {
	var xn nodeRef
	x := m.rec(0)
	for level := int(m.h.Load()) - 1; level >= 0; level-- {
		for {
			nx := nodeRef(m.nextAt(x, level).Load())
			if nx == 0 {
				break
			}
			r := m.rec(nx)
			if bytes.Compare(m.keyOf(r), key) >= 0 {
				break
			}
			xn, x = nx, r
		}
		if prev != nil {
			prev[level] = xn
		}
	}
	return nodeRef(x.next[0].Load())
}

// find returns the node of key, or 0.
func (m *memtable) find(key []byte) nodeRef {
	return m.lookup(m.index.Load(), maphash.Bytes(m.seed, key)|1, key)
}

// upsert returns the node of key, creating it (with a copy of key) if it is
// missing. A new node is in the index at once and in the skiplist after the
// next link. Writer only.
func (m *memtable) upsert(key []byte) nodeRef {
	hv := maphash.Bytes(m.seed, key) | 1
	ix := m.index.Load()
	if n := m.lookup(ix, hv, key); n != 0 {
		return n
	}
	n, r := m.newNode(m.randomHeight())
	r.keyLen = uint32(len(key))
	if len(key) <= inlineKey {
		copy(r.inl[:], key)
	} else {
		r.key = m.copyBytes(key)
	}
	if ix.n >= len(ix.hashes)/2 {
		ix = m.grow(ix)
		m.index.Store(ix)
	}
	ix.insert(hv, n)
	m.pending = append(m.pending, n)
	m.bytes.Add(int64(len(key) + nodeOverhead))
	return n
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
		slices.SortFunc(p, func(a, b nodeRef) int { return bytes.Compare(m.key(a), m.key(b)) })
	}
	var prev [maxHeight]nodeRef // the head
	for _, nn := range p {
		m.linkNext(nn, &prev)
	}
	m.pending = p[:0]
}

// linkNext links nn, whose key is greater than those of the nodes linked
// before it by the same link call. On entry prev[i] is, at every
// level i, a node before nn's key (the predecessors of the node linked
// before, or the head); on return, nn's predecessors, or nn itself where it
// is linked.
func (m *memtable) linkNext(nn nodeRef, prev *[maxHeight]nodeRef) {
	r := m.rec(nn)
	key := m.keyOf(r)
	h := int(m.h.Load())
	// before reports whether the node after x at level sorts before key.
	before := func(x *nodeRec, level int) (nodeRef, *nodeRec, bool) {
		nx := nodeRef(m.nextAt(x, level).Load())
		if nx == 0 {
			return 0, nil, false
		}
		nr := m.rec(nx)
		return nx, nr, bytes.Compare(m.keyOf(nr), key) < 0
	}
	// Going up, the first level whose predecessor is still right: so are
	// those above it (a higher level's next node is no nearer).
	top := 0
	for ; top < h; top++ {
		if _, _, ok := before(m.rec(prev[top]), top); !ok {
			break
		}
	}
	// Going down from there: the node reached one level up is past every
	// old predecessor (it is past the previous key), so the walk goes on
	// from it.
	if top > 0 {
		xn := prev[top-1]
		x := m.rec(xn)
		for level := top - 1; level >= 0; level-- {
			for {
				nx, nr, ok := before(x, level)
				if !ok {
					break
				}
				xn, x = nx, nr
			}
			prev[level] = xn
		}
	}
	height := int(r.height)
	for i := range height {
		m.nextAt(r, i).Store(m.nextAt(m.rec(prev[i]), i).Load())
	}
	if height > h {
		m.h.Store(int32(height))
	}
	for i := range height {
		m.nextAt(m.rec(prev[i]), i).Store(uint32(nn))
		prev[i] = nn
	}
}

// hashIndex is an open-addressing hash table of a memtable's nodes, with a
// single writer and concurrent readers: a slot's hash is written before its
// node, and a slot, once filled, never changes. It grows by building a
// bigger copy and publishing it; a reader still on the old copy can miss
// only nodes inserted after the copy was made, whose versions are all newer
// than its snapshot. Like the arenas it holds no Go pointers.
type hashIndex struct {
	hashes []atomic.Uint64 // 0: empty
	nodes  []atomic.Uint32 // nodeRef
	n      int             // writer only
}

func newHashIndex(size int) *hashIndex {
	return &hashIndex{hashes: make([]atomic.Uint64, size), nodes: make([]atomic.Uint32, size)}
}

// lookup returns the node of key, whose hash is h, in ix, or 0.
func (m *memtable) lookup(ix *hashIndex, h uint64, key []byte) nodeRef {
	mask := uint64(len(ix.hashes) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch ix.hashes[i].Load() {
		case 0:
			return 0
		case h:
			if n := nodeRef(ix.nodes[i].Load()); n != 0 && bytes.Equal(m.key(n), key) {
				return n
			}
		}
	}
}

func (ix *hashIndex) insert(h uint64, n nodeRef) {
	mask := uint64(len(ix.hashes) - 1)
	i := h & mask
	for ix.hashes[i].Load() != 0 {
		i = (i + 1) & mask
	}
	ix.hashes[i].Store(h)
	ix.nodes[i].Store(uint32(n))
	ix.n++
}

// grow returns a copy of ix twice as big. Writer only.
func (m *memtable) grow(ix *hashIndex) *hashIndex {
	nx := newHashIndex(2 * len(ix.hashes))
	for i := range ix.nodes {
		if n := nodeRef(ix.nodes[i].Load()); n != 0 {
			nx.insert(ix.hashes[i].Load(), n)
		}
	}
	return nx
}

// push adds a version to n. Writer only.
func (m *memtable) push(n nodeRef, seq uint64, value []byte, tombstone bool) {
	r := m.rec(n)
	var v verRef
	var vr *versionRec
	if !r.v0use {
		// Never published before: no reader can hold it.
		r.v0use = true
		v, vr = verRef(n)|v0Flag, &r.v0
	} else {
		i := m.nVersions
		if i >= v0Flag-1 {
			panic("store: memtable version arena full")
		}
		if i&(1<<versionChunkBits-1) == 0 {
			m.versions.set(i>>versionChunkBits, new(versionChunk))
		}
		m.nVersions++
		v = verRef(i + 1)
		vr = m.version(v)
		m.bytes.Add(int64(versionOverhead))
	}
	vr.seq, vr.older = seq, r.head.Load()
	switch {
	case tombstone:
		vr.valueLen = tombstoneLen
	case len(value) > 0:
		vr.value, vr.valueLen = m.copyBytes(value), uint32(len(value))
	}
	r.head.Store(uint32(v))
	m.bytes.Add(int64(len(value)))
}

// pop removes n's newest version, which must be one pushed by the group in
// flight (not yet visible to any reader). Writer only.
func (m *memtable) pop(n nodeRef) {
	r := m.rec(n)
	v := verRef(r.head.Load())
	vr := m.version(v)
	r.head.Store(vr.older)
	// Neither v0 nor an arena version is reused after a pop: a reader may
	// still be looking at it.
	size := int64(0)
	if vr.valueLen != tombstoneLen {
		size = int64(vr.valueLen)
	}
	if v&v0Flag == 0 {
		size += int64(versionOverhead)
	}
	m.bytes.Add(-size)
}

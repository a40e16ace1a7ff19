package store

import (
	"bytes"
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

const (
	maxHeight = 12 // 4^12 = 16M keys before the skiplist degrades
	// nodeOverhead approximates the memory a key costs beyond its bytes: the
	// node, its tower and one version.
	nodeOverhead = 160
)

// version is one write of a key. Immutable once published.
type version struct {
	seq   uint64 // commit sequence number of the group that wrote it
	value []byte // nil for a tombstone; otherwise non-nil (empty values too)
	older *version
}

func (v *version) tombstone() bool { return v.value == nil }

type node struct {
	key  []byte // composite key; never modified
	head atomic.Pointer[version]
	next []atomic.Pointer[node]
}

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
	id    uint64 // journal file id
	head  node   // sentinel: key nil, a full tower
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
	seqs   map[Bucket]uint64 // bucket sequences set by the groups in this memtable
	endOff int64             // journal file size at the freeze
	arena  []byte            // current chunk for copies of keys and values
}

func newMemtable(id uint64) *memtable {
	m := &memtable{id: id, rng: id*0x9e3779b97f4a7c15 | 1}
	m.head.next = make([]atomic.Pointer[node], maxHeight)
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
	n := m.seek(key, nil)
	if n != nil && bytes.Equal(n.key, key) {
		return n
	}
	return nil
}

// first returns the first node, or nil.
func (m *memtable) first() *node { return m.head.next[0].Load() }

// upsert returns the node of key, inserting it (with a copy of key) if it is
// missing. Writer only.
func (m *memtable) upsert(key []byte) *node {
	var prev [maxHeight]*node
	h := int(m.h.Load())
	for i := h; i < maxHeight; i++ {
		prev[i] = &m.head
	}
	n := m.seek(key, &prev)
	if n != nil && bytes.Equal(n.key, key) {
		return n
	}
	height := m.randomHeight()
	nn := &node{key: m.copyBytes(key), next: make([]atomic.Pointer[node], height)}
	for i := range height {
		nn.next[i].Store(prev[i].next[i].Load())
	}
	if height > h {
		m.h.Store(int32(height))
	}
	for i := range height {
		prev[i].next[i].Store(nn)
	}
	m.bytes.Add(int64(len(key) + nodeOverhead))
	return nn
}

// push adds a version to n. Writer only.
func (m *memtable) push(n *node, seq uint64, value []byte, tombstone bool) {
	v := &version{seq: seq, older: n.head.Load()}
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
	m.bytes.Add(-int64(len(v.value) + 48))
}

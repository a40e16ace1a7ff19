package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// The journal's files and records (the design is in doc.go, "The journal").
//
// A journal file is named FILE.journal.ID, ID being 16 hex digits, and holds
// a header followed by records:
//
//	header: "TVJRNL02" | store id (16 bytes) | file id (uint64) | crc32c of the 32 bytes before
//	record: length (uint32) | crc32c of the payload (uint32) | payload (length bytes)
//	payload: group sequence number (uint64) | operations
//	operation: 'P' | len(bucket) (1 byte) | bucket | uvarint len(key) | key | uvarint len(value) | value
//	           'D' | len(bucket) | bucket | uvarint len(key) | key
//	           'S' | len(bucket) | bucket | sequence (uint64)
//
// Integers are big-endian. One record is one Update group: all of it or none
// of it is replayed.
//
// Binaries from before generations (generations.go) wrote, and accept only,
// the magic "TVJRNL01", and replay such a journal into the buckets' base
// B-trees at Open, before the vault reads the schema version and refuses the
// store: an overwrite of a key of a later generation would land in the base
// too, and a delete of one would be lost. So this binary writes "TVJRNL02",
// which they refuse (ErrCorrupt), and replays both.

const (
	journalMagic      = "TVJRNL02"
	journalMagicV1    = "TVJRNL01" // read only
	journalHeaderSize = 8 + 16 + 8 + 4
	frameHeaderSize   = 8
	// maxRecordSize bounds a record's length field, so that a corrupt one is
	// not taken for a huge allocation: a group holds at most
	// DefaultMaxGroup functions, but their values are bounded only by
	// MaxValueSize each, so the bound is generous.
	maxRecordSize = 1 << 31

	opPut      = 'P'
	opDelete   = 'D'
	opSequence = 'S'
)

// metaBucket is the bbolt bucket of the journal's own state. Its name is not
// a valid Bucket name, so no caller can reach it.
var (
	metaBucket = []byte("\x00tokenvault.journal")
	metaID     = []byte("store-id")
	metaMerged = []byte("merged") // file id (uint64) | offset (uint64): merged through there
	// metaFilterKeys is the key filter's estimate of the keys in the B-tree
	// (uint64), as of the last merge that had a filter: it sizes the first
	// build at the next Open without a pass that counts them.
	metaFilterKeys = []byte("filter-keys")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func journalPath(dbPath string, id uint64) string {
	return fmt.Sprintf("%s.journal.%016x", dbPath, id)
}

// journalIDs returns the ids of the journal files of dbPath, ascending.
func journalIDs(dbPath string) ([]uint64, error) {
	dir, base := filepath.Split(dbPath)
	if dir == "" {
		dir = "."
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	prefix := base + ".journal."
	var ids []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || len(name) != len(prefix)+16 {
			continue
		}
		id, err := strconv.ParseUint(name[len(prefix):], 16, 64)
		if err != nil {
			continue
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

func journalHeader(storeID [16]byte, id uint64) []byte {
	return journalHeaderWith(journalMagic, storeID, id)
}

func journalHeaderWith(magic string, storeID [16]byte, id uint64) []byte {
	h := make([]byte, 0, journalHeaderSize)
	h = append(h, magic...)
	h = append(h, storeID[:]...)
	h = binary.BigEndian.AppendUint64(h, id)
	return binary.BigEndian.AppendUint32(h, crc32.Checksum(h, castagnoli))
}

// Appending operations to a record payload.

func appendBucket(rec []byte, op byte, b Bucket) []byte {
	rec = append(rec, op, byte(len(b)))
	return append(rec, b...)
}

func appendPut(rec []byte, b Bucket, key, value []byte) []byte {
	rec = appendBucket(rec, opPut, b)
	rec = binary.AppendUvarint(rec, uint64(len(key)))
	rec = append(rec, key...)
	rec = binary.AppendUvarint(rec, uint64(len(value)))
	return append(rec, value...)
}

func appendDelete(rec []byte, b Bucket, key []byte) []byte {
	rec = appendBucket(rec, opDelete, b)
	rec = binary.AppendUvarint(rec, uint64(len(key)))
	return append(rec, key...)
}

func appendSequence(rec []byte, b Bucket, n uint64) []byte {
	return binary.BigEndian.AppendUint64(appendBucket(rec, opSequence, b), n)
}

// frame fills in the frame header reserved at the start of rec.
func frame(rec []byte) []byte {
	payload := rec[frameHeaderSize:]
	binary.BigEndian.PutUint32(rec[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(rec[4:8], crc32.Checksum(payload, castagnoli))
	return rec
}

var errBadRecord = errors.New("malformed record")

// applyRecord decodes a record's payload into m.
func applyRecord(m *memtable, payload []byte) (seq uint64, err error) {
	if len(payload) < 8 {
		return 0, errBadRecord
	}
	seq = binary.BigEndian.Uint64(payload)
	p := payload[8:]
	var ck []byte
	bytesOf := func() ([]byte, bool) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, false
		}
		b := p[k : k+int(n)]
		p = p[k+int(n):]
		return b, true
	}
	for len(p) > 0 {
		if len(p) < 2 || len(p) < 2+int(p[1]) {
			return 0, errBadRecord
		}
		op, b := p[0], Bucket(p[2:2+int(p[1])])
		p = p[2+int(p[1]):]
		if b.Validate() != nil {
			return 0, errBadRecord
		}
		switch op {
		case opPut, opDelete:
			key, ok := bytesOf()
			if !ok || ValidateKey(key) != nil {
				return 0, errBadRecord
			}
			ck = compositeKey(ck[:0], b, key)
			n := m.upsert(ck)
			if op == opDelete {
				m.push(n, seq, nil, true)
				continue
			}
			value, ok := bytesOf()
			if !ok {
				return 0, errBadRecord
			}
			m.push(n, seq, value, false)
		case opSequence:
			if len(p) < 8 {
				return 0, errBadRecord
			}
			ck = compositeKey(ck[:0], b, nil)
			m.push(m.upsert(ck), seq, p[:8], false)
			p = p[8:]
		default:
			return 0, errBadRecord
		}
	}
	return seq, nil
}

// loadJournal reads journal file id into a new memtable. In the last file,
// the first record that is incomplete or fails its checksum ends the journal
// (a torn tail: the write of a group that was never acknowledged); in any
// other file, or when valid-looking data follows the bad record, it is an
// error wrapping ErrCorrupt. It returns the memtable, the offset where the
// valid records end, and the last group sequence number found.
func loadJournal(dbPath string, id uint64, storeID [16]byte, last bool, prevSeq uint64) (*memtable, uint64, error) {
	path := journalPath(dbPath, id)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("store: journal: %w", err)
	}
	m := newMemtable(id)
	want, v1 := journalHeader(storeID, id), journalHeaderWith(journalMagicV1, storeID, id)
	if len(data) < journalHeaderSize || !bytes.Equal(data[:journalHeaderSize], want) && !bytes.Equal(data[:journalHeaderSize], v1) {
		if last && (tornHeader(data, want) || tornHeader(data, v1)) {
			// Created by a rotation that did not finish: nothing in it was
			// ever acknowledged.
			m.endOff = 0
			return m, prevSeq, nil
		}
		return nil, 0, fmt.Errorf("%w: journal file %s: bad header (not this store's journal?)", ErrCorrupt, path)
	}
	off := journalHeaderSize
	seq := prevSeq
	for off < len(data) {
		rest := data[off:]
		ok := len(rest) >= frameHeaderSize
		var n int
		if ok {
			n = int(binary.BigEndian.Uint32(rest[0:4]))
			ok = n >= 8 && n <= maxRecordSize && n <= len(rest)-frameHeaderSize &&
				crc32.Checksum(rest[frameHeaderSize:frameHeaderSize+n], castagnoli) == binary.BigEndian.Uint32(rest[4:8])
		}
		if ok {
			payload := rest[frameHeaderSize : frameHeaderSize+n]
			if s := binary.BigEndian.Uint64(payload); s <= seq {
				return nil, 0, fmt.Errorf("%w: journal file %s: record at offset %d out of sequence", ErrCorrupt, path, off)
			}
			var err error
			if seq, err = applyRecord(m, payload); err != nil {
				return nil, 0, fmt.Errorf("%w: journal file %s: record at offset %d: %w", ErrCorrupt, path, off, err)
			}
			off += frameHeaderSize + n
			m.records.Add(1)
			continue
		}
		if !last || !torn(data, off) {
			return nil, 0, fmt.Errorf("%w: journal file %s: bad record at offset %d of %d", ErrCorrupt, path, off, len(data))
		}
		break // torn tail
	}
	m.link()
	m.endOff = int64(off)
	return m, seq, nil
}

// torn reports whether the bytes of data from off can be the torn write of
// the last record (or header): a record whose length field reaches to, or
// past, the end of the file, or whose length field is itself unreadable or
// implausible, followed by nothing but zeros.
func torn(data []byte, off int) bool {
	rest := data[off:]
	if len(rest) < frameHeaderSize {
		return true
	}
	n := int(binary.BigEndian.Uint32(rest[0:4]))
	end := frameHeaderSize + n
	if n < 8 || end >= len(rest) {
		return true
	}
	// The record claims to end before the file does: a torn write leaves
	// nothing after it but, at most, zeros the file system filled in.
	for _, c := range rest[end:] {
		if c != 0 {
			return false
		}
	}
	return true
}

// tornHeader reports whether data is what a crash while writing the header
// want can leave: no more than the header, each byte either written or zero.
func tornHeader(data, want []byte) bool {
	if len(data) > len(want) {
		return false
	}
	for i, c := range data {
		if c != 0 && c != want[i] {
			return false
		}
	}
	return true
}

// readMeta returns the store id and merged position recorded in btx.
func readMeta(btx *bolt.Tx) (id [16]byte, hasID bool, mergedFile, mergedOff uint64) {
	bk := btx.Bucket(metaBucket)
	if bk == nil {
		return id, false, 0, 0
	}
	if v := bk.Get(metaID); len(v) == 16 {
		copy(id[:], v)
		hasID = true
	}
	if v := bk.Get(metaMerged); len(v) == 16 {
		mergedFile = binary.BigEndian.Uint64(v)
		mergedOff = binary.BigEndian.Uint64(v[8:])
	}
	return id, hasID, mergedFile, mergedOff
}

// mergedFile returns the id of the last journal file merged into btx's
// snapshot (0 if none).
func mergedFile(btx *bolt.Tx) uint64 {
	bk := btx.Bucket(metaBucket)
	if bk == nil {
		return 0
	}
	if v := bk.Get(metaMerged); len(v) == 16 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func writeMerged(btx *bolt.Tx, file uint64, off int64) error {
	bk, err := btx.CreateBucketIfNotExists(metaBucket)
	if err != nil {
		return err
	}
	v := binary.BigEndian.AppendUint64(nil, file)
	v = binary.BigEndian.AppendUint64(v, uint64(off))
	return bk.Put(metaMerged, v)
}

// compositeKey appends bucket b, 0x00 and key to dst.
func compositeKey(dst []byte, b Bucket, key []byte) []byte {
	dst = append(dst, b...)
	dst = append(dst, 0)
	return append(dst, key...)
}

// splitKey splits a composite key into bucket name and key.
func splitKey(ck []byte) (bucket, key []byte) {
	i := bytes.IndexByte(ck, 0)
	return ck[:i], ck[i+1:]
}

// mergeLayers writes the newest version of every key of layers (oldest
// first), bucket sequences included, into btx, in key order, and records
// the last layer as merged. fp is called between the writes and the return;
// merged, if not nil, with every key written or deleted and the generation
// of its bucket it was written into or deleted from. filter, if not nil, is
// a key filter valid for btx: the generations it rules out for a key are
// not read (a new key, which it rules out of all, is put into the newest
// without a read). genKeys sizes generations (0: the default).
func mergeLayers(btx *bolt.Tx, layers []*memtable, fp func(string) error, what string, merged func(ck []byte, gen int, deleted bool), filter *keyFilter, genKeys int) (keys int, err error) {
	cur := make([]nodeRef, len(layers))
	for i, m := range layers {
		cur[i] = m.first()
	}
	w := newGenWriter(btx, genKeys)
	var curB []byte
	var g *wgens
	for {
		// The smallest key; among equal keys the newest layer's version.
		win := -1
		var ck []byte
		for i := len(cur) - 1; i >= 0; i-- {
			m := layers[i]
			for cur[i] != 0 {
				if _, ok := m.newest(cur[i]); ok {
					break
				}
				cur[i] = m.next(cur[i]) // every version undone
			}
			if cur[i] == 0 {
				continue
			}
			if k := m.key(cur[i]); win < 0 || bytes.Compare(k, ck) < 0 {
				win, ck = i, k
			}
		}
		if win < 0 {
			break
		}
		value, _ := layers[win].newest(cur[win])
		b, key := splitKey(ck)
		if !bytes.Equal(b, curB) {
			curB = b
			// A tombstone needs no bucket; anything else creates it.
			if g, err = w.bucket(b, len(key) == 0 || value != nil); err != nil {
				return keys, err
			}
		}
		switch {
		case len(key) == 0: // the bucket's sequence (see sequenceKey)
			if g == nil {
				if g, err = w.bucket(b, true); err != nil {
					return keys, err
				}
			}
			if err := g.base().SetSequence(binary.BigEndian.Uint64(value)); err != nil {
				return keys, err
			}
		case value == nil: // a tombstone
			if g == nil {
				break
			}
			gen, err := w.delete(g, key, probe(filter, ck))
			if err != nil {
				return keys, err
			}
			if gen >= 0 && merged != nil {
				merged(ck, gen, true)
			}
		default:
			if g == nil {
				if g, err = w.bucket(b, true); err != nil {
					return keys, err
				}
			}
			gen, err := w.put(g, key, value, probe(filter, ck))
			if err != nil {
				return keys, err
			}
			if merged != nil {
				merged(ck, gen, false)
			}
		}
		if keys++; keys == 1 {
			// A failpoint in the middle of the merge's writes.
			if err := fp(what + ".writing"); err != nil {
				return keys, err
			}
		}
		for i, m := range layers {
			if cur[i] != 0 && bytes.Equal(m.key(cur[i]), ck) {
				cur[i] = m.next(cur[i])
			}
		}
	}
	if err := w.flush(); err != nil {
		return keys, err
	}
	last := layers[len(layers)-1]
	return keys, writeMerged(btx, last.id, last.endOff)
}

// probe returns ck's probe of filter, the zero probe if filter is nil.
func probe(filter *keyFilter, ck []byte) keyProbe {
	if filter == nil {
		return keyProbe{}
	}
	return filter.probe(ck)
}

// recoverJournal runs at Open, before anything else uses db: it replays the
// journal files not yet merged into db (those after the merged position) in
// one bbolt transaction that also records the new merged position, then
// removes the files. It returns the store id, the id of the next journal
// file and the last group sequence number replayed. If that transaction
// fails (a full disk: bbolt must grow its file) and keep is set, it returns
// the replayed memtables instead, their files left in place, for the
// journal to serve from memory and merge later.
func recoverJournal(db *bolt.DB, path string, fp func(string) error, keep bool, genKeys int) (storeID [16]byte, next, seq uint64, pending []*memtable, err error) {
	var hasID bool
	var merged uint64
	if err := db.View(func(btx *bolt.Tx) error {
		storeID, hasID, merged, _ = readMeta(btx)
		return nil
	}); err != nil {
		return storeID, 0, 0, nil, err
	}
	ids, err := journalIDs(path)
	if err != nil {
		return storeID, 0, 0, nil, fmt.Errorf("store: journal: %w", err)
	}
	var layers []*memtable
	next = merged + 1
	for i, id := range ids {
		next = max(next, id+1)
		if id <= merged {
			continue // merged, but the process stopped before removing it
		}
		if !hasID {
			return storeID, 0, 0, nil, fmt.Errorf("%w: journal file %s found, but the store has no journal id", ErrCorrupt, journalPath(path, id))
		}
		m, s, err := loadJournal(path, id, storeID, i == len(ids)-1, seq)
		if err != nil {
			return storeID, 0, 0, nil, err
		}
		seq = s
		layers = append(layers, m)
	}
	if !hasID {
		if _, err := rand.Read(storeID[:]); err != nil {
			return storeID, 0, 0, nil, err
		}
		err := db.Update(func(btx *bolt.Tx) error {
			bk, err := btx.CreateBucketIfNotExists(metaBucket)
			if err != nil {
				return err
			}
			return bk.Put(metaID, storeID[:])
		})
		if err != nil {
			return storeID, 0, 0, nil, fmt.Errorf("store: journal: %w", err)
		}
	}
	if len(layers) > 0 {
		err := db.Update(func(btx *bolt.Tx) error {
			if _, err := mergeLayers(btx, layers, fp, "recover", nil, nil, genKeys); err != nil {
				return err
			}
			fp("recover.commit")
			return nil
		})
		if err != nil {
			if keep {
				for _, id := range ids {
					if id <= merged {
						_ = os.Remove(journalPath(path, id))
					}
				}
				// New journal files will follow the last one: cut its torn
				// tail off, so that it is no torn file in the middle.
				last := layers[len(layers)-1]
				lp := journalPath(path, last.id)
				if last.endOff == 0 {
					err = os.Remove(lp)
				} else {
					err = os.Truncate(lp, last.endOff)
				}
				if err != nil {
					return storeID, 0, 0, nil, fmt.Errorf("store: journal recovery: %w", err)
				}
				return storeID, next, seq, layers, nil
			}
			return storeID, 0, 0, nil, fmt.Errorf("store: journal recovery: %w", err)
		}
		fp("recover.committed")
	}
	for _, id := range ids {
		if err := os.Remove(journalPath(path, id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return storeID, 0, 0, nil, fmt.Errorf("store: journal: %w", err)
		}
	}
	return storeID, next, seq, nil, nil
}

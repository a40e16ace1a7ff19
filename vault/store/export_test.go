package store

import (
	"encoding/binary"
	"time"
)

// QueueLen returns the number of Update calls waiting for the committer.
func QueueLen(s *Bolt) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// SetFailpoint sets the hook called at each named step of the journal's
// write path, merge, rotation and recovery.
func SetFailpoint(o *Options, f func(step string) error) { o.failpoint = f }

// SetMergeInterval replaces the journal's one-second merge interval.
func SetMergeInterval(o *Options, d time.Duration) { o.mergeInterval = d }

// SetKeyFilterSizes replaces the key filter's smallest capacity and the
// keys its build reads per read transaction.
func SetKeyFilterSizes(o *Options, minKeys, chunk int) { o.filterMin, o.filterChunk = minKeys, chunk }

// SetKeyFilterChurn makes the key filter be built again after every merge.
func SetKeyFilterChurn(o *Options) { o.filterChurn = true }

// SetGenerationKeys replaces how many new keys a bucket's generation takes
// before the next begins (generations.go).
func SetGenerationKeys(o *Options, n int) { o.genKeys = n }

// JournalFiles returns the paths of the journal files of the store at path.
func JournalFiles(path string) []string {
	ids, _ := journalIDs(path)
	var out []string
	for _, id := range ids {
		out = append(out, journalPath(path, id))
	}
	return out
}

// RecordEnds returns the offsets at which the records of a journal file end.
func RecordEnds(data []byte) []int64 {
	var ends []int64
	off := journalHeaderSize
	for off+frameHeaderSize <= len(data) {
		n := int(binary.BigEndian.Uint32(data[off:]))
		if n == 0 {
			break // the zeros written ahead of the records (journalChunk)
		}
		off += frameHeaderSize + n
		if off > len(data) {
			break
		}
		ends = append(ends, int64(off))
	}
	return ends
}

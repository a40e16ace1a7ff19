//go:build !linux

package store

import "os"

// fdatasync flushes f to stable storage.
func fdatasync(f *os.File) error { return f.Sync() }

// mmapPopulate: no such flag here.
const mmapPopulate = 0

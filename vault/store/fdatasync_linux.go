package store

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data (and the metadata needed to read it back, such
// as its size) to stable storage, as bbolt does on commit.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }

// mmapPopulate is the mmap flag that reads the whole mapping in at once
// (Options: see Open).
const mmapPopulate = syscall.MAP_POPULATE

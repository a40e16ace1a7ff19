package testpg

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// Shared is one cluster for all the tests of a package, started on first use, with a fresh
// database per test: starting a cluster takes about a second, a database a few
// milliseconds. Declare one in the package's tests and stop it in TestMain:
//
//	var pg testpg.Shared
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		pg.Stop()
//		os.Exit(code)
//	}
//
// Tests that stop, restart or reconfigure PostgreSQL must start a cluster of their own
// (Start) instead. A Shared is safe for concurrent use.
type Shared struct {
	once sync.Once
	c    *Cluster
	err  error
	n    atomic.Int64
}

// Cluster returns the shared cluster, starting it on first use; t is skipped when
// PostgreSQL is not installed, and fails when the cluster could not be started.
func (s *Shared) Cluster(t testing.TB) *Cluster {
	t.Helper()
	s.once.Do(func() { s.c, s.err = start() })
	if s.err == errNoBinaries {
		skipMissing(t, s.err)
	}
	if s.err != nil {
		t.Fatal(s.err)
	}
	return s.c
}

// DB creates a new, empty database on the shared cluster and returns its URL.
func (s *Shared) DB(t testing.TB) string {
	t.Helper()
	c := s.Cluster(t)
	return c.CreateDB(t, fmt.Sprintf("t%d", s.n.Add(1)))
}

// Stop stops and removes the cluster, if it was started.
func (s *Shared) Stop() {
	if s.c != nil {
		s.c.remove()
	}
}

package server_test

import (
	"os"
	"testing"

	"github.com/tokenvault/tokenvault/internal/testpg"
)

// pg is the PostgreSQL cluster this package's tests share (testenv.ForBackends runs the
// end-to-end suites on a fresh database of it as well as on bbolt).
var pg testpg.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

package testenv

import (
	"fmt"
	"log"
	"os"
	"slices"
)

// Detached is a TB for code that has no *testing.T, such as examples: Fatal ends the
// process, Errorf is printed and remembered, and Close runs the cleanups (last registered
// first), then ends the process if anything was reported.
//
//	d := &testenv.Detached{}
//	defer d.Close()
//	env := testenv.Start(d)
type Detached struct {
	cleanups []func()
	failed   bool
}

func (d *Detached) Helper()                      {}
func (d *Detached) Cleanup(f func())             { d.cleanups = append(d.cleanups, f) }
func (d *Detached) Fatal(args ...any)            { log.Fatal(args...) }
func (d *Detached) Fatalf(f string, args ...any) { log.Fatalf(f, args...) }

func (d *Detached) Errorf(format string, args ...any) {
	d.failed = true
	log.Print(fmt.Sprintf(format, args...))
}

// TempDir returns a new temporary directory, removed by Close.
func (d *Detached) TempDir() string {
	dir, err := os.MkdirTemp("", "tokenvault-testenv-")
	if err != nil {
		d.Fatal(err)
	}
	d.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Close runs the cleanups; it ends the process if Errorf was called.
func (d *Detached) Close() {
	for _, f := range slices.Backward(d.cleanups) {
		f()
	}
	d.cleanups = nil
	if d.failed {
		log.Fatal("testenv: errors reported (above)")
	}
}

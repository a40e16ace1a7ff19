//go:build linux

package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// stopWithLauncher makes the kernel send this process SIGTERM when the process that started
// it exits, so a dev server does not outlive `go run` killed by a SIGTERM (go run does not
// pass signals on). Dev mode only: the signal follows the launching thread, which a
// supervisor of a production server need not keep.
func stopWithLauncher() error {
	ppid := os.Getppid()
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGTERM), 0, 0, 0); err != nil {
		return err
	}
	if os.Getppid() != ppid { // the launcher died before the call
		return unix.Kill(os.Getpid(), unix.SIGTERM)
	}
	return nil
}

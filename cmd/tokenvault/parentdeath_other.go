//go:build !linux

package main

// stopWithLauncher is Linux-only (PR_SET_PDEATHSIG); elsewhere a dev server stops on SIGINT
// and SIGTERM sent to it.
func stopWithLauncher() error { return nil }

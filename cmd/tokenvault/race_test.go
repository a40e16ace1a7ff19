//go:build race

package main

// With -race the binary under test is built with the race detector too, so that the
// end-to-end tests also catch data races in the server process (it exits 66 on one).
func init() { raceEnabled = true }

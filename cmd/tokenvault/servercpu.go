package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, 100 on every Linux
// architecture Go supports (the kernel's ABI fixes it for user space).
const userHZ = 100

// procCPU returns a function reading the CPU time (user plus system, all threads) of process
// pid from /proc/PID/stat: bench --server-pid, for a server on the same host. It fails at once
// when the file cannot be read (no such process, not Linux).
func procCPU(pid int) (func() (time.Duration, error), error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	read := func() (time.Duration, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, fmt.Errorf("--server-pid %d: %w", pid, err)
		}
		// The command name (field 2) is in parentheses and may hold spaces and ")": the
		// fields that follow start after the last ")". utime and stime are fields 14 and 15.
		i := bytes.LastIndexByte(b, ')')
		f := bytes.Fields(b[i+1:])
		if i < 0 || len(f) < 13 {
			return 0, fmt.Errorf("--server-pid %d: unexpected %s", pid, path)
		}
		utime, err1 := strconv.ParseUint(string(f[11]), 10, 64)
		stime, err2 := strconv.ParseUint(string(f[12]), 10, 64)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("--server-pid %d: unexpected %s", pid, path)
		}
		return time.Duration(utime+stime) * (time.Second / userHZ), nil
	}
	if _, err := read(); err != nil {
		return nil, err
	}
	return read, nil
}

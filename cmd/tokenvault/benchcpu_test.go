package main

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// bench --server-pid reports the server's CPU time per item, in text and -o json, measured on
// a real server process; a pid that is not there is refused before any load is sent. And
// bench honours --timeout.
func TestBenchServerCPU(t *testing.T) {
	srv := startServer(t, t.TempDir())
	defer srv.stopClean()
	env := childEnv("TOKENVAULT_ADDR="+srv.grpcAddr, "TOKENVAULT_TOKEN="+rootToken)
	pid := strconv.Itoa(srv.cmd.Process.Pid)
	args := []string{"bench", "--server-pid", pid, "--batch", "1", "--concurrency", "2", "--requests", "300", "--warmup", "0s"}

	out, errOut, code := runCLI(t, env, append(args, "-o", "json")...)
	if code != 0 {
		t.Fatalf("bench -o json: exit %d: %s", code, errOut)
	}
	var res struct {
		TotalItems   int64    `json:"total_items"`
		ServerCPUS   *float64 `json:"server_cpu_s"`
		ServerCPUPer *float64 `json:"server_cpu_us_per_item"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("bench -o json: %v\n%s", err, out)
	}
	// 300 single-item tokenize calls cost the server well over one 10 ms tick, and each far
	// less than a second.
	if res.ServerCPUS == nil || res.ServerCPUPer == nil || *res.ServerCPUS <= 0 || res.TotalItems < 300 ||
		*res.ServerCPUPer <= 0 || *res.ServerCPUPer > 1e6 {
		t.Fatalf("bench -o json: server CPU missing or implausible: %s", out)
	}
	if got := *res.ServerCPUS * 1e6 / float64(res.TotalItems); got < *res.ServerCPUPer*0.99-0.01 || got > *res.ServerCPUPer*1.01+0.01 {
		t.Errorf("server_cpu_us_per_item %v, but server_cpu_s/total_items = %v µs", *res.ServerCPUPer, got)
	}

	out, errOut, code = runCLI(t, env, args...)
	if code != 0 {
		t.Fatalf("bench: exit %d: %s", code, errOut)
	}
	if !regexp.MustCompile(`(?m)^server: +[0-9.]+µs CPU per item \([0-9.]+s CPU over 30\d items, warmup included\)$`).MatchString(out) {
		t.Errorf("bench text output has no server CPU line:\n%s", out)
	}

	// Without the flag: no server figures.
	out, errOut, code = runCLI(t, env, "bench", "--batch", "1", "--concurrency", "1", "--requests", "5", "--warmup", "0s", "-o", "json")
	if code != 0 || strings.Contains(out, "server_cpu") {
		t.Errorf("bench without --server-pid: exit %d, %s %s", code, out, errOut)
	}
	// --timeout bounds each request (it was ignored: the load generator waited up to a
	// minute): a nanosecond fails every call, over either protocol; 0 is no limit.
	for _, proto := range []string{"grpc", "http"} {
		_, errOut, code = runCLI(t, env, "bench", "--protocol", proto, "--http-addr", srv.httpAddr, "--timeout", "1ns", "--batch", "1", "--concurrency", "1", "--requests", "3", "--warmup", "0s")
		if code == 0 || !strings.Contains(strings.ToLower(errOut), "deadline") {
			t.Errorf("bench --protocol %s --timeout 1ns: exit %d, want a deadline error: %s", proto, code, errOut)
		}
		_, errOut, code = runCLI(t, env, "bench", "--protocol", proto, "--http-addr", srv.httpAddr, "--timeout", "0", "--batch", "1", "--concurrency", "1", "--requests", "3", "--warmup", "0s")
		if code != 0 {
			t.Errorf("bench --protocol %s --timeout 0: exit %d: %s", proto, code, errOut)
		}
	}
	// A pid with no process: refused at once.
	_, errOut, code = runCLI(t, env, "bench", "--server-pid", "999999999", "--requests", "5")
	if code == 0 || !strings.Contains(errOut, "--server-pid 999999999") {
		t.Errorf("bench --server-pid of no process: exit %d, %s", code, errOut)
	}
}

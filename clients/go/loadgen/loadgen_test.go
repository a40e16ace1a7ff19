package loadgen_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/clients/go/loadgen"
	"github.com/tokenvault/tokenvault/internal/testenv"
	"github.com/tokenvault/tokenvault/server"
)

// startServer runs a real server (testenv: bbolt file, Tink keys, listeners on loopback)
// until the test ends, and returns its addresses. Its logs are discarded: a load run would
// pile up a debug line per request.
func startServer(tb testing.TB) server.Addrs {
	tb.Helper()
	return testenv.Start(tb, testenv.DiscardLogs()).Addrs
}

func config(a server.Addrs, protocol, op string) loadgen.Config {
	return loadgen.Config{
		Protocol: protocol, Op: op, GRPCAddr: a.GRPC, HTTPAddr: a.HTTP, Token: testenv.RootSecret,
		Batch: 20, Concurrency: 4, Duration: time.Second, Warmup: 100 * time.Millisecond,
		Unique: true, Pool: 500,
	}
}

func checkRun(t *testing.T, res *loadgen.Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Items <= 0 || res.Requests <= 0 {
		t.Errorf("measured %d requests, %d items; want some", res.Requests, res.Items)
	}
	if res.Errors() != 0 {
		t.Errorf("%d errors (%d requests, %d items); first: %s", res.Errors(), res.FailedRequests, res.FailedItems, res.FirstError)
	}
	if res.Items != res.Requests*int64(res.Batch) {
		t.Errorf("items = %d, want requests × batch = %d", res.Items, res.Requests*int64(res.Batch))
	}
	if res.Elapsed < 900*time.Millisecond || res.ItemsPerSec <= 0 {
		t.Errorf("elapsed %v, %f items/s; want about 1s and a rate", res.Elapsed, res.ItemsPerSec)
	}
	l := res.Latency
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("latency percentiles out of order: %+v", l)
	}
}

func TestRun(t *testing.T) {
	a := startServer(t)
	for _, protocol := range []string{loadgen.ProtocolHTTP, loadgen.ProtocolGRPC} {
		for _, op := range []string{loadgen.OpTokenize, loadgen.OpDetokenize} {
			t.Run(protocol+"/"+op, func(t *testing.T) {
				res, err := loadgen.Run(context.Background(), config(a, protocol, op))
				checkRun(t, res, err)
				if op == loadgen.OpDetokenize && res.TotalItems < 500 {
					t.Errorf("total items %d, want at least the pool of 500", res.TotalItems)
				}
			})
		}
	}
}

// TestRunTemplates tokenizes a few requests of every template the generator knows, so a
// generator that makes values its template refuses shows up as item errors.
func TestRunTemplates(t *testing.T) {
	a := startServer(t)
	for _, tmpl := range loadgen.GeneratedBases() {
		t.Run(tmpl, func(t *testing.T) {
			cfg := config(a, loadgen.ProtocolHTTP, loadgen.OpTokenize)
			cfg.Template, cfg.Requests, cfg.Warmup, cfg.Concurrency = tmpl, 4, 0, 2
			res, err := loadgen.Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 4 || res.Errors() != 0 {
				t.Errorf("%d requests, %d errors (first: %s); want 4 and 0", res.Requests, res.Errors(), res.FirstError)
			}
		})
	}
}

func TestRunRepeatedValuesAndConns(t *testing.T) {
	a := startServer(t)
	cfg := config(a, loadgen.ProtocolGRPC, loadgen.OpTokenize)
	cfg.Unique, cfg.Conns, cfg.Requests, cfg.Warmup = false, 2, 40, 0
	res, err := loadgen.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 40 || res.Items != 40*20 || res.Errors() != 0 {
		t.Errorf("%d requests, %d items, %d errors; want 40, 800, 0", res.Requests, res.Items, res.Errors())
	}
	// Four workers, each sending its own 20 values again and again.
	if res.TotalItems != 800 {
		t.Errorf("total items %d, want 800 (no warmup)", res.TotalItems)
	}
}

func TestRunCountsErrors(t *testing.T) {
	a := startServer(t)
	for _, protocol := range []string{loadgen.ProtocolHTTP, loadgen.ProtocolGRPC} {
		t.Run(protocol, func(t *testing.T) {
			cfg := config(a, protocol, loadgen.OpTokenize)
			cfg.Token, cfg.Requests, cfg.Warmup = "wrong-secret", 3, 0
			res, err := loadgen.Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != 0 || res.FailedRequests == 0 {
				t.Errorf("%d requests ok, %d failed; want 0 ok and some failed", res.Requests, res.FailedRequests)
			}
			if !strings.Contains(strings.ToLower(res.FirstError), "credentials") {
				t.Errorf("first error %q, want the server's credentials message", res.FirstError)
			}
		})
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]loadgen.Config{
		"no token":  {},
		"protocol":  {Token: "x", Protocol: "udp"},
		"op":        {Token: "x", Op: "delete"},
		"batch":     {Token: "x", Batch: 10001},
		"negatives": {Token: "x", Warmup: -1},
	} {
		if _, err := loadgen.Run(context.Background(), cfg); err == nil {
			t.Errorf("%s: Run accepted %+v", name, cfg)
		}
	}
}

func TestPercentile(t *testing.T) {
	// 1..100 ms, shuffled: the nearest-rank p-th percentile is p ms.
	var s []time.Duration
	for i := range 100 {
		s = append(s, time.Duration((i*37)%100+1)*time.Millisecond)
	}
	l := loadgen.Summarize(s)
	want := loadgen.Latency{P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond,
		Max: 100 * time.Millisecond, Mean: 50500 * time.Microsecond}
	if l != want {
		t.Errorf("Summarize(1..100ms) = %+v, want %+v", l, want)
	}

	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 50, 7 * time.Millisecond},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(1, 2), 50, 1 * time.Millisecond}, // rank ⌈1⌉ = 1
		{ms(1, 2), 51, 2 * time.Millisecond}, // rank ⌈1.02⌉ = 2
		{ms(1, 2, 3, 4), 75, 3 * time.Millisecond},
		{ms(1, 2, 3, 4), 99.9, 4 * time.Millisecond},
		{ms(10, 20, 30, 40, 50, 60, 70, 80, 90, 100), 90, 90 * time.Millisecond},
		{ms(10, 20, 30, 40, 50, 60, 70, 80, 90, 100), 99, 100 * time.Millisecond},
		{ms(10, 20, 30, 40, 50, 60, 70, 80, 90, 100), 100, 100 * time.Millisecond},
	} {
		if got := loadgen.Percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tc.sorted, tc.p, got, tc.want)
		}
	}
}

func TestResultOutput(t *testing.T) {
	unique := true
	res := &loadgen.Result{Protocol: "http", Op: "tokenize", Template: "pan", Batch: 100, Concurrency: 16,
		Unique: &unique, Elapsed: 2 * time.Second, Requests: 10, Items: 1000, ItemsPerSec: 500,
		Latency:        loadgen.Latency{P50: 1500 * time.Microsecond, P99: 12 * time.Millisecond},
		FailedRequests: 1, FirstError: "Unavailable: boom"}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"batch 100, concurrency 16, fresh values", "items:     1000 (500/s)", "p50 1.50ms", "p99 12.0ms", "first: Unavailable: boom"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, text.String())
		}
	}
	data, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got["items_per_s"] != 500.0 || got["elapsed_s"] != 2.0 || got["errors"] != 1.0 ||
		got["latency"].(map[string]any)["p99_ms"] != 12.0 {
		t.Errorf("JSON output = %s", data)
	}
}

// BenchmarkServer runs the load generator against an in-process server, one b.N iteration
// per request of 100 (or, for the -b1 runs, 1) fresh pan values at concurrency 16. The server exposes no pprof, so this
// is the way to profile it under load (the profile includes the generator's share):
//
//	go test -run '^$' -bench 'Server/http/tokenize' -benchtime 2000x -cpuprofile cpu.out ./clients/go/loadgen
//	go tool pprof -top loadgen.test cpu.out
func BenchmarkServer(b *testing.B) {
	for _, protocol := range []string{loadgen.ProtocolHTTP, loadgen.ProtocolGRPC} {
		for _, run := range []struct {
			op    string
			batch int
		}{{loadgen.OpTokenize, 100}, {loadgen.OpDetokenize, 100}, {loadgen.OpTokenize, 1}} {
			op := run.op
			name := protocol + "/" + op
			if run.batch != 100 {
				name += "-b" + strconv.Itoa(run.batch)
			}
			b.Run(name, func(b *testing.B) {
				a := startServer(b)
				cfg := config(a, protocol, op)
				cfg.Batch, cfg.Concurrency, cfg.Warmup, cfg.Requests, cfg.Pool = run.batch, 16, 0, b.N, 20000
				b.ResetTimer()
				res, err := loadgen.Run(context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				if res.Errors() > 0 {
					b.Fatalf("%d errors; first: %s", res.Errors(), res.FirstError)
				}
				b.ReportMetric(res.ItemsPerSec, "items/s")
				b.ReportMetric(float64(res.Latency.P99.Microseconds())/1e3, "p99-ms")
			})
		}
	}
}

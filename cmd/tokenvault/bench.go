package main

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenvault/tokenvault/clients/go/loadgen"
)

func newBenchCmd() *cobra.Command {
	cfg := loadgen.Config{Protocol: loadgen.ProtocolGRPC, Op: loadgen.OpTokenize}
	var cf clientFlags // the connection settings, -o; bench makes its own connections
	var serverPID int
	cmd := &cobra.Command{
		Use:   "bench [flags]",
		Short: "Load-test a running server: tokenize or detokenize, over gRPC or HTTP/JSON",
		Long: `Load-test a running server and print throughput and request latency (p50/p90/p99/max).

Each of --concurrency workers keeps one request of --batch items in flight for --duration
(or for --requests requests) after --warmup. Tokenize stores every value it sends: point it at
a scratch vault. Detokenize first tokenizes a pool of --pool fresh values (not measured), then
reveals random picks of them. Values are random and valid for the template (a custom template
gets values for its base: ` + strings.Join(loadgen.GeneratedBases(), ", ") + `).

With --server-pid (a server on this host, Linux), also the server's CPU time per item, read
from /proc/PID/stat when the load starts and ends: steadier than throughput on a shared machine.

--timeout bounds each request (a slower one counts as failed; 0: no limit).

Exits non-zero if any request or item failed. See BENCHMARKS.md for measured figures.`,
		Example: `  tokenvault bench --protocol http --batch 100 --concurrency 16 --duration 10s
  tokenvault bench --op detokenize --pool 100000 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cf.check(); err != nil {
				return err
			}
			tc, err := cf.tlsConfig()
			if err != nil {
				return err
			}
			cfg.GRPCAddr, cfg.Token, cfg.TLS = cf.addr, cf.token, tc
			cfg.RequestTimeout = cf.timeout // --timeout bounds each request
			if cf.timeout == 0 {
				cfg.RequestTimeout = -1 // 0: no limit
			}
			if serverPID < 0 {
				return fmt.Errorf("--server-pid must be a process id")
			}
			if serverPID > 0 {
				if cfg.ServerCPU, err = procCPU(serverPID); err != nil {
					return err
				}
			}
			p := newPrinter(cmd, cf.output)
			// On a terminal, one status line redrawn in place (with -o json too); else the
			// phases as lines with text output, nothing with -o json.
			prog := newProgress(p.errOut)
			defer prog.clear()
			switch {
			case prog.on:
				cfg.Progress = func(msg string) { prog.show("bench: %s", msg) }
				cfg.PoolProgress = func(done, total int) {
					prog.update("bench: pool: %s of %s values tokenized", thousands(done), thousands(total))
				}
			case !p.json:
				cfg.Progress = func(msg string) { p.warnf("bench: %s\n", msg) }
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := loadgen.Run(ctx, cfg)
			if res == nil {
				return err
			}
			prog.clear()
			if perr := p.print(res, res.WriteText); perr != nil {
				return perr
			}
			if err != nil {
				return fmt.Errorf("stopped early: %w", err)
			}
			if n := res.Errors(); n > 0 {
				return fmt.Errorf("%d errors; first: %s", n, res.FirstError)
			}
			return nil
		},
	}
	f := cmd.Flags()
	cf.register(f)
	f.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:8080", "server HTTP/JSON address (--protocol http)")
	f.StringVar(&cfg.Protocol, "protocol", loadgen.ProtocolGRPC, "grpc or http")
	f.StringVar(&cfg.Op, "op", loadgen.OpTokenize, "tokenize or detokenize")
	f.StringVar(&cfg.Template, "template", "pan", "template of the values")
	f.StringVar(&cfg.Domain, "domain", "", "token domain (default: the server's \"default\")")
	f.StringVar(&cfg.Purpose, "purpose", "bench", "detokenize purpose, kept in the audit trail")
	f.IntVar(&cfg.Batch, "batch", 100, "items per request")
	f.IntVar(&cfg.Concurrency, "concurrency", 16, "requests in flight (workers)")
	f.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured time")
	f.IntVar(&cfg.Requests, "requests", 0, "measure exactly this many requests instead of --duration")
	f.DurationVar(&cfg.Warmup, "warmup", time.Second, "unmeasured time before measuring")
	f.BoolVar(&cfg.Unique, "unique", true, "fresh random values in every tokenize request (false: the same values again and again)")
	f.IntVar(&cfg.Pool, "pool", 100000, "detokenize: tokens created before the run")
	f.IntVar(&cfg.Conns, "conns", 1, "gRPC connections shared by the workers")
	f.Uint64Var(&cfg.Seed, "seed", 0, "seed of the random values (0: random)")
	f.IntVar(&serverPID, "server-pid", 0, "process id of the server, when it runs on this host (Linux): report its CPU time per item (server_cpu_us_per_item), from /proc/PID/stat over the load, warmup included")
	return cmd
}

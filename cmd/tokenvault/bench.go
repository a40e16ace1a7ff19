package main

import (
	"encoding/json"
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
	var output string
	var tf clientFlags // only its TLS settings are used
	cmd := &cobra.Command{
		Use:   "bench [flags]",
		Short: "Load-test a running server: tokenize or detokenize, over gRPC or HTTP/JSON",
		Long: `Load-test a running server and print throughput and request latency (p50/p90/p99/max).

Each of --concurrency workers keeps one request of --batch items in flight for --duration
(or for --requests requests) after --warmup. Tokenize stores every value it sends: point it at
a scratch vault. Detokenize first tokenizes a pool of --pool fresh values (not measured), then
reveals random picks of them. Values are random and valid for the template (a custom template
gets values for its base: ` + strings.Join(loadgen.GeneratedBases(), ", ") + `).

Exits non-zero if any request or item failed. See BENCHMARKS.md for measured figures.`,
		Example: `  tokenvault bench --protocol http --batch 100 --concurrency 16 --duration 10s
  tokenvault bench --op detokenize --pool 100000 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("-o must be text or json")
			}
			if cfg.Token == "" {
				return fmt.Errorf("no credentials: set --token or TOKENVAULT_TOKEN")
			}
			tc, err := tf.tlsConfig()
			if err != nil {
				return err
			}
			cfg.TLS = tc
			if output == "text" {
				cfg.Progress = func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), "bench:", msg) }
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			res, err := loadgen.Run(ctx, cfg)
			if res == nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(res); err != nil {
					return err
				}
			} else if err := res.WriteText(cmd.OutOrStdout()); err != nil {
				return err
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
	f.StringVar(&cfg.GRPCAddr, "addr", "127.0.0.1:7070", "server gRPC address")
	f.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:8080", "server HTTP/JSON address (--protocol http)")
	f.StringVar(&cfg.Token, "token", "", "bearer secret (TOKENVAULT_TOKEN)")
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
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	f.StringVar(&tf.caFile, "ca-file", "", "PEM CA bundle: connect with TLS and verify the server against it (TOKENVAULT_CA_FILE)")
	f.BoolVar(&tf.tls, "tls", false, "connect with TLS, verifying the server against the system's trusted CAs (TOKENVAULT_TLS)")
	f.StringVar(&tf.serverName, "tls-server-name", "", "with --ca-file or --tls: the name to verify in the server certificate")
	return cmd
}

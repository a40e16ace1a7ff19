package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/audit"
	"github.com/tokenvault/tokenvault/vault/store"
)

func newAuditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read, export and verify the audit trail"}
	cmd.AddCommand(newAuditListCmd(), newAuditExportCmd(), newAuditVerifyCmd())
	return cmd
}

// newAuditListCmd prints events as JSON lines, whatever -o says.
func newAuditListCmd() *cobra.Command {
	var req tvpb.ListAuditEventsRequest
	var since, until string
	var all bool
	cmd := clientCmd(&cobra.Command{
		Use:   "list [--since RFC3339] [--until RFC3339] [--credential ID] [--vendor V] [--outcome O] [--method M]",
		Short: "List audit events (JSON lines)",
		Args:  cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			var err error
			if req.StartTime, err = parseTime(since); err != nil {
				return err
			}
			req.EndTime, err = parseTime(until)
			return err
		},
	}, func(s *session, _ []string) error {
		for {
			resp, err := s.audit().ListAuditEvents(s.ctx, &req)
			if err != nil {
				return err
			}
			for _, ev := range resp.GetEvents() {
				s.printf("%s\n", ev.GetJson())
			}
			next := resp.GetNextPageToken()
			if next == "" {
				return nil
			}
			if !all {
				s.warnf("more: --page-token %s (or --all)\n", next)
				return nil
			}
			req.PageToken = next
		}
	})
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "only events at or after this time (RFC 3339)")
	f.StringVar(&until, "until", "", "only events before this time (RFC 3339)")
	f.StringVar(&req.Credential, "credential", "", "only this credential id")
	f.StringVar(&req.Vendor, "vendor", "", "only this vendor")
	f.StringVar(&req.Outcome, "outcome", "", "allowed, partial, denied or failed")
	f.StringVar(&req.Method, "method", "", "full gRPC method, e.g. /tokenvault.v1.VendorService/VendorDetokenize")
	f.Int32Var(&req.PageSize, "page-size", 100, "events per page (at most 1000)")
	f.StringVar(&req.PageToken, "page-token", "", "continue after a previous page")
	f.BoolVar(&all, "all", false, "follow every page")
	return cmd
}

// parseTime reads an RFC 3339 time; "" is no time (nil).
func parseTime(s string) (*timestamppb.Timestamp, error) {
	if s == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return nil, fmt.Errorf("times must be RFC 3339, e.g. 2026-11-27T10:00:00Z")
	}
	return timestamppb.New(t), nil
}

// newAuditExportCmd writes the trail's JSON lines, whatever -o says.
func newAuditExportCmd() *cobra.Command {
	var out string
	var from uint64
	cmd := clientCmd(&cobra.Command{
		Use:   "export [--out FILE] [--from SEQ]",
		Short: "Export the trail as JSON lines for a SIEM (verifiable with audit verify --file)",
		Args:  cobra.NoArgs,
	}, func(s *session, _ []string) error {
		stream, err := s.audit().ExportAudit(s.ctx, &tvpb.ExportAuditRequest{FromSeq: from})
		if err != nil {
			return err
		}
		w := s.out
		var f *os.File
		if out != "" {
			if f, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
				return err
			}
			defer f.Close()
			w = f
		}
		// Progress on a terminal's stderr, unless the lines themselves go to that terminal.
		var prog *progress
		if f != nil || !isTerminal(s.out) {
			prog = newProgress(s.errOut)
			defer prog.clear()
		}
		n := 0
		err = recvAll(stream, func(msg *tvpb.ExportAuditResponse) error {
			n++
			prog.update("audit export: %s lines", thousands(n))
			_, err := fmt.Fprintln(w, msg.GetLine())
			return err
		})
		if err != nil || f == nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		prog.clear()
		s.warnf("wrote %d lines to %s\n", n, out)
		return nil
	})
	cmd.Flags().StringVar(&out, "out", "", "write to FILE (0600) instead of stdout")
	cmd.Flags().Uint64Var(&from, "from", 1, "first sequence number (resume an earlier export)")
	return cmd
}

// newAuditVerifyCmd is offline: it reads a stopped server's store or an export, no server.
func newAuditVerifyCmd() *cobra.Command {
	var data, file, pubkey, output, storeURL string
	var witnesses []string
	var strict bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "verify (--data DIR | --store URL | --file EXPORT.jsonl) [--pubkey FILE] [--witness FILE]... [--strict]",
		Short: "Check the audit trail offline: chain, signatures, coverage, witnesses; exit 0 only if intact",
		Long: `Check the audit trail offline, with no server: an export (--file), a stopped server's
data directory (--data), or a PostgreSQL store (--store URL: read in one consistent
snapshot, while replicas keep serving).

Every event must be covered by a signature under the trusted public key (--pubkey): a signed
checkpoint at or after it, a witnessed checkpoint, or an export's signed header. Events after
the last checkpoint of a data directory (a server stopped before its next checkpoint) pass
only if they span at most --checkpoint-interval after it; they are reported as unsigned, and
--strict refuses them. --witness checks the trail against the checkpoints an external witness
kept (serve --audit-witness-file/--audit-witness-url), which catches history rewritten even
with the signing key, and events cut from the end.

Without --pubkey, verify trusts the key stored in the data it checks and says so: fetch the
key once (GET /v1/audit/public-key) and keep it apart. See docs/audit.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if n := btoi(data != "") + btoi(file != "") + btoi(storeURL != ""); n != 1 {
				return errors.New("give exactly one of --data DIR, --store URL or --file EXPORT.jsonl")
			}
			if err := checkStoreURL(storeURL); err != nil {
				return err
			}
			if strict && pubkey == "" {
				return errors.New("--strict needs --pubkey: a key taken from the data being checked proves nothing")
			}
			opts := audit.Options{Strict: strict, CheckpointInterval: interval}
			if pubkey != "" {
				b, err := os.ReadFile(pubkey)
				if err != nil {
					return err
				}
				opts.PublicKeyset = b
			}
			for _, w := range witnesses {
				f, err := os.Open(w)
				if err != nil {
					return fmt.Errorf("--witness: %w", err)
				}
				cs, err := audit.ReadWitness(f)
				f.Close()
				if err != nil {
					return fmt.Errorf("--witness %s: %w", w, err)
				}
				opts.Witnessed = append(opts.Witnessed, cs...)
			}
			p := newPrinter(cmd, output)
			var rep audit.Report
			var verr error
			if data != "" || storeURL != "" {
				sf := storeFlags{data: data, url: storeURL}
				st, err := sf.open(cmd.Context(), false, "audit verify")
				if errors.Is(err, store.ErrLocked) {
					return fmt.Errorf("%s is in use by a running server: stop it, or verify an export (audit export --out F; audit verify --file F)", data)
				}
				if err != nil {
					return err
				}
				defer st.Close()
				rep, verr = vault.VerifyStoreAudit(cmd.Context(), st, opts)
			} else {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				rep, verr = audit.Verify(f, opts)
			}
			switch rep.KeySource {
			case audit.KeyFromData:
				p.warnf("WARNING: trusting the public key stored in the data being checked; pass --pubkey FILE (from GET /v1/audit/public-key, kept apart): whoever can rewrite the data can re-sign it with a key of their own\n")
			case audit.KeyFromExport:
				p.warnf("WARNING: trusting the public key in the export's own header; pass --pubkey FILE (from GET /v1/audit/public-key, kept apart): whoever can rewrite the export can re-sign it with a key of their own\n")
			}
			for _, w := range rep.Warnings {
				p.warnf("warning: %s\n", w)
			}
			err := p.print(rep, func(w io.Writer) error {
				fmt.Fprintf(w, "events %d..%d (%d), %d valid checkpoints, %d witnessed, signed up to %d\n",
					rep.FirstSeq, rep.LastSeq, rep.Events, rep.Checkpoints, rep.Witnessed, rep.SignedUpTo)
				for _, c := range rep.Chains {
					name := "replica " + c.Replica
					if c.Replica == "" {
						name = "single-process chain"
					}
					fmt.Fprintf(w, "  %s: events %d..%d (%d), signed up to %d, %d unsigned\n", name, c.FirstSeq, c.LastSeq, c.Events, c.SignedUpTo, c.Unsigned)
				}
				if verr != nil {
					return nil
				}
				if rep.Unsigned > 0 {
					fmt.Fprintf(w, "UNSIGNED: %d events after the last checkpoint are unsigned\n", rep.Unsigned)
				}
				_, err := fmt.Fprintf(w, "OK: the audit trail is intact, verified under the %s key\n", keyWord(rep.KeySource))
				return err
			})
			if verr != nil {
				return verr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "a stopped server's data directory")
	f.StringVar(&file, "file", "", "an export made by audit export")
	f.StringVar(&storeURL, "store", "", "a PostgreSQL store: postgres://USER@HOST:PORT/DB?sslmode=… (the password in PGPASSWORD or ~/.pgpass)")
	f.StringVar(&pubkey, "pubkey", "", "the trusted audit public keyset (from GET /v1/audit/public-key); without it, the key in the data being checked (with a warning)")
	f.StringArrayVar(&witnesses, "witness", nil, "a witness's record of checkpoints (JSON lines, from serve --audit-witness-file or a --audit-witness-url receiver); repeatable")
	f.BoolVar(&strict, "strict", false, "fail on any event not covered by a signature (no unsigned tail) and on an unsigned export header; needs --pubkey")
	f.DurationVar(&interval, "checkpoint-interval", audit.DefaultCheckpointInterval, "the server's checkpoint interval: an unsigned tail of --data passes only within it of the last checkpoint")
	f.StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

// keyWord names a report's key source for the OK line.
func keyWord(src string) string {
	switch src {
	case audit.KeyFromData:
		return "UNTRUSTED (stored in the data)"
	case audit.KeyFromExport:
		return "UNTRUSTED (the export's own)"
	}
	return "given (--pubkey)"
}

// btoi is 1 for true.
func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

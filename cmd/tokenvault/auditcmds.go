package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
		n := 0
		err = recvAll(stream, func(msg *tvpb.ExportAuditResponse) error {
			n++
			_, err := fmt.Fprintln(w, msg.GetLine())
			return err
		})
		if err != nil || f == nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		s.warnf("wrote %d lines to %s\n", n, out)
		return nil
	})
	cmd.Flags().StringVar(&out, "out", "", "write to FILE (0600) instead of stdout")
	cmd.Flags().Uint64Var(&from, "from", 1, "first sequence number (resume an earlier export)")
	return cmd
}

// newAuditVerifyCmd is offline: it reads a stopped server's store or an export, no server.
func newAuditVerifyCmd() *cobra.Command {
	var data, file, pubkey, output string
	cmd := &cobra.Command{
		Use:   "verify (--data DIR | --file EXPORT.jsonl) [--pubkey FILE]",
		Short: "Check the audit chain and checkpoint signatures offline; exit 0 only if intact",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (data == "") == (file == "") {
				return errors.New("give exactly one of --data DIR or --file EXPORT.jsonl")
			}
			var pub []byte
			if pubkey != "" {
				b, err := os.ReadFile(pubkey)
				if err != nil {
					return err
				}
				pub = b
			}
			p := newPrinter(cmd, output)
			var rep audit.Report
			var verr error
			if data != "" {
				st, err := store.Open(filepath.Join(data, store.FileName), store.Options{})
				if errors.Is(err, store.ErrLocked) {
					return fmt.Errorf("%s is in use by a running server: stop it, or verify an export (audit export --out F; audit verify --file F)", data)
				}
				if err != nil {
					return err
				}
				defer st.Close()
				rep, verr = vault.VerifyStoreAudit(context.Background(), st)
			} else {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				if pub == nil {
					p.warnf("note: no --pubkey given; trusting the public key in the export's header\n")
				}
				rep, verr = audit.Verify(f, pub)
			}
			err := p.print(rep, func(w io.Writer) error {
				fmt.Fprintf(w, "events %d..%d (%d), %d valid checkpoints, signed up to %d\n",
					rep.FirstSeq, rep.LastSeq, rep.Events, rep.Checkpoints, rep.SignedUpTo)
				if verr != nil {
					return nil
				}
				if rep.Unsigned > 0 {
					fmt.Fprintf(w, "warning: the last %d events are after the last checkpoint: truncation there cannot be detected\n", rep.Unsigned)
				}
				_, err := fmt.Fprintln(w, "OK: the audit chain is intact")
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
	f.StringVar(&pubkey, "pubkey", "", "the audit public keyset (from GET /v1/audit/public-key); default: the one in the store or export")
	f.StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

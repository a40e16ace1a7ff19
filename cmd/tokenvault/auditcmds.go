package main

import (
	"context"
	"encoding/json"
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

	var lf clientFlags
	var req tvpb.ListAuditEventsRequest
	var since, until string
	var all bool
	list := &cobra.Command{
		Use:   "list [--since RFC3339] [--until RFC3339] [--credential ID] [--vendor V] [--outcome O] [--method M]",
		Short: "List audit events (JSON lines)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, t := range []struct {
				s   string
				dst **timestamppb.Timestamp
			}{{since, &req.StartTime}, {until, &req.EndTime}} {
				if t.s == "" {
					continue
				}
				ts, err := time.Parse(time.RFC3339, t.s)
				if err != nil {
					return fmt.Errorf("times must be RFC 3339, e.g. 2026-11-27T10:00:00Z")
				}
				*t.dst = timestamppb.New(ts)
			}
			c, err := lf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ac := tvpb.NewAuditServiceClient(c.Conn())
			for {
				resp, err := ac.ListAuditEvents(cmd.Context(), &req)
				if err != nil {
					return callErr(err)
				}
				for _, ev := range resp.GetEvents() {
					fmt.Fprintln(cmd.OutOrStdout(), ev.GetJson())
				}
				if !all || resp.GetNextPageToken() == "" {
					if resp.GetNextPageToken() != "" {
						fmt.Fprintf(cmd.ErrOrStderr(), "more: --page-token %s (or --all)\n", resp.GetNextPageToken())
					}
					return nil
				}
				req.PageToken = resp.GetNextPageToken()
			}
		},
	}
	addClientFlags(list, &lf)
	list.Flags().StringVar(&since, "since", "", "only events at or after this time (RFC 3339)")
	list.Flags().StringVar(&until, "until", "", "only events before this time (RFC 3339)")
	list.Flags().StringVar(&req.Credential, "credential", "", "only this credential id")
	list.Flags().StringVar(&req.Vendor, "vendor", "", "only this vendor")
	list.Flags().StringVar(&req.Outcome, "outcome", "", "allowed, partial, denied or failed")
	list.Flags().StringVar(&req.Method, "method", "", "full gRPC method, e.g. /tokenvault.v1.VendorService/VendorDetokenize")
	list.Flags().Int32Var(&req.PageSize, "page-size", 100, "events per page (at most 1000)")
	list.Flags().StringVar(&req.PageToken, "page-token", "", "continue after a previous page")
	list.Flags().BoolVar(&all, "all", false, "follow every page")

	var ef clientFlags
	var out string
	var from uint64
	export := &cobra.Command{
		Use:   "export [--out FILE] [--from SEQ]",
		Short: "Export the trail as JSON lines for a SIEM (verifiable with audit verify --file)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := ef.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			stream, err := tvpb.NewAuditServiceClient(c.Conn()).ExportAudit(cmd.Context(), &tvpb.ExportAuditRequest{FromSeq: from})
			if err != nil {
				return callErr(err)
			}
			w := cmd.OutOrStdout()
			var f *os.File
			if out != "" {
				if f, err = os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			n := 0
			for {
				msg, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return callErr(err)
				}
				if _, err := fmt.Fprintln(w, msg.GetLine()); err != nil {
					return err
				}
				n++
			}
			if f != nil {
				if err := f.Sync(); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d lines to %s\n", n, out)
			}
			return nil
		},
	}
	addClientFlags(export, &ef)
	export.Flags().StringVar(&out, "out", "", "write to FILE (0600) instead of stdout")
	export.Flags().Uint64Var(&from, "from", 1, "first sequence number (resume an earlier export)")

	var data, file, pubkey, output string
	verify := &cobra.Command{
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
					fmt.Fprintln(cmd.ErrOrStderr(), "note: no --pubkey given; trusting the public key in the export's header")
				}
				rep, verr = audit.Verify(f, pub)
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				_ = enc.Encode(rep)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "events %d..%d (%d), %d valid checkpoints, signed up to %d\n",
					rep.FirstSeq, rep.LastSeq, rep.Events, rep.Checkpoints, rep.SignedUpTo)
				if rep.Unsigned > 0 && verr == nil {
					fmt.Fprintf(cmd.OutOrStdout(), "warning: the last %d events are after the last checkpoint: truncation there cannot be detected\n", rep.Unsigned)
				}
			}
			if verr != nil {
				return verr
			}
			if output != "json" {
				fmt.Fprintln(cmd.OutOrStdout(), "OK: the audit chain is intact")
			}
			return nil
		},
	}
	verify.Flags().StringVar(&data, "data", "", "a stopped server's data directory")
	verify.Flags().StringVar(&file, "file", "", "an export made by audit export")
	verify.Flags().StringVar(&pubkey, "pubkey", "", "the audit public keyset (from GET /v1/audit/public-key); default: the one in the store or export")
	verify.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.AddCommand(list, export, verify)
	return cmd
}

package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

func newGrantCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "grant", Short: "Manage vendor grants (admin)"}
	cmd.AddCommand(newGrantCreateCmd(), newGrantListCmd(), newGrantRevokeCmd())
	return cmd
}

func newGrantCreateCmd() *cobra.Command {
	var g tvpb.Grant
	var reveal, rate string
	var ttl time.Duration
	cmd := clientCmd(&cobra.Command{
		Use:   "create --vendor V --domain D --template T [--reveal full|masked] --purpose P [--ttl DURATION] [--rate N/min]",
		Short: "Create a grant; prints it with its id",
		Args:  cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			switch reveal {
			case "", "full":
				g.Reveal = tvpb.Reveal_REVEAL_FULL
			case "masked":
				g.Reveal = tvpb.Reveal_REVEAL_MASKED
			default:
				return fmt.Errorf("--reveal must be full or masked")
			}
			r, err := parseRate(rate)
			if err != nil {
				return err
			}
			g.RatePerMinute = r
			if ttl <= 0 {
				return fmt.Errorf("--ttl must be positive (e.g. 720h)")
			}
			return nil
		},
	}, func(s *session, _ []string) error {
		resp, err := s.grants().CreateGrant(s.ctx, &tvpb.CreateGrantRequest{Grant: &g, Ttl: durationpb.New(ttl)})
		if err != nil {
			return err
		}
		return s.print(resp.GetGrant(), func(w io.Writer) error { return printGrants(w, []*tvpb.Grant{resp.GetGrant()}) })
	})
	f := cmd.Flags()
	f.StringVar(&g.Vendor, "vendor", "", "vendor the grant is for")
	f.StringSliceVar(&g.Domains, "domain", nil, "token domain(s) covered (repeat or comma-separate)")
	f.StringSliceVar(&g.Templates, "template", nil, "template(s) covered (repeat or comma-separate)")
	f.StringVar(&reveal, "reveal", "full", "full or masked")
	f.StringVar(&g.Purpose, "purpose", "", "why the vendor may see the values")
	f.DurationVar(&ttl, "ttl", 30*24*time.Hour, "how long the grant lasts")
	f.StringVar(&rate, "rate", "", "at most N items a minute, e.g. 100/min")
	f.Int64Var(&g.Quota, "quota", 0, "at most N items in total (0: no quota)")
	f.StringSliceVar(&g.SourceCidrs, "source-cidr", nil, "only from these networks (CIDR)")
	for _, name := range []string{"vendor", "domain", "template", "purpose"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

// parseRate reads "N/min" (or a bare N) as items a minute.
func parseRate(s string) (int32, error) {
	if s == "" {
		return 0, nil
	}
	n, unit, _ := strings.Cut(s, "/")
	v, err := strconv.Atoi(n)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("--rate must look like 100/min")
	}
	switch unit {
	case "", "min", "m":
		return int32(v), nil
	case "s", "sec":
		return int32(v * 60), nil
	case "h", "hour":
		if v < 60 {
			return 0, fmt.Errorf("--rate: %d/hour is under one a minute; the rate's unit is items a minute", v)
		}
		return int32(v / 60), nil
	}
	return 0, fmt.Errorf("--rate must look like 100/min")
}

func newGrantListCmd() *cobra.Command {
	var vendor string
	cmd := clientCmd(&cobra.Command{Use: "list [--vendor V]", Short: "List grants", Args: cobra.NoArgs},
		func(s *session, _ []string) error {
			resp, err := s.grants().ListGrants(s.ctx, &tvpb.ListGrantsRequest{Vendor: vendor})
			if err != nil {
				return err
			}
			return s.print(resp, func(w io.Writer) error { return printGrants(w, resp.GetGrants()) })
		})
	cmd.Flags().StringVar(&vendor, "vendor", "", "only this vendor's grants")
	return cmd
}

func newGrantRevokeCmd() *cobra.Command {
	return clientCmd(&cobra.Command{Use: "revoke ID", Short: "Revoke a grant at once", Args: cobra.ExactArgs(1)},
		func(s *session, args []string) error {
			resp, err := s.grants().RevokeGrant(s.ctx, &tvpb.RevokeGrantRequest{Id: args[0]})
			if err != nil {
				return err
			}
			return s.printRevoked(resp, args[0])
		})
}

func printGrants(w io.Writer, gs []*tvpb.Grant) error {
	t := newTable(w, "ID", "VENDOR", "DOMAINS", "TEMPLATES", "REVEAL", "PURPOSE", "EXPIRES", "RATE/MIN", "USED/QUOTA", "STATE")
	for _, g := range gs {
		quota := "-"
		if g.GetQuota() > 0 {
			quota = strconv.FormatInt(g.GetQuota(), 10)
		}
		t.row(g.GetId(), g.GetVendor(), strings.Join(g.GetDomains(), ","), strings.Join(g.GetTemplates(), ","),
			strings.ToLower(strings.TrimPrefix(g.GetReveal().String(), "REVEAL_")), g.GetPurpose(),
			g.GetExpireTime().AsTime().Format(time.RFC3339), g.GetRatePerMinute(), fmt.Sprintf("%d/%s", g.GetUsed(), quota), g.GetState())
	}
	return t.flush()
}

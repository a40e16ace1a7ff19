package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

// printProto prints a response as JSON (snake_case field names).
func printProto(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true, Indent: "  "}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func newCredentialCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "credential", Short: "Manage credentials (admin)"}

	var cf clientFlags
	var name, role, vendor, certSAN string
	create := &cobra.Command{
		Use:   "create --name N --role ROLE [--vendor V]",
		Short: "Create a credential; prints its secret once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := tvpb.NewCredentialServiceClient(c.Conn()).CreateCredential(cmd.Context(),
				&tvpb.CreateCredentialRequest{Name: name, Role: role, Vendor: vendor, CertSan: certSAN})
			if err != nil {
				return callErr(err)
			}
			if cf.output == "json" {
				return printProto(cmd.OutOrStdout(), resp)
			}
			cr := resp.GetCredential()
			fmt.Fprintf(cmd.OutOrStdout(), "id:     %s\nrole:   %s\n", cr.GetId(), cr.GetRole())
			if cr.GetVendor() != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "vendor: %s\n", cr.GetVendor())
			}
			fmt.Fprintf(cmd.OutOrStdout(), "secret: %s\n\nThe secret is shown only now; the vault keeps only its hash.\n", resp.GetSecret())
			return nil
		},
	}
	addClientFlags(create, &cf)
	create.Flags().StringVar(&name, "name", "", "a name for the credential")
	create.Flags().StringVar(&role, "role", "", "admin, tokenizer, detokenizer, auditor or vendor")
	create.Flags().StringVar(&vendor, "vendor", "", "for role vendor: the vendor it acts for")
	create.Flags().StringVar(&certSAN, "cert-san", "", "for role vendor: bind to client certificates with this SAN (mTLS on the vendor listener)")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("role")

	var lf clientFlags
	list := &cobra.Command{
		Use:   "list",
		Short: "List credentials",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := lf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := tvpb.NewCredentialServiceClient(c.Conn()).ListCredentials(cmd.Context(), &tvpb.ListCredentialsRequest{})
			if err != nil {
				return callErr(err)
			}
			if lf.output == "json" {
				return printProto(cmd.OutOrStdout(), resp)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tVENDOR\tCREATED\tREVOKED")
			for _, cr := range resp.GetCredentials() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%v\n", cr.GetId(), cr.GetName(), cr.GetRole(), cr.GetVendor(),
					cr.GetCreateTime().AsTime().Format(time.RFC3339), cr.GetRevoked())
			}
			return tw.Flush()
		},
	}
	addClientFlags(list, &lf)

	var rf clientFlags
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a credential at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := tvpb.NewCredentialServiceClient(c.Conn()).RevokeCredential(cmd.Context(), &tvpb.RevokeCredentialRequest{Id: args[0]})
			if err != nil {
				return callErr(err)
			}
			if rf.output == "json" {
				return printProto(cmd.OutOrStdout(), resp)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", args[0])
			return nil
		},
	}
	addClientFlags(revoke, &rf)
	cmd.AddCommand(create, list, revoke)
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

func newGrantCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "grant", Short: "Manage vendor grants (admin)"}

	var cf clientFlags
	var g tvpb.Grant
	var reveal, rateS string
	var ttl time.Duration
	create := &cobra.Command{
		Use:   "create --vendor V --domain D --template T [--reveal full|masked] --purpose P [--ttl DURATION] [--rate N/min]",
		Short: "Create a grant; prints it with its id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch reveal {
			case "", "full":
				g.Reveal = tvpb.Reveal_REVEAL_FULL
			case "masked":
				g.Reveal = tvpb.Reveal_REVEAL_MASKED
			default:
				return fmt.Errorf("--reveal must be full or masked")
			}
			r, err := parseRate(rateS)
			if err != nil {
				return err
			}
			g.RatePerMinute = r
			if ttl <= 0 {
				return fmt.Errorf("--ttl must be positive (e.g. 720h)")
			}
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := tvpb.NewGrantServiceClient(c.Conn()).CreateGrant(cmd.Context(),
				&tvpb.CreateGrantRequest{Grant: &g, Ttl: durationpb.New(ttl)})
			if err != nil {
				return callErr(err)
			}
			if cf.output == "json" {
				return printProto(cmd.OutOrStdout(), resp.GetGrant())
			}
			return printGrants(cmd.OutOrStdout(), []*tvpb.Grant{resp.GetGrant()})
		},
	}
	addClientFlags(create, &cf)
	create.Flags().StringVar(&g.Vendor, "vendor", "", "vendor the grant is for")
	create.Flags().StringSliceVar(&g.Domains, "domain", nil, "token domain(s) covered (repeat or comma-separate)")
	create.Flags().StringSliceVar(&g.Templates, "template", nil, "template(s) covered (repeat or comma-separate)")
	create.Flags().StringVar(&reveal, "reveal", "full", "full or masked")
	create.Flags().StringVar(&g.Purpose, "purpose", "", "why the vendor may see the values")
	create.Flags().DurationVar(&ttl, "ttl", 30*24*time.Hour, "how long the grant lasts")
	create.Flags().StringVar(&rateS, "rate", "", "at most N items a minute, e.g. 100/min")
	create.Flags().Int64Var(&g.Quota, "quota", 0, "at most N items in total (0: no quota)")
	create.Flags().StringSliceVar(&g.SourceCidrs, "source-cidr", nil, "only from these networks (CIDR)")
	for _, f := range []string{"vendor", "domain", "template", "purpose"} {
		_ = create.MarkFlagRequired(f)
	}

	var lf clientFlags
	var vendor string
	list := &cobra.Command{
		Use:   "list [--vendor V]",
		Short: "List grants",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := lf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := tvpb.NewGrantServiceClient(c.Conn()).ListGrants(cmd.Context(), &tvpb.ListGrantsRequest{Vendor: vendor})
			if err != nil {
				return callErr(err)
			}
			if lf.output == "json" {
				return printProto(cmd.OutOrStdout(), resp)
			}
			return printGrants(cmd.OutOrStdout(), resp.GetGrants())
		},
	}
	addClientFlags(list, &lf)
	list.Flags().StringVar(&vendor, "vendor", "", "only this vendor's grants")

	var rf clientFlags
	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a grant at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			resp, err := tvpb.NewGrantServiceClient(c.Conn()).RevokeGrant(cmd.Context(), &tvpb.RevokeGrantRequest{Id: args[0]})
			if err != nil {
				return callErr(err)
			}
			if rf.output == "json" {
				return printProto(cmd.OutOrStdout(), resp)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", args[0])
			return nil
		},
	}
	addClientFlags(revoke, &rf)
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func printGrants(w io.Writer, gs []*tvpb.Grant) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVENDOR\tDOMAINS\tTEMPLATES\tREVEAL\tPURPOSE\tEXPIRES\tRATE/MIN\tUSED/QUOTA\tREVOKED")
	for _, g := range gs {
		quota := "-"
		if g.GetQuota() > 0 {
			quota = strconv.FormatInt(g.GetQuota(), 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d/%s\t%v\n", g.GetId(), g.GetVendor(),
			strings.Join(g.GetDomains(), ","), strings.Join(g.GetTemplates(), ","),
			strings.ToLower(strings.TrimPrefix(g.GetReveal().String(), "REVEAL_")), g.GetPurpose(),
			g.GetExpireTime().AsTime().Format(time.RFC3339), g.GetRatePerMinute(), g.GetUsed(), quota, g.GetRevoked())
	}
	return tw.Flush()
}

package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	client "github.com/tokenvault/tokenvault/clients/go"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

// clientFlags are shared by every command that talks to a server.
type clientFlags struct {
	addr, token, output string
	caFile, serverName  string
	tls                 bool
}

func addClientFlags(cmd *cobra.Command, cf *clientFlags) {
	cmd.Flags().StringVar(&cf.addr, "addr", "127.0.0.1:7070", "server gRPC address (TOKENVAULT_ADDR)")
	cmd.Flags().StringVar(&cf.token, "token", "", "bearer secret (TOKENVAULT_TOKEN)")
	cmd.Flags().StringVarP(&cf.output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&cf.caFile, "ca-file", "", "PEM CA bundle: connect with TLS and verify the server against it (TOKENVAULT_CA_FILE)")
	cmd.Flags().StringVar(&cf.serverName, "tls-server-name", "", "with --ca-file or --tls: the name to verify in the server certificate")
	cmd.Flags().BoolVar(&cf.tls, "tls", false, "connect with TLS, verifying the server against the system's trusted CAs (TOKENVAULT_TLS)")
}

func (cf *clientFlags) dial() (*client.Client, error) {
	if cf.output != "text" && cf.output != "json" {
		return nil, fmt.Errorf("-o must be text or json")
	}
	if cf.token == "" {
		return nil, errors.New("no credentials: set --token or TOKENVAULT_TOKEN")
	}
	opts := []client.Option{client.WithToken(cf.token)}
	tc, err := cf.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, client.WithTLS(tc))
	}
	return client.New(cf.addr, opts...)
}

// tlsConfig builds the client TLS settings from --ca-file / --tls (nil: plain text).
func (cf *clientFlags) tlsConfig() (*tls.Config, error) {
	switch {
	case cf.caFile != "":
		pem, err := os.ReadFile(cf.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("--ca-file: no PEM certificates found")
		}
		return &tls.Config{RootCAs: pool, ServerName: cf.serverName, MinVersion: tls.VersionTLS12}, nil
	case cf.tls:
		return &tls.Config{ServerName: cf.serverName, MinVersion: tls.VersionTLS12}, nil
	}
	return nil, nil
}

// callErr turns a gRPC error into a short message for stderr.
func callErr(err error) error {
	if s, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s", s.Code(), s.Message())
	}
	return err
}

type itemJSON struct {
	Token string     `json:"token,omitempty"`
	Value string     `json:"value,omitempty"`
	Error *errorJSON `json:"error,omitempty"`
}

type errorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// printResults prints one line per result (text) or a JSON document; it returns an error if
// any item failed, so the exit code is non-zero.
func printResults(w, ew io.Writer, output string, res []client.Result, token bool) error {
	failed := 0
	if output == "json" {
		out := struct {
			Results []itemJSON `json:"results"`
		}{Results: make([]itemJSON, len(res))}
		for i, r := range res {
			if r.Err != nil {
				failed++
				var ie *client.ItemError
				if errors.As(r.Err, &ie) {
					out.Results[i].Error = &errorJSON{Code: ie.Code, Message: ie.Message}
				}
				continue
			}
			if token {
				out.Results[i].Token = r.Token
			} else {
				out.Results[i].Value = r.Value
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		for i, r := range res {
			if r.Err != nil {
				failed++
				fmt.Fprintln(w)
				fmt.Fprintf(ew, "item %d: %v\n", i+1, r.Err)
				continue
			}
			if token {
				fmt.Fprintln(w, r.Token)
			} else {
				fmt.Fprintln(w, r.Value)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d items failed", failed, len(res))
	}
	return nil
}

func newTokenizeCmd() *cobra.Command {
	var cf clientFlags
	var tmpl, domain, subject string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "tokenize --template T [--domain D] VALUE...",
		Short: "Tokenize values; prints one token a line",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			items := make([]client.TokenizeItem, len(args))
			for i, a := range args {
				items[i] = client.TokenizeItem{Value: a, Template: tmpl, Domain: domain, Subject: subject, TTL: ttl}
			}
			res, err := c.Tokenize(cmd.Context(), items)
			if err != nil {
				return callErr(err)
			}
			return printResults(cmd.OutOrStdout(), cmd.ErrOrStderr(), cf.output, res, true)
		},
	}
	addClientFlags(cmd, &cf)
	cmd.Flags().StringVar(&tmpl, "template", "", "template name (pan, ssn, email, … or a custom one)")
	cmd.Flags().StringVar(&domain, "domain", "", "token domain (default \"default\")")
	cmd.Flags().StringVar(&subject, "subject", "", "data-subject id, for erasure")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "the tokens expire this long after they are issued (e.g. 720h)")
	_ = cmd.MarkFlagRequired("template")
	return cmd
}

func newDetokenizeCmd() *cobra.Command {
	var cf clientFlags
	var tmpl, domain, purpose string
	cmd := &cobra.Command{
		Use:   "detokenize [--domain D] TOKEN...",
		Short: "Reveal the values of tokens; prints one value a line",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			items := make([]client.DetokenizeItem, len(args))
			for i, a := range args {
				items[i] = client.DetokenizeItem{Token: a, Domain: domain, Template: tmpl}
			}
			res, err := c.Detokenize(cmd.Context(), purpose, items)
			if err != nil {
				return callErr(err)
			}
			return printResults(cmd.OutOrStdout(), cmd.ErrOrStderr(), cf.output, res, false)
		},
	}
	addClientFlags(cmd, &cf)
	cmd.Flags().StringVar(&tmpl, "template", "", "only accept tokens of this template")
	cmd.Flags().StringVar(&domain, "domain", "", "token domain (default \"default\")")
	cmd.Flags().StringVar(&purpose, "purpose", "", "why the values are needed (kept in the audit trail)")
	return cmd
}

func newTemplateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "template", Short: "Manage custom templates"}

	var cf clientFlags
	var t tvpb.Template
	var mode, luhn string
	var keepPrefix, keepSuffix int
	var tmplTTL time.Duration
	create := &cobra.Command{
		Use:   "create --name N --base BUILTIN [--mode deterministic|random] [--keep-prefix N] [--keep-suffix N] [--luhn valid|invalid|any] [--alphabet CHARS]",
		Short: "Create a custom template",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch mode {
			case "", "deterministic":
				t.Mode = tvpb.TemplateMode_TEMPLATE_MODE_DETERMINISTIC
			case "random":
				t.Mode = tvpb.TemplateMode_TEMPLATE_MODE_RANDOM
			default:
				return fmt.Errorf("--mode must be deterministic or random")
			}
			switch luhn {
			case "":
			case "invalid":
				t.Luhn = tvpb.LuhnRule_LUHN_RULE_INVALID
			case "valid":
				t.Luhn = tvpb.LuhnRule_LUHN_RULE_VALID
			case "any":
				t.Luhn = tvpb.LuhnRule_LUHN_RULE_ANY
			default:
				return fmt.Errorf("--luhn must be valid, invalid or any")
			}
			t.KeepPrefix, t.KeepSuffix = int32(keepPrefix), int32(keepSuffix)
			if tmplTTL > 0 {
				t.Ttl = durationpb.New(tmplTTL)
			}
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			got, err := c.CreateTemplate(cmd.Context(), &t)
			if err != nil {
				return callErr(err)
			}
			return printTemplates(cmd.OutOrStdout(), cf.output, []*tvpb.Template{got})
		},
	}
	addClientFlags(create, &cf)
	create.Flags().StringVar(&t.Name, "name", "", "template name ([a-z][a-z0-9_-]*)")
	create.Flags().StringVar(&t.Base, "base", "", "built-in template it is based on")
	create.Flags().StringVar(&mode, "mode", "deterministic", "deterministic or random")
	create.Flags().IntVar(&keepPrefix, "keep-prefix", 0, "characters kept in clear at the start")
	create.Flags().IntVar(&keepSuffix, "keep-suffix", 0, "characters kept in clear at the end")
	create.Flags().StringVar(&luhn, "luhn", "", "base pan: valid, invalid (default) or any")
	create.Flags().StringVar(&t.Alphabet, "alphabet", "", "bases digits/alnum: token alphabet")
	create.Flags().Int32Var(&t.MinLength, "min-length", 0, "bases pan/phone/digits/alnum: shortest value accepted")
	create.Flags().Int32Var(&t.MaxLength, "max-length", 0, "bases pan/phone/digits/alnum: longest value accepted")
	create.Flags().BoolVar(&t.TokenizeDomain, "tokenize-domain", false, "base email: tokenize the domain too")
	create.Flags().BoolVar(&t.KeepYear, "keep-year", false, "base date: keep the year")
	create.Flags().Int32Var(&t.MinYear, "min-year", 0, "base date: earliest year")
	create.Flags().Int32Var(&t.MaxYear, "max-year", 0, "base date: latest year")
	create.Flags().DurationVar(&tmplTTL, "ttl", 0, "tokens of this template expire this long after they are issued (e.g. 720h)")
	_ = create.MarkFlagRequired("name")
	_ = create.MarkFlagRequired("base")

	var lf clientFlags
	list := &cobra.Command{
		Use:   "list",
		Short: "List templates",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := lf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ts, err := c.ListTemplates(cmd.Context())
			if err != nil {
				return callErr(err)
			}
			return printTemplates(cmd.OutOrStdout(), lf.output, ts)
		},
	}
	addClientFlags(list, &lf)
	cmd.AddCommand(create, list)
	return cmd
}

func printTemplates(w io.Writer, output string, ts []*tvpb.Template) error {
	if output == "json" {
		type tj struct {
			Name       string `json:"name"`
			Base       string `json:"base"`
			Mode       string `json:"mode"`
			KeepPrefix int32  `json:"keep_prefix"`
			KeepSuffix int32  `json:"keep_suffix"`
			Luhn       string `json:"luhn,omitempty"`
			Alphabet   string `json:"alphabet,omitempty"`
			Builtin    bool   `json:"builtin"`
		}
		out := struct {
			Templates []tj `json:"templates"`
		}{}
		for _, t := range ts {
			out.Templates = append(out.Templates, tj{t.GetName(), t.GetBase(), modeName(t.GetMode()), t.GetKeepPrefix(), t.GetKeepSuffix(), luhnName(t.GetLuhn()), t.GetAlphabet(), t.GetBuiltin()})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tBASE\tMODE\tKEEP\tLUHN\tBUILTIN")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d+%d\t%s\t%v\n", t.GetName(), t.GetBase(), modeName(t.GetMode()), t.GetKeepPrefix(), t.GetKeepSuffix(), luhnName(t.GetLuhn()), t.GetBuiltin())
	}
	return tw.Flush()
}

func modeName(m tvpb.TemplateMode) string {
	return strings.ToLower(strings.TrimPrefix(m.String(), "TEMPLATE_MODE_"))
}

func luhnName(l tvpb.LuhnRule) string {
	if l == tvpb.LuhnRule_LUHN_RULE_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(l.String(), "LUHN_RULE_"))
}

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	client "github.com/tokenvault/tokenvault/clients/go"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

func newTokenizeCmd() *cobra.Command {
	var tmpl, domain, subject string
	var ttl time.Duration
	var values []string
	cmd := clientCmd(&cobra.Command{
		Use:   "tokenize --template T [--domain D] [VALUE...]",
		Short: "Tokenize values; prints one token a line",
		Long: `Tokenize values; prints one token a line, in the order of the values.

Without VALUE arguments the values are read from stdin, one a line (empty lines skipped):
prefer this for real data, so that values stay out of the shell history and of ps.
  tokenvault tokenize --template pan < cards.txt`,
		Args: cobra.ArbitraryArgs,
		PreRunE: func(cmd *cobra.Command, args []string) (err error) {
			values, err = argsOrLines(cmd, args, "values")
			return err
		},
	}, func(s *session, _ []string) error {
		items := make([]client.TokenizeItem, len(values))
		for i, a := range values {
			items[i] = client.TokenizeItem{Value: a, Template: tmpl, Domain: domain, Subject: subject, TTL: ttl}
		}
		res, err := s.c.Tokenize(s.ctx, items)
		if err != nil {
			return err
		}
		return s.printResults(res, true)
	})
	cmd.Flags().StringVar(&tmpl, "template", "", "template name (pan, ssn, email, … or a custom one)")
	cmd.Flags().StringVar(&domain, "domain", "", "token domain (default \"default\")")
	cmd.Flags().StringVar(&subject, "subject", "", "data-subject id, for erasure")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "the tokens expire this long after they are issued (e.g. 720h)")
	_ = cmd.MarkFlagRequired("template")
	return cmd
}

func newDetokenizeCmd() *cobra.Command {
	var tmpl, domain, purpose string
	var tokens []string
	cmd := clientCmd(&cobra.Command{
		Use:   "detokenize [--domain D] --purpose P [TOKEN...]",
		Short: "Reveal the values of tokens; prints one value a line",
		Long: `Reveal the values of tokens; prints one value a line, in the order of the tokens.

Without TOKEN arguments the tokens are read from stdin, one a line (empty lines skipped).`,
		Args: cobra.ArbitraryArgs,
		PreRunE: func(cmd *cobra.Command, args []string) (err error) {
			tokens, err = argsOrLines(cmd, args, "tokens")
			return err
		},
	}, func(s *session, _ []string) error {
		items := make([]client.DetokenizeItem, len(tokens))
		for i, a := range tokens {
			items[i] = client.DetokenizeItem{Token: a, Domain: domain, Template: tmpl}
		}
		res, err := s.c.Detokenize(s.ctx, purpose, items)
		if err != nil {
			return err
		}
		return s.printResults(res, false)
	})
	cmd.Flags().StringVar(&tmpl, "template", "", "only accept tokens of this template")
	cmd.Flags().StringVar(&domain, "domain", "", "token domain (default \"default\")")
	cmd.Flags().StringVar(&purpose, "purpose", "", "why the values are needed (kept in the audit trail)")
	return cmd
}

// argsOrLines returns args, or without args the non-empty lines of stdin (a trailing \r
// dropped). what names the items in the error for none at all.
func argsOrLines(cmd *cobra.Command, args []string, what string) ([]string, error) {
	if len(args) > 0 {
		return args, nil
	}
	var lines []string
	sc := bufio.NewScanner(cmd.InOrStdin())
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := strings.TrimSuffix(sc.Text(), "\r"); l != "" {
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s from stdin: %w", what, err)
	}
	if len(lines) == 0 {
		return nil, withExitCode(exitUsage, fmt.Errorf("no %s: give them as arguments or one a line on stdin", what))
	}
	return lines, nil
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

// printResults prints one token (token) or value a line, a failed item as an empty line with
// its error on stderr; with -o json {"results": [{"token"|"value"|"error"}, …]}. It returns an
// error if any item failed, so the exit code is non-zero.
func (p printer) printResults(res []client.Result, token bool) error {
	failed := 0
	out := struct {
		Results []itemJSON `json:"results"`
	}{Results: make([]itemJSON, len(res))}
	for i, r := range res {
		switch {
		case r.Err != nil:
			failed++
			var ie *client.ItemError
			if errors.As(r.Err, &ie) {
				out.Results[i].Error = &errorJSON{Code: ie.Code, Message: ie.Message}
			}
		case token:
			out.Results[i].Token = r.Token
		default:
			out.Results[i].Value = r.Value
		}
	}
	err := p.print(out, func(w io.Writer) error {
		for i, r := range res {
			if r.Err != nil {
				fmt.Fprintln(w)
				p.warnf("item %d: %v\n", i+1, r.Err)
				continue
			}
			if token {
				fmt.Fprintln(w, r.Token)
			} else {
				fmt.Fprintln(w, r.Value)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if failed > 0 {
		return withExitCode(exitPartialItem, fmt.Errorf("%d of %d items failed", failed, len(res)))
	}
	return nil
}

func newDeleteCmd() *cobra.Command {
	var domain string
	cmd := clientCmd(&cobra.Command{
		Use:   "delete [--domain D] TOKEN...",
		Short: "Erase tokens and their originals; prints the signed receipt",
		Args:  cobra.MinimumNArgs(1),
	}, func(s *session, args []string) error {
		req := &tvpb.DeleteTokensRequest{}
		for _, a := range args {
			req.Items = append(req.Items, &tvpb.DetokenizeItem{Token: a, Domain: domain})
		}
		resp, err := s.tokens().DeleteTokens(s.ctx, req)
		if err != nil {
			return err
		}
		s.printf("%s\n", resp.GetReceipt().GetReceiptJson())
		failed := 0
		for i, r := range resp.GetResults() {
			if r.GetError() != nil {
				failed++
				s.warnf("item %d: %s: %s\n", i+1, r.GetError().GetCode(), r.GetError().GetMessage())
			}
		}
		if failed > 0 {
			return withExitCode(exitPartialItem, fmt.Errorf("%d of %d tokens were not erased", failed, len(args)))
		}
		return nil
	})
	cmd.Flags().StringVar(&domain, "domain", "", "token domain (default \"default\")")
	return cmd
}

func newEraseSubjectCmd() *cobra.Command {
	return clientCmd(&cobra.Command{
		Use:   "erase-subject SUBJECT",
		Short: "Erase every original of one data subject (crypto-shredding); prints the signed receipt",
		Args:  cobra.ExactArgs(1),
	}, func(s *session, args []string) error {
		resp, err := s.tokens().EraseSubject(s.ctx, &tvpb.EraseSubjectRequest{Subject: args[0]})
		if err != nil {
			return err
		}
		s.printf("%s\n", resp.GetReceipt().GetReceiptJson())
		return nil
	})
}

package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

func newTextCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "text", Short: "Find, tokenize and reveal personal data in free text (stdin → stdout); see docs/text.md"}
	cmd.AddCommand(newTextScanCmd("tokenize"), newTextScanCmd("detect"), newTextDetokenizeCmd())
	return cmd
}

func (s *session) text() tvpb.TextServiceClient { return s.c.Text() }

// readText reads stdin whole: one text.
func readText(cmd *cobra.Command) (string, error) {
	b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 1<<20+1))
	if err != nil {
		return "", err
	}
	if len(b) > 1<<20 {
		return "", errors.New("stdin: at most 1 MiB of text")
	}
	return string(b), nil
}

// newTextScanCmd is text tokenize (prints the tokenized text; -o json the findings) or text
// detect (prints the findings).
func newTextScanCmd(mode string) *cobra.Command {
	var domain, entities, region string
	var minConf float64
	var text string
	short := "Replace personal data in the text on stdin with tokens"
	if mode == "detect" {
		short = "List the personal data in the text on stdin (stores nothing)"
	}
	cmd := clientCmd(&cobra.Command{
		Use:   mode + " [--domain D] [--entities pan,email] [--min-confidence X] [--region R] < in.txt",
		Short: short,
		Args:  cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) (err error) {
			text, err = readText(cmd)
			return err
		},
	}, func(s *session, _ []string) error {
		it := &tvpb.TokenizeTextItem{Text: text, Domain: domain, Mode: mode, MinConfidence: minConf, DefaultRegion: region}
		if entities != "" {
			it.Entities = strings.Split(entities, ",")
		}
		resp, err := s.text().TokenizeText(s.ctx, &tvpb.TokenizeTextRequest{Items: []*tvpb.TokenizeTextItem{it}})
		if err != nil {
			return err
		}
		r, err := onlyResult(resp.GetResults())
		if err != nil {
			return err
		}
		return s.print(r, func(w io.Writer) error {
			if mode == "tokenize" {
				_, err := io.WriteString(w, r.GetText())
				return err
			}
			t := newTable(w, "ENTITY", "START", "END", "CONFIDENCE")
			for _, f := range r.GetFindings() {
				t.row(f.GetEntity(), f.GetStart(), f.GetEnd(), fmt.Sprintf("%.2f", f.GetConfidence()))
			}
			return t.flush()
		})
	})
	cmd.Flags().StringVar(&domain, "domain", "", "token domain (default \"default\")")
	cmd.Flags().StringVar(&entities, "entities", "", "comma-separated: pan,ssn,email,phone,iban,ip (default all)")
	cmd.Flags().Float64Var(&minConf, "min-confidence", 0, "report findings at or above this confidence (default 0.5)")
	cmd.Flags().StringVar(&region, "region", "", "region of national phone numbers, e.g. DE (default US)")
	return cmd
}

// newTextDetokenizeCmd is text detokenize: the domain's tokens in the text on stdin are
// replaced by their values.
func newTextDetokenizeCmd() *cobra.Command {
	var domain, purpose, text string
	cmd := clientCmd(&cobra.Command{
		Use:   "detokenize --purpose P [--domain D] < in.txt",
		Short: "Put the values back for the domain's tokens in the text on stdin",
		Args:  cobra.NoArgs,
		PreRunE: func(cmd *cobra.Command, _ []string) (err error) {
			text, err = readText(cmd)
			return err
		},
	}, func(s *session, _ []string) error {
		resp, err := s.text().DetokenizeText(s.ctx, &tvpb.DetokenizeTextRequest{Purpose: purpose,
			Items: []*tvpb.DetokenizeTextItem{{Text: text, Domain: domain}}})
		if err != nil {
			return err
		}
		r, err := onlyResult(resp.GetResults())
		if err != nil {
			return err
		}
		return s.print(r, func(w io.Writer) error {
			_, err := io.WriteString(w, r.GetText())
			return err
		})
	})
	cmd.Flags().StringVar(&domain, "domain", "", "token domain (default \"default\")")
	cmd.Flags().StringVar(&purpose, "purpose", "", "why the values are needed (kept in the audit trail)")
	_ = cmd.MarkFlagRequired("purpose")
	return cmd
}

// onlyResult returns the one result of a one-item call, or its item error (exit code 4, as
// for any failed item).
func onlyResult[R interface{ GetError() *tvpb.ItemError }](rs []R) (R, error) {
	var zero R
	if len(rs) != 1 {
		return zero, fmt.Errorf("the server answered %d results for 1 item", len(rs))
	}
	if e := rs[0].GetError(); e != nil {
		return rs[0], withExitCode(exitPartialItem, fmt.Errorf("%s: %s", e.GetCode(), e.GetMessage()))
	}
	return rs[0], nil
}

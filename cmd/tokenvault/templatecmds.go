package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/durationpb"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

func newTemplateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "template", Short: "Manage custom templates"}
	cmd.AddCommand(newTemplateCreateCmd(), newTemplateListCmd())
	return cmd
}

func newTemplateCreateCmd() *cobra.Command {
	var t tvpb.Template
	var mode, luhn string
	var keepPrefix, keepSuffix int
	var ttl time.Duration
	cmd := clientCmd(&cobra.Command{
		Use:   "create --name N --base BUILTIN [--mode deterministic|random] [--keep-prefix N] [--keep-suffix N] [--luhn valid|invalid|any] [--alphabet CHARS]",
		Short: "Create a custom template",
		Args:  cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
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
			if ttl > 0 {
				t.Ttl = durationpb.New(ttl)
			}
			return nil
		},
	}, func(s *session, _ []string) error {
		got, err := s.c.CreateTemplate(s.ctx, &t)
		if err != nil {
			return err
		}
		return s.printTemplates([]*tvpb.Template{got})
	})
	f := cmd.Flags()
	f.StringVar(&t.Name, "name", "", "template name ([a-z][a-z0-9_-]*)")
	f.StringVar(&t.Base, "base", "", "built-in template it is based on")
	f.StringVar(&mode, "mode", "deterministic", "deterministic or random")
	f.IntVar(&keepPrefix, "keep-prefix", 0, "characters kept in clear at the start")
	f.IntVar(&keepSuffix, "keep-suffix", 0, "characters kept in clear at the end")
	f.StringVar(&luhn, "luhn", "", "base pan: valid, invalid (default) or any")
	f.StringVar(&t.Alphabet, "alphabet", "", "bases digits/alnum: token alphabet")
	f.Int32Var(&t.MinLength, "min-length", 0, "bases pan/phone/digits/alnum: shortest value accepted")
	f.Int32Var(&t.MaxLength, "max-length", 0, "bases pan/phone/digits/alnum: longest value accepted")
	f.BoolVar(&t.TokenizeDomain, "tokenize-domain", false, "base email: tokenize the domain too")
	f.BoolVar(&t.KeepYear, "keep-year", false, "base date: keep the year")
	f.Int32Var(&t.MinYear, "min-year", 0, "base date: earliest year")
	f.Int32Var(&t.MaxYear, "max-year", 0, "base date: latest year")
	f.DurationVar(&ttl, "ttl", 0, "tokens of this template expire this long after they are issued (e.g. 720h)")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("base")
	return cmd
}

func newTemplateListCmd() *cobra.Command {
	return clientCmd(&cobra.Command{Use: "list", Short: "List templates", Args: cobra.NoArgs},
		func(s *session, _ []string) error {
			ts, err := s.c.ListTemplates(s.ctx)
			if err != nil {
				return err
			}
			return s.printTemplates(ts)
		})
}

type templateJSON struct {
	Name       string `json:"name"`
	Base       string `json:"base"`
	Mode       string `json:"mode"`
	KeepPrefix int32  `json:"keepPrefix"`
	KeepSuffix int32  `json:"keepSuffix"`
	Luhn       string `json:"luhn,omitempty"`
	Alphabet   string `json:"alphabet,omitempty"`
	Builtin    bool   `json:"builtin"`
}

// printTemplates prints a table, or {"templates": [...]} with -o json.
func (p printer) printTemplates(ts []*tvpb.Template) error {
	out := struct {
		Templates []templateJSON `json:"templates"`
	}{}
	for _, t := range ts {
		out.Templates = append(out.Templates, templateJSON{t.GetName(), t.GetBase(), modeName(t.GetMode()),
			t.GetKeepPrefix(), t.GetKeepSuffix(), luhnName(t.GetLuhn()), t.GetAlphabet(), t.GetBuiltin()})
	}
	return p.print(out, func(w io.Writer) error {
		tb := newTable(w, "NAME", "BASE", "MODE", "KEEP", "LUHN", "BUILTIN")
		for _, t := range out.Templates {
			tb.row(t.Name, t.Base, t.Mode, fmt.Sprintf("%d+%d", t.KeepPrefix, t.KeepSuffix), t.Luhn, t.Builtin)
		}
		return tb.flush()
	})
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

package server

import (
	"testing"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/template"
)

// luhnRules serves both directions of the template conversion: every rule of the API but the
// unspecified one has a partner, and templateToProto gives each Definition.Luhn its rule.
func TestLuhnRules(t *testing.T) {
	for n, name := range tvpb.LuhnRule_name {
		r := tvpb.LuhnRule(n)
		found := 0
		for _, p := range luhnRules {
			if p.proto == r {
				found++
			}
		}
		if want := min(int(n), 1); found != want {
			t.Errorf("%s is in luhnRules %d times, want %d", name, found, want)
		}
	}
	for def, want := range map[string]tvpb.LuhnRule{
		"":                   tvpb.LuhnRule_LUHN_RULE_UNSPECIFIED,
		template.LuhnValid:   tvpb.LuhnRule_LUHN_RULE_VALID,
		template.LuhnAny:     tvpb.LuhnRule_LUHN_RULE_ANY,
		template.LuhnInvalid: tvpb.LuhnRule_LUHN_RULE_INVALID,
	} {
		info := vault.TemplateInfo{Definition: template.Definition{Name: "x", Base: "pan", Luhn: def}}
		if got := templateToProto(info).GetLuhn(); got != want {
			t.Errorf("templateToProto(Luhn %q).Luhn = %s, want %s", def, got, want)
		}
	}
}

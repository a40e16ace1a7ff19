package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/template"
)

type templateService struct {
	tvpb.UnsafeTemplateServiceServer
	s *Server
}

func (t *templateService) CreateTemplate(ctx context.Context, req *tvpb.CreateTemplateRequest) (*tvpb.CreateTemplateResponse, error) {
	pt := req.GetTemplate()
	def := template.Definition{
		Name:       pt.GetName(),
		Base:       pt.GetBase(),
		KeepPrefix: int(pt.GetKeepPrefix()),
		KeepSuffix: int(pt.GetKeepSuffix()),
		Alphabet:   pt.GetAlphabet(),
		MinLength:  int(pt.GetMinLength()), MaxLength: int(pt.GetMaxLength()),
		TokenizeDomain: pt.GetTokenizeDomain(), KeepYear: pt.GetKeepYear(),
		MinYear: int(pt.GetMinYear()), MaxYear: int(pt.GetMaxYear()),
	}
	if pt.GetTtl() != nil {
		if err := pt.GetTtl().CheckValid(); err != nil {
			return nil, status.Error(codes.InvalidArgument, "ttl is not a valid duration")
		}
		def.TTL = pt.GetTtl().AsDuration()
	}
	switch pt.GetMode() {
	case tvpb.TemplateMode_TEMPLATE_MODE_RANDOM:
		def.Mode = template.Random
	default:
		def.Mode = template.Deterministic
	}
	for _, r := range luhnRules {
		if r.proto == pt.GetLuhn() {
			def.Luhn = r.def
		}
	}
	if def.Name == "" || def.Base == "" {
		return nil, status.Error(codes.InvalidArgument, "a template needs a name and a base")
	}
	info, err := t.s.vlt().CreateTemplate(ctx, def)
	if err != nil {
		return nil, toStatus(ctx, t.s.log, err)
	}
	return &tvpb.CreateTemplateResponse{Template: templateToProto(info)}, nil
}

func (t *templateService) ListTemplates(ctx context.Context, _ *tvpb.ListTemplatesRequest) (*tvpb.ListTemplatesResponse, error) {
	infos := t.s.vlt().ListTemplates(ctx)
	out := &tvpb.ListTemplatesResponse{Templates: make([]*tvpb.Template, len(infos))}
	for i, info := range infos {
		out.Templates[i] = templateToProto(info)
	}
	return out, nil
}

func templateToProto(info vault.TemplateInfo) *tvpb.Template {
	d := info.Definition
	pt := &tvpb.Template{
		Name:       d.Name,
		Base:       d.Base,
		KeepPrefix: int32(d.KeepPrefix),
		KeepSuffix: int32(d.KeepSuffix),
		Alphabet:   d.Alphabet,
		Builtin:    info.Builtin,
		Mode:       tvpb.TemplateMode_TEMPLATE_MODE_DETERMINISTIC,
		MinLength:  int32(d.MinLength), MaxLength: int32(d.MaxLength),
		TokenizeDomain: d.TokenizeDomain, KeepYear: d.KeepYear,
		MinYear: int32(d.MinYear), MaxYear: int32(d.MaxYear),
	}
	if d.TTL > 0 {
		pt.Ttl = durationpb.New(d.TTL)
	}
	if d.Mode == template.Random {
		pt.Mode = tvpb.TemplateMode_TEMPLATE_MODE_RANDOM
	}
	for _, r := range luhnRules {
		if r.def == d.Luhn {
			pt.Luhn = r.proto
		}
	}
	return pt
}

// luhnRules pairs the API's Luhn rules with the template library's, both ways; the
// unspecified rule and the empty Definition.Luhn (the default) map to each other.
var luhnRules = []struct {
	proto tvpb.LuhnRule
	def   string
}{
	{tvpb.LuhnRule_LUHN_RULE_VALID, template.LuhnValid},
	{tvpb.LuhnRule_LUHN_RULE_ANY, template.LuhnAny},
	{tvpb.LuhnRule_LUHN_RULE_INVALID, template.LuhnInvalid},
}

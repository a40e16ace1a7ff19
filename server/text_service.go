package server

import (
	"context"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

// textService implements tvpb.TextServiceServer over a vault: personal data in free text.
type textService struct {
	tvpb.UnsafeTextServiceServer
	s *Server
}

func (t *textService) TokenizeText(ctx context.Context, req *tvpb.TokenizeTextRequest) (*tvpb.TokenizeTextResponse, error) {
	items := make([]vault.TextItem, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = vault.TextItem{Text: it.GetText(), Domain: it.GetDomain(), Entities: it.GetEntities(),
			Detect: it.GetMode() == "detect", MinConfidence: it.GetMinConfidence(), DefaultRegion: it.GetDefaultRegion()}
	}
	res, err := t.s.vlt().TokenizeText(ctx, items)
	if err != nil {
		return nil, toStatus(ctx, t.s.log, err)
	}
	out := &tvpb.TokenizeTextResponse{Results: make([]*tvpb.TokenizeTextResult, len(res))}
	counts := t.s.countItems("tokenize_text", "")
	defer counts.flush()
	for i, r := range res {
		if r.Err != nil {
			out.Results[i] = &tvpb.TokenizeTextResult{Error: itemError(ctx, t.s.log, r.Err)}
			counts.add("-", vault.DomainOr(items[i].Domain), out.Results[i].Error.Code)
			continue
		}
		fs := make([]*tvpb.TextFinding, len(r.Findings))
		for k, f := range r.Findings {
			fs[k] = &tvpb.TextFinding{Entity: f.Entity, Start: int32(f.Start), End: int32(f.End), Token: f.Token, Confidence: f.Confidence}
		}
		out.Results[i] = &tvpb.TokenizeTextResult{Text: r.Text, Findings: fs}
		counts.add("-", vault.DomainOr(items[i].Domain), "ok")
	}
	return out, nil
}

func (t *textService) DetokenizeText(ctx context.Context, req *tvpb.DetokenizeTextRequest) (*tvpb.DetokenizeTextResponse, error) {
	items := make([]vault.TextDetokenizeItem, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = vault.TextDetokenizeItem{Text: it.GetText(), Domain: it.GetDomain()}
	}
	res, reveals, err := t.s.vlt().DetokenizeText(ctx, req.GetPurpose(), items)
	if err != nil {
		return nil, toStatus(ctx, t.s.log, err)
	}
	if p, ok := PrincipalFrom(ctx); ok {
		t.s.alerts.onInternalReveals(ctx, p, reveals)
	}
	out := &tvpb.DetokenizeTextResponse{Results: make([]*tvpb.DetokenizeTextResult, len(res))}
	counts := t.s.countItems("detokenize_text", "")
	defer counts.flush()
	for i, r := range res {
		if r.Err != nil {
			out.Results[i] = &tvpb.DetokenizeTextResult{Error: itemError(ctx, t.s.log, r.Err)}
			counts.add("-", "-", out.Results[i].Error.Code)
			continue
		}
		out.Results[i] = &tvpb.DetokenizeTextResult{Text: r.Text, Replaced: int32(r.Replaced)}
		counts.add("-", vault.DomainOr(items[i].Domain), "ok")
	}
	return out, nil
}

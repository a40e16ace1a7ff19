package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

// tokenService implements tvpb.TokenServiceServer over a vault.
type tokenService struct {
	tvpb.UnsafeTokenServiceServer
	s *Server
}

func (t *tokenService) Tokenize(ctx context.Context, req *tvpb.TokenizeRequest) (*tvpb.TokenizeResponse, error) {
	items := make([]vault.TokenizeItem, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = vault.TokenizeItem{Value: it.GetValue(), Template: it.GetTemplate(), Domain: it.GetDomain(), Subject: it.GetSubject()}
		if it.GetTtl() != nil {
			items[i].TTL = it.GetTtl().AsDuration()
		}
	}
	res, err := t.s.vlt().Tokenize(ctx, items)
	if err != nil {
		return nil, toStatus(ctx, t.s.log, err)
	}
	out := &tvpb.TokenizeResponse{Results: make([]*tvpb.TokenizeResult, len(res))}
	slab := make([]tvpb.TokenizeResult, len(res)) // the results, allocated together
	counts := t.s.countItems("tokenize", "")
	defer counts.flush()
	t.s.scopeDenials(ctx, len(res), func(i int) error { return res[i].Err })
	for i, r := range res {
		outcome := "ok"
		if r.Err != nil {
			out.Results[i] = &tvpb.TokenizeResult{Error: itemError(ctx, t.s.log, r.Err)}
			outcome = out.Results[i].Error.Code
		} else {
			out.Results[i] = &slab[i]
			out.Results[i].Token = r.Token
		}
		counts.add(items[i].Template, vault.DomainOr(items[i].Domain), outcome)
	}
	return out, nil
}

func (t *tokenService) Detokenize(ctx context.Context, req *tvpb.DetokenizeRequest) (*tvpb.DetokenizeResponse, error) {
	items := make([]vault.TokenRef, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = vault.TokenRef{Token: it.GetToken(), Domain: it.GetDomain(), Template: it.GetTemplate()}
	}
	res, err := t.s.vlt().Detokenize(ctx, req.GetPurpose(), items)
	if err != nil {
		return nil, toStatus(ctx, t.s.log, err)
	}
	if p, ok := PrincipalFrom(ctx); ok {
		t.s.alerts.onInternalReveals(ctx, p, res)
	}
	t.s.scopeDenials(ctx, len(res), func(i int) error { return res[i].Err })
	out := &tvpb.DetokenizeResponse{Results: make([]*tvpb.DetokenizeResult, len(res))}
	slab := make([]tvpb.DetokenizeResult, len(res)) // the results, allocated together
	counts := t.s.countItems("detokenize", "")
	defer counts.flush()
	for i, r := range res {
		outcome := "ok"
		if r.Err != nil {
			ie := itemError(ctx, t.s.log, r.Err)
			if errors.Is(r.Err, vault.ErrNotFound) {
				// Internal callers only (the vendor listener must not hint): the usual
				// cause is a token looked up in another domain than it was issued in.
				ie.Message = fmt.Sprintf("%s in domain %q: tokens belong to the domain they were issued in; pass that domain (CLI: --domain)", ie.Message, vault.DomainOr(items[i].Domain))
			}
			out.Results[i] = &tvpb.DetokenizeResult{Error: ie}
			outcome = ie.Code
		} else {
			out.Results[i] = &slab[i]
			out.Results[i].Value = r.Value
		}
		if r.Err != nil {
			// A failed lookup names no template, and its domain is the caller's word: label
			// neither, so callers cannot grow the metric's series at will.
			counts.add("-", "-", outcome)
			continue
		}
		counts.add(r.Template, vault.DomainOr(items[i].Domain), outcome)
	}
	return out, nil
}

// scopeDenials counts the items of a call denied by the caller's credential scope towards
// the denial-burst alert (the vault has audited them).
func (s *Server) scopeDenials(ctx context.Context, n int, errOf func(int) error) {
	p, ok := PrincipalFrom(ctx)
	if !ok || p.Scope.Unscoped() {
		return
	}
	denied := 0
	for i := 0; i < n; i++ {
		if errors.Is(errOf(i), vault.ErrOutOfScope) {
			denied++
		}
	}
	if denied > 0 {
		s.alerts.onDenials(ctx, p.ID, denied)
	}
}

// itemCounts gathers one request's item outcomes and adds them to the metric once per label
// set, not once per item. A batch has usually one label set: it is kept without a map.
type itemCounts struct {
	s          *Server
	op, vendor string
	first      [3]string
	nFirst     int
	more       map[[3]string]int // the other label sets
}

func (s *Server) countItems(op, vendor string) *itemCounts {
	return &itemCounts{s: s, op: op, vendor: vendor}
}

func (c *itemCounts) add(tmpl, domain, outcome string) {
	k := [3]string{tmpl, domain, outcome}
	switch {
	case c.nFirst == 0:
		c.first, c.nFirst = k, 1
	case k == c.first:
		c.nFirst++
	default:
		if c.more == nil {
			c.more = map[[3]string]int{}
		}
		c.more[k]++
	}
}

func (c *itemCounts) flush() {
	if c.nFirst > 0 {
		c.s.metrics.addItems(itemKey{c.op, c.vendor, c.first[0], c.first[1], c.first[2]}, c.nFirst)
	}
	for k, n := range c.more {
		c.s.metrics.addItems(itemKey{c.op, c.vendor, k[0], k[1], k[2]}, n)
	}
}

func receiptToProto(rc vault.Receipt) (*tvpb.ErasureReceipt, error) {
	b, err := json.Marshal(rc)
	if err != nil {
		return nil, err
	}
	return &tvpb.ErasureReceipt{Kind: rc.Kind, EraseTime: timestamppb.New(rc.Time), Erased: rc.Erased, AuditSeq: rc.AuditSeq, SweepAuditSeq: rc.SweepAuditSeq, ReceiptJson: string(b)}, nil
}

func (t *tokenService) DeleteTokens(ctx context.Context, req *tvpb.DeleteTokensRequest) (*tvpb.DeleteTokensResponse, error) {
	items := make([]vault.TokenRef, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = vault.TokenRef{Token: it.GetToken(), Domain: it.GetDomain(), Template: it.GetTemplate()}
	}
	rc, errs, err := t.s.vlt().DeleteTokens(ctx, items)
	if err != nil {
		return nil, toStatus(ctx, t.s.log, err)
	}
	out := &tvpb.DeleteTokensResponse{Results: make([]*tvpb.DeleteTokensResult, len(items))}
	for i, e := range errs {
		out.Results[i] = &tvpb.DeleteTokensResult{}
		if e != nil {
			out.Results[i].Error = itemError(ctx, t.s.log, e)
		}
	}
	if out.Receipt, err = receiptToProto(rc); err != nil {
		return nil, toStatus(ctx, t.s.log, err)
	}
	return out, nil
}

func (t *tokenService) EraseSubject(ctx context.Context, req *tvpb.EraseSubjectRequest) (*tvpb.EraseSubjectResponse, error) {
	rc, err := t.s.vlt().EraseSubject(ctx, req.GetSubject())
	if err != nil {
		return nil, toStatus(ctx, t.s.log, err)
	}
	pr, err := receiptToProto(rc)
	if err != nil {
		return nil, toStatus(ctx, t.s.log, err)
	}
	return &tvpb.EraseSubjectResponse{Receipt: pr}, nil
}

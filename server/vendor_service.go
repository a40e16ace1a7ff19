package server

import (
	"context"
	"net/netip"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

// vendorService runs on the vendor gRPC server, which only the vendor HTTP listener's gateway
// reaches (in memory); so the x-forwarded-for metadata it sets is trusted.
type vendorService struct {
	tvpb.UnsafeVendorServiceServer
	s *Server
}

func sourceAddr(ctx context.Context) netip.Addr {
	md, _ := metadata.FromIncomingContext(ctx)
	// Set by the gateway from the connection (never X-Forwarded-For, which callers control).
	if v := md.Get(mdRemoteAddr); len(v) == 1 {
		if a, err := netip.ParseAddr(v[0]); err == nil {
			return a
		}
	}
	return netip.Addr{}
}

func (v *vendorService) VendorDetokenize(ctx context.Context, req *tvpb.VendorDetokenizeRequest) (*tvpb.VendorDetokenizeResponse, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok || p.Role != vault.RoleVendor {
		return nil, status.Error(codes.PermissionDenied, "this credential may not call this method on this listener")
	}
	items := make([]vault.TokenRef, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = vault.TokenRef{Token: it.GetToken(), Domain: it.GetDomain(), Template: it.GetTemplate()}
	}
	res, err := v.s.vlt().VendorDetokenize(ctx, vault.VendorRequest{Vendor: p.Vendor, Purpose: req.GetPurpose(), Source: sourceAddr(ctx), GrantID: req.GetGrantId(), Items: items})
	if err != nil {
		if res != nil {
			v.s.alerts.onVendorReveals(ctx, p, res) // canaries and denials still count
		}
		return nil, toStatus(ctx, v.s.log, err)
	}
	v.s.alerts.onVendorReveals(ctx, p, res)
	out := &tvpb.VendorDetokenizeResponse{Results: make([]*tvpb.DetokenizeResult, len(res))}
	counts := v.s.countItems("vendor_detokenize", p.Vendor)
	defer counts.flush()
	for i, r := range res {
		if r.Err != nil {
			out.Results[i] = &tvpb.DetokenizeResult{Error: itemError(ctx, v.s.log, r.Err)}
			// Never label a denied item with its template or the caller's domain.
			counts.add("-", "-", out.Results[i].Error.Code)
			continue
		}
		out.Results[i] = &tvpb.DetokenizeResult{Value: r.Value}
		counts.add(r.Template, vault.DomainOr(items[i].Domain), "ok")
	}
	return out, nil
}

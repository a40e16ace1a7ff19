package server

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

type credentialService struct {
	tvpb.UnsafeCredentialServiceServer
	s *Server
}

func credentialToProto(c vault.Credential) *tvpb.Credential {
	pc := &tvpb.Credential{Id: c.ID, Name: c.Name, Role: string(c.Role), Vendor: c.Vendor,
		CreateTime: timestamppb.New(c.CreateTime), Revoked: c.Revoked, CertSan: c.CertSAN, JwtSubject: c.JWTSubject}
	if !c.RotateTime.IsZero() {
		pc.RotateTime = timestamppb.New(c.RotateTime)
	}
	if !c.PrevExpire.IsZero() {
		pc.PreviousExpireTime = timestamppb.New(c.PrevExpire)
	}
	pc.Domains, pc.Templates, pc.Reveal = c.Domains, c.Templates, string(c.Reveal)
	if !c.ExpireTime.IsZero() {
		pc.ExpireTime = timestamppb.New(c.ExpireTime)
	}
	pc.Expired = c.Expired
	return pc
}

func (c *credentialService) CreateCredential(ctx context.Context, req *tvpb.CreateCredentialRequest) (*tvpb.CreateCredentialResponse, error) {
	spec := vault.CredentialSpec{Name: req.GetName(), Role: vault.Role(req.GetRole()), Vendor: req.GetVendor(), CertSAN: req.GetCertSan(), JWTSubject: req.GetJwtSubject(),
		Scope: vault.Scope{Domains: req.GetDomains(), Templates: req.GetTemplates(), Reveal: vault.Reveal(req.GetReveal())}}
	if req.GetExpires() != nil {
		if err := req.GetExpires().CheckValid(); err != nil {
			return nil, status.Error(codes.InvalidArgument, "expires is not a valid duration")
		}
		spec.Expires = req.GetExpires().AsDuration()
	}
	cred, secret, err := c.s.vlt().CreateCredential(ctx, spec)
	if err != nil {
		return nil, toStatus(ctx, c.s.log, err)
	}
	return &tvpb.CreateCredentialResponse{Credential: credentialToProto(cred), Secret: secret}, nil
}

func (c *credentialService) ListCredentials(ctx context.Context, _ *tvpb.ListCredentialsRequest) (*tvpb.ListCredentialsResponse, error) {
	creds, err := c.s.vlt().ListCredentials(ctx)
	if err != nil {
		return nil, toStatus(ctx, c.s.log, err)
	}
	out := &tvpb.ListCredentialsResponse{}
	for _, cr := range creds {
		out.Credentials = append(out.Credentials, credentialToProto(cr))
	}
	return out, nil
}

func (c *credentialService) RevokeCredential(ctx context.Context, req *tvpb.RevokeCredentialRequest) (*tvpb.RevokeCredentialResponse, error) {
	if err := c.s.vlt().RevokeCredential(ctx, req.GetId()); err != nil {
		return nil, toStatus(ctx, c.s.log, err)
	}
	if c.s.console != nil {
		// Its console sessions would end at their next request anyway (the credential is
		// read again on each); end them now.
		if err := c.s.console.EndCredential(ctx, req.GetId()); err != nil {
			c.s.log.WarnContext(ctx, "the revoked credential's console sessions end at their next call instead", slog.String("error", err.Error()))
		}
	}
	return &tvpb.RevokeCredentialResponse{}, nil
}

func (c *credentialService) RotateCredential(ctx context.Context, req *tvpb.RotateCredentialRequest) (*tvpb.RotateCredentialResponse, error) {
	var overlap time.Duration
	if req.GetOverlap() != nil {
		if err := req.GetOverlap().CheckValid(); err != nil {
			return nil, status.Error(codes.InvalidArgument, "overlap is not a valid duration")
		}
		overlap = req.GetOverlap().AsDuration()
	}
	cred, secret, err := c.s.vlt().RotateCredential(ctx, req.GetId(), overlap)
	if err != nil {
		return nil, toStatus(ctx, c.s.log, err)
	}
	out := &tvpb.RotateCredentialResponse{Credential: credentialToProto(cred), Secret: secret}
	if !cred.PrevExpire.IsZero() {
		out.PreviousExpireTime = timestamppb.New(cred.PrevExpire)
	}
	return out, nil
}

type grantService struct {
	tvpb.UnsafeGrantServiceServer
	s *Server
}

func grantToProto(g vault.Grant) *tvpb.Grant {
	pg := &tvpb.Grant{
		Id: g.ID, Vendor: g.Vendor, Domains: g.Domains, Templates: g.Templates, Purpose: g.Purpose,
		CreateTime: timestamppb.New(g.CreateTime), ExpireTime: timestamppb.New(g.ExpireTime),
		RatePerMinute: int32(g.RatePerMin), Quota: g.Quota, Used: g.Used, SourceCidrs: g.SourceCIDRs,
		Revoked: g.Revoked, Reveal: tvpb.Reveal_REVEAL_FULL, AllowedHours: g.AllowedHours, State: g.State,
	}
	if g.Reveal == vault.RevealMasked {
		pg.Reveal = tvpb.Reveal_REVEAL_MASKED
	}
	return pg
}

func (g *grantService) CreateGrant(ctx context.Context, req *tvpb.CreateGrantRequest) (*tvpb.CreateGrantResponse, error) {
	pg := req.GetGrant()
	in := vault.Grant{
		Vendor: pg.GetVendor(), Domains: pg.GetDomains(), Templates: pg.GetTemplates(), Purpose: pg.GetPurpose(),
		RatePerMin: int(pg.GetRatePerMinute()), Quota: pg.GetQuota(), SourceCIDRs: pg.GetSourceCidrs(),
		Reveal: vault.RevealFull, AllowedHours: pg.GetAllowedHours(),
	}
	if pg.GetReveal() == tvpb.Reveal_REVEAL_MASKED {
		in.Reveal = vault.RevealMasked
	}
	switch {
	case req.GetTtl() != nil && pg.GetExpireTime() != nil:
		return nil, status.Error(codes.InvalidArgument, "set either ttl or grant.expire_time, not both")
	case req.GetTtl() != nil:
		if err := req.GetTtl().CheckValid(); err != nil {
			return nil, status.Error(codes.InvalidArgument, "ttl is not a valid duration")
		}
		in.ExpireTime = time.Now().Add(req.GetTtl().AsDuration())
	case pg.GetExpireTime() != nil:
		if err := pg.GetExpireTime().CheckValid(); err != nil {
			return nil, status.Error(codes.InvalidArgument, "grant.expire_time is not a valid time")
		}
		in.ExpireTime = pg.GetExpireTime().AsTime()
	default:
		return nil, status.Error(codes.InvalidArgument, "a grant needs an expiry: set ttl or grant.expire_time")
	}
	if err := g.s.vlt().CheckVendor(ctx, in.Vendor); err != nil {
		return nil, toStatus(ctx, g.s.log, err)
	}
	out, err := g.s.vlt().CreateGrant(ctx, in)
	if err != nil {
		return nil, toStatus(ctx, g.s.log, err)
	}
	return &tvpb.CreateGrantResponse{Grant: grantToProto(out)}, nil
}

func (g *grantService) ListGrants(ctx context.Context, req *tvpb.ListGrantsRequest) (*tvpb.ListGrantsResponse, error) {
	gs, err := g.s.vlt().ListGrants(ctx, req.GetVendor())
	if err != nil {
		return nil, toStatus(ctx, g.s.log, err)
	}
	out := &tvpb.ListGrantsResponse{}
	for _, x := range gs {
		out.Grants = append(out.Grants, grantToProto(x))
	}
	return out, nil
}

func (g *grantService) GetGrant(ctx context.Context, req *tvpb.GetGrantRequest) (*tvpb.GetGrantResponse, error) {
	x, err := g.s.vlt().GetGrant(ctx, req.GetId())
	if err != nil {
		return nil, toStatus(ctx, g.s.log, err)
	}
	return &tvpb.GetGrantResponse{Grant: grantToProto(x)}, nil
}

func (g *grantService) RevokeGrant(ctx context.Context, req *tvpb.RevokeGrantRequest) (*tvpb.RevokeGrantResponse, error) {
	if err := g.s.vlt().RevokeGrant(ctx, req.GetId()); err != nil {
		return nil, toStatus(ctx, g.s.log, err)
	}
	return &tvpb.RevokeGrantResponse{}, nil
}

func (g *grantService) CreateCanary(ctx context.Context, req *tvpb.CreateCanaryRequest) (*tvpb.CreateCanaryResponse, error) {
	c, err := g.s.vlt().CreateCanary(ctx, req.GetDomain(), req.GetTemplate(), req.GetValue(), req.GetLabel())
	if err != nil {
		return nil, toStatus(ctx, g.s.log, err)
	}
	return &tvpb.CreateCanaryResponse{Token: c.Token}, nil
}

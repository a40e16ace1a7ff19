package server

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

type auditService struct {
	tvpb.UnsafeAuditServiceServer
	s *Server
}

func (a *auditService) ListAuditEvents(ctx context.Context, req *tvpb.ListAuditEventsRequest) (*tvpb.ListAuditEventsResponse, error) {
	f := vault.AuditFilter{
		Credential: req.GetCredential(), Vendor: req.GetVendor(), Outcome: req.GetOutcome(),
		Method: req.GetMethod(), Limit: int(req.GetPageSize()),
	}
	if req.GetStartTime() != nil {
		f.Start = req.GetStartTime().AsTime()
	}
	if req.GetEndTime() != nil {
		f.End = req.GetEndTime().AsTime()
	}
	if tok := req.GetPageToken(); tok != "" {
		n, err := strconv.ParseUint(tok, 10, 64)
		if err != nil {
			return nil, status.Error(codes.InvalidArgument, "page_token is not one this server issued")
		}
		f.AfterSeq = n
	}
	evs, next, err := a.s.vlt().ListAudit(ctx, f)
	if err != nil {
		return nil, toStatus(ctx, a.s.log, err)
	}
	out := &tvpb.ListAuditEventsResponse{}
	for _, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, toStatus(ctx, a.s.log, err)
		}
		out.Events = append(out.Events, &tvpb.AuditEvent{Seq: ev.Seq, Json: string(b)})
	}
	if next > 0 {
		out.NextPageToken = strconv.FormatUint(next, 10)
	}
	return out, nil
}

// lineSender sends each complete line written to it as one stream message.
type lineSender struct {
	stream grpc.ServerStreamingServer[tvpb.ExportAuditResponse]
	buf    []byte
}

func (l *lineSender) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if err := l.stream.Send(&tvpb.ExportAuditResponse{Line: string(l.buf[:i])}); err != nil {
			return 0, err
		}
		l.buf = l.buf[i+1:]
	}
}

func (a *auditService) ExportAudit(req *tvpb.ExportAuditRequest, stream grpc.ServerStreamingServer[tvpb.ExportAuditResponse]) error {
	ctx := stream.Context()
	// Sign the head first, so an export is covered by a checkpoint up to its last event.
	a.s.checkpoint(ctx)
	if err := a.s.vlt().ExportAudit(ctx, req.GetFromSeq(), &lineSender{stream: stream}); err != nil {
		return toStatus(ctx, a.s.log, err)
	}
	return nil
}

func (a *auditService) GetAuditPublicKey(ctx context.Context, _ *tvpb.GetAuditPublicKeyRequest) (*tvpb.GetAuditPublicKeyResponse, error) {
	pub, err := a.s.vlt().AuditPublicKeyset()
	if err != nil {
		return nil, toStatus(ctx, a.s.log, err)
	}
	return &tvpb.GetAuditPublicKeyResponse{PublicKeyset: string(pub)}, nil
}

package server

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

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
		Domain: req.GetDomain(), Template: req.GetTemplate(), Purpose: req.GetPurpose(),
		RequestID: req.GetRequestId(), GrantID: req.GetGrantId(),
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

func (a *auditService) GetAuditEvent(ctx context.Context, req *tvpb.GetAuditEventRequest) (*tvpb.GetAuditEventResponse, error) {
	ev, line, pos, err := a.s.vlt().AuditEventAt(ctx, req.GetSeq())
	if err != nil {
		return nil, toStatus(ctx, a.s.log, err)
	}
	return &tvpb.GetAuditEventResponse{
		Event: &tvpb.AuditEvent{Seq: ev.Seq, Json: string(line)},
		Chain: &tvpb.AuditChainPosition{Seq: pos.Seq, Hash: pos.Hash, PrevHash: pos.PrevHash, Linked: pos.Linked,
			CheckpointSeq: pos.CheckpointSeq, Signed: pos.Signed, Verified: pos.Verified()},
	}, nil
}

// auditWindow returns the length and bucket of one of GetAuditStats' windows.
func auditWindow(name string) (length, bucket time.Duration, ok bool) {
	switch name {
	case "24h":
		return 24 * time.Hour, time.Hour, true
	case "7d":
		return 7 * 24 * time.Hour, 6 * time.Hour, true
	case "30d":
		return 30 * 24 * time.Hour, 24 * time.Hour, true
	}
	return 0, 0, false
}

func (a *auditService) GetAuditStats(ctx context.Context, req *tvpb.GetAuditStatsRequest) (*tvpb.GetAuditStatsResponse, error) {
	name := req.GetWindow()
	if name == "" {
		name = "24h"
	}
	length, bucket, ok := auditWindow(name)
	if !ok {
		return nil, status.Error(codes.InvalidArgument, "window must be 24h, 7d or 30d")
	}
	// The window ends with the current bucket (buckets are aligned to UTC).
	now := a.s.vlt().Now()
	end := now.Truncate(bucket).Add(bucket)
	st, err := a.s.vlt().AuditStatsWindow(ctx, end.Add(-length), end, bucket)
	if err != nil {
		return nil, toStatus(ctx, a.s.log, err)
	}
	at := func(i int) *timestamppb.Timestamp { return timestamppb.New(st.Start.Add(time.Duration(i) * st.Bucket)) }
	out := &tvpb.GetAuditStatsResponse{
		Window: name, BucketSeconds: int32(bucket / time.Second), Start: timestamppb.New(st.Start), End: timestamppb.New(st.End),
		Totals: &tvpb.AuditStatsTotals{Reveals: st.Reveals, Denials: st.DenialTotal, Alerts: st.AlertTotal},
	}
	for _, s := range st.Series {
		sr := &tvpb.AuditRevealSeries{Vendor: s.Vendor, GrantId: s.GrantID}
		for i, n := range s.Reveals {
			sr.Points = append(sr.Points, &tvpb.AuditRevealPoint{Time: at(i), Reveals: n})
		}
		out.Series = append(out.Series, sr)
	}
	for i := range st.Denials {
		out.Denials = append(out.Denials, &tvpb.AuditCountPoint{Time: at(i), Count: st.Denials[i]})
		out.Alerts = append(out.Alerts, &tvpb.AuditCountPoint{Time: at(i), Count: st.Alerts[i]})
	}
	return out, nil
}

func (a *auditService) GetAuditStatus(ctx context.Context, _ *tvpb.GetAuditStatusRequest) (*tvpb.GetAuditStatusResponse, error) {
	// Sign the head first, so that a healthy trail is covered up to its last event.
	a.s.checkpoint(ctx)
	st, err := a.s.vlt().VerifyAudit(ctx, a.s.cfg.CheckpointInterval)
	if err != nil {
		return nil, toStatus(ctx, a.s.log, err)
	}
	out := &tvpb.GetAuditStatusResponse{HeadSeq: st.HeadSeq, Verified: st.Verified, Problem: st.Problem}
	if c := st.Checkpoint; c.Seq > 0 {
		out.Checkpoint = &tvpb.AuditCheckpoint{Seq: c.Seq, Time: timestamppb.New(c.Time), Hash: c.Hash}
	}
	return out, nil
}

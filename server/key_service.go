package server

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

type keyService struct {
	tvpb.UnsafeKeyServiceServer
	s *Server
}

func (k *keyService) GetKeyStatus(ctx context.Context, _ *tvpb.GetKeyStatusRequest) (*tvpb.GetKeyStatusResponse, error) {
	st, err := k.s.vlt().KeyStatus(ctx)
	if err != nil {
		return nil, toStatus(ctx, k.s.log, err)
	}
	out := &tvpb.GetKeyStatusResponse{RewrapTarget: st.Rewrap.Target, RewrapDone: st.Rewrap.Done,
		Rewrapped: st.Rewrap.Rewrapped, Remaining: st.Rewrap.Remaining, Total: st.Records}
	for _, key := range st.Keys {
		out.Keys = append(out.Keys, &tvpb.DataKey{KeyId: key.ID, State: key.State, Records: key.Records, CreateTime: timestamp(key.Created)})
	}
	for _, r := range st.Replicas {
		out.Replicas = append(out.Replicas, &tvpb.Replica{Id: r.ID, Started: timestamp(r.Started),
			LastSeen: timestamp(r.LastSeen), LiveUntil: timestamp(r.LiveUntil),
			KeyringVersion: r.KeyringVersion, PrimaryKeyId: r.PrimaryKeyID, Live: r.Live, LeaseHolder: r.Holder})
	}
	return out, nil
}

// timestamp is t as a protobuf timestamp, or nil (the field left out) when t is zero.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func (k *keyService) RotateKey(ctx context.Context, _ *tvpb.RotateKeyRequest) (*tvpb.RotateKeyResponse, error) {
	id, err := k.s.vlt().RotateDataKey(ctx)
	if err != nil {
		return nil, toStatus(ctx, k.s.log, err)
	}
	return &tvpb.RotateKeyResponse{KeyId: id}, nil
}

func (k *keyService) DisableKey(ctx context.Context, req *tvpb.DisableKeyRequest) (*tvpb.DisableKeyResponse, error) {
	if err := k.s.vlt().DisableDataKey(ctx, req.GetKeyId()); err != nil {
		return nil, toStatus(ctx, k.s.log, err)
	}
	return &tvpb.DisableKeyResponse{}, nil
}

func (k *keyService) EnableKey(ctx context.Context, req *tvpb.EnableKeyRequest) (*tvpb.EnableKeyResponse, error) {
	if err := k.s.vlt().EnableDataKey(ctx, req.GetKeyId()); err != nil {
		return nil, toStatus(ctx, k.s.log, err)
	}
	return &tvpb.EnableKeyResponse{}, nil
}

func (k *keyService) DestroyKey(ctx context.Context, req *tvpb.DestroyKeyRequest) (*tvpb.DestroyKeyResponse, error) {
	if err := k.s.vlt().DestroyDataKey(ctx, req.GetKeyId()); err != nil {
		return nil, toStatus(ctx, k.s.log, err)
	}
	return &tvpb.DestroyKeyResponse{}, nil
}

// chunkSender sends what is written to it as Backup chunks of at most 1 MiB.
type chunkSender struct {
	stream grpc.ServerStreamingServer[tvpb.BackupResponse]
}

func (c chunkSender) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		m := min(len(p), 1<<20)
		if err := c.stream.Send(&tvpb.BackupResponse{Chunk: p[:m]}); err != nil {
			return n, err
		}
		n += m
		p = p[m:]
	}
	return n, nil
}

func (k *keyService) Backup(_ *tvpb.BackupRequest, stream grpc.ServerStreamingServer[tvpb.BackupResponse]) error {
	ctx := stream.Context()
	if _, err := k.s.vlt().Backup(ctx, chunkSender{stream: stream}); err != nil {
		return toStatus(ctx, k.s.log, err)
	}
	return nil
}

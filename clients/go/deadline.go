package client

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// unaryDeadline gives a unary call whose context has no deadline one of timeout.
func unaryDeadline(timeout time.Duration) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// idleCause is the cause of a stream cancelled by its idle limit.
type idleCause struct{}

func (idleCause) Error() string { return "client: stream idle" }

// streamIdle puts an idle limit on a stream whose context has no deadline: opening it and
// each RecvMsg must end within timeout, or the stream is cancelled and the call fails with
// DeadlineExceeded. The clock stops between RecvMsg calls.
func streamIdle(timeout time.Duration) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if _, ok := ctx.Deadline(); ok {
			return streamer(ctx, desc, cc, method, opts...)
		}
		ctx, cancel := context.WithCancelCause(ctx)
		s := &idleStream{ctx: ctx, cancel: cancel, timeout: timeout}
		s.timer = time.AfterFunc(timeout, func() { cancel(idleCause{}) })
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, s.end(err)
		}
		s.timer.Stop()
		s.ClientStream = cs
		return s, nil
	}
}

// idleStream is a client stream under an idle limit.
type idleStream struct {
	grpc.ClientStream
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timeout time.Duration
	timer   *time.Timer
}

// RecvMsg waits at most the idle limit for the next message. The stream's end (io.EOF or an
// error) releases its context.
func (s *idleStream) RecvMsg(m any) error {
	s.timer.Reset(s.timeout)
	err := s.ClientStream.RecvMsg(m)
	if err != nil {
		return s.end(err)
	}
	s.timer.Stop()
	return nil
}

// end stops the clock, releases the context and, if the idle limit cut the stream, says so
// with DeadlineExceeded.
func (s *idleStream) end(err error) error {
	s.timer.Stop()
	_, idle := context.Cause(s.ctx).(idleCause)
	s.cancel(nil)
	if idle {
		return status.Errorf(codes.DeadlineExceeded, "client: the server sent nothing for %s (the stream's idle limit, WithTimeout)", s.timeout)
	}
	return err
}

package server

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The gateways call the unary methods of their gRPC server in process (issue 15, "per
// request"): an HTTP request's RPC runs the very interceptor chain the gRPC listener runs
// (request id, recovery, authentication and authorization, logging, metrics, validation;
// the handler audits), once, but without the in-memory HTTP/2 hop: no protobuf encoding and
// decoding of the request and the reply, no framing, no server goroutine per call. Streams
// (GET /v1/backup, GET /v1/audit:export) and anything not registered here still go over the
// in-memory gRPC connection.
//
// An in-process call carries the gateway's metadata (the forwarded headers and what
// clientInfo records of the HTTP connection) as its incoming metadata and a peer on
// gatewayNetwork, so sourceOf and clientSANs read the caller's address and certificate SANs
// from that metadata exactly as for a call over the in-memory connection. The HTTP request's
// context flows through, so the principal the body guard authenticated reaches the
// interceptor (verifiedPrincipal) and is not authenticated a second time.

// gatewayNetwork is the network of the gateways' in-memory connections (bufconn's), whose
// calls carry the HTTP caller's address and certificate SANs as metadata (see sourceOf,
// clientSANs). In-process calls present the same.
const gatewayNetwork = "bufconn"

type inprocAddr struct{}

func (inprocAddr) Network() string { return gatewayNetwork }
func (inprocAddr) String() string  { return "inproc" }

// inprocConn is a grpc.ClientConnInterface over one gRPC server: unary methods registered
// through it (it is the grpc.ServiceRegistrar of that server's services) run in process
// through chain, the server's own unary interceptor chain; other calls go over conn.
type inprocConn struct {
	srv     *grpc.Server
	chain   grpc.UnaryServerInterceptor
	methods map[string]inprocMethod
	conn    grpc.ClientConnInterface // the in-memory connection: streams, unregistered methods
}

type inprocMethod struct {
	impl    any
	handler grpc.MethodHandler
}

func newInprocConn(srv *grpc.Server, chain grpc.UnaryServerInterceptor) *inprocConn {
	return &inprocConn{srv: srv, chain: chain, methods: map[string]inprocMethod{}}
}

// RegisterService registers impl on the gRPC server and its unary methods for in-process
// calls.
func (c *inprocConn) RegisterService(desc *grpc.ServiceDesc, impl any) {
	c.srv.RegisterService(desc, impl)
	for _, m := range desc.Methods {
		c.methods["/"+desc.ServiceName+"/"+m.MethodName] = inprocMethod{impl: impl, handler: m.Handler}
	}
}

// Invoke runs a unary method in process: through the interceptor chain, with the request
// message the gateway decoded and the reply moved (not copied) into reply.
func (c *inprocConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	m, ok := c.methods[method]
	if !ok {
		return c.conn.Invoke(ctx, method, args, reply, opts...)
	}
	in, ok1 := args.(proto.Message)
	out, ok2 := reply.(proto.Message)
	if !ok1 || !ok2 {
		return status.Error(codes.Internal, "internal error: not a protobuf message")
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	ctx = metadata.NewOutgoingContext(ctx, nil)
	resp, header, trailer, err := c.invoke(ctx, m, method, md, in)
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.HeaderCallOption:
			*o.HeaderAddr = header
		case grpc.TrailerCallOption:
			*o.TrailerAddr = trailer
		}
	}
	if err != nil {
		return err
	}
	if resp != nil {
		return moveMessage(out.ProtoReflect(), resp.ProtoReflect())
	}
	return nil
}

// invoke runs m, registered as method, in process on the request in, with md as the call's
// incoming metadata; it returns the reply (nil or of m's reply type), the headers and
// trailers set, and the error as the gRPC server would answer it: a status as is, a context
// error as its code, anything else as Unknown.
func (c *inprocConn) invoke(ctx context.Context, m inprocMethod, method string, md metadata.MD, in proto.Message) (resp proto.Message, header, trailer metadata.MD, err error) {
	ctx = metadata.NewIncomingContext(ctx, md)
	ctx = peer.NewContext(ctx, &peer.Peer{Addr: inprocAddr{}})
	st := &inprocStream{method: method}
	ctx = grpc.NewContextWithServerTransportStream(ctx, st)
	// The generated handler allocates an empty request for dec to fill; the chain gets the
	// gateway's decoded one instead (of the same type, checked here).
	dec := func(v any) error {
		if pm, ok := v.(proto.Message); !ok || pm.ProtoReflect().Descriptor() != in.ProtoReflect().Descriptor() {
			return status.Error(codes.Internal, "internal error: request type mismatch")
		}
		return nil
	}
	r, err := m.handler(m.impl, ctx, dec, func(ctx context.Context, _ any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return c.chain(ctx, in, info, h)
	})
	header, trailer = st.result()
	if err != nil {
		if s, ok := status.FromError(err); ok {
			return nil, header, trailer, s.Err()
		}
		return nil, header, trailer, status.FromContextError(err).Err()
	}
	if pm, ok := r.(proto.Message); ok && pm != nil && pm.ProtoReflect().IsValid() {
		return pm, header, trailer, nil
	}
	return nil, header, trailer, nil
}

// NewStream opens streams over the in-memory connection.
func (c *inprocConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.conn.NewStream(ctx, desc, method, opts...)
}

// moveMessage sets dst's fields to src's (a shallow move: lists, maps and sub-messages are
// shared, not copied); dst is a fresh message of src's type.
func moveMessage(dst, src protoreflect.Message) error {
	if !src.IsValid() {
		return nil
	}
	if dst.Descriptor() != src.Descriptor() {
		return status.Error(codes.Internal, "internal error: reply type mismatch")
	}
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		dst.Set(fd, v)
		return true
	})
	if u := src.GetUnknown(); len(u) > 0 {
		dst.SetUnknown(u)
	}
	return nil
}

// inprocStream is the grpc.ServerTransportStream of an in-process call: it collects the
// headers and trailers the handler and interceptors set, for the gateway.
type inprocStream struct {
	method string

	mu               sync.Mutex
	header, trailer  metadata.MD
	headerSent, done bool
}

func (s *inprocStream) Method() string { return s.method }

func (s *inprocStream) SetHeader(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.headerSent || s.done {
		return status.Error(codes.Internal, "transport: the stream is done or WriteHeader was already called")
	}
	s.header = joinMD(s.header, md)
	return nil
}

func (s *inprocStream) SendHeader(md metadata.MD) error {
	if err := s.SetHeader(md); err != nil {
		return err
	}
	s.mu.Lock()
	s.headerSent = true
	s.mu.Unlock()
	return nil
}

func (s *inprocStream) SetTrailer(md metadata.MD) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return status.Error(codes.Internal, "transport: the stream is done")
	}
	s.trailer = joinMD(s.trailer, md)
	return nil
}

// result ends the call and returns what was set.
func (s *inprocStream) result() (header, trailer metadata.MD) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	if s.header == nil {
		s.header = metadata.MD{}
	}
	if s.trailer == nil {
		s.trailer = metadata.MD{}
	}
	return s.header, s.trailer
}

// chainUnary runs outer, then inner, then the handler.
func chainUnary(outer, inner grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		return outer(ctx, req, info, func(ctx context.Context, req any) (any, error) { return inner(ctx, req, info, h) })
	}
}

// over returns c with conn as its in-memory connection (for streams and unregistered
// methods); the registered methods are shared, read-only once the server runs.
func (c *inprocConn) over(conn grpc.ClientConnInterface) *inprocConn {
	cc := *c
	cc.conn = conn
	return &cc
}

// joinMD adds md's values to into (made when nil), as metadata.Join does without copying into
// on every call.
func joinMD(into, md metadata.MD) metadata.MD {
	if into == nil {
		into = make(metadata.MD, len(md))
	}
	for k, v := range md {
		into[k] = append(into[k], v...)
	}
	return into
}

package server

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// hotRoute serves one of the hottest HTTP routes (POST /v1/tokens:tokenize and :detokenize,
// the vendor's POST /v1/tokens:detokenize) as the gateway serves it, without the gateway's
// generic work per request (issue 15, "per request"): no routing of the path through its
// pattern table and no runtime.AnnotateContext, which turns every header into metadata
// through the header matcher, parses them again into metadata.MD, and joins the annotator's;
// the in-process call gets its incoming metadata built directly instead. Everything that
// decides the answer is the gateway's own or shared with it: the same marshaler and decoder
// (so the same decoding errors), the same in-process method and so the same interceptor
// chain (authentication, authorization, validation, logging, metrics; the handler audits),
// and runtime.HTTPError and runtime.ForwardResponseMessage write the answer, with the same
// error handler and header matchers.
//
// The incoming metadata is what the gateway's header matcher forwards (authorization,
// x-request-id) and its annotator adds (clientInfo: the caller's address, certificate SANs
// and console session); the gateway's x-forwarded-host and x-forwarded-for are not set, as
// nothing reads them. Requests the route does not take, which fall through to the gateway
// (fallback): another method than POST, a Grpc-Timeout header (the gateway parses it into a
// deadline), a request refused from its headers (guardBody: the gateway answers it without a
// body) and a Content-Type or Accept that selects another marshaler.
type hotRoute struct {
	mux      *runtime.ServeMux
	conn     *inprocConn
	method   string // the full gRPC method name
	m        inprocMethod
	newReq   func() proto.Message
	newResp  func() proto.Message
	fallback http.Handler
}

func newHotRoute(mux *runtime.ServeMux, conn *inprocConn, method string, newReq, newResp func() proto.Message, fallback http.Handler) http.Handler {
	m, ok := conn.methods[method]
	if !ok {
		return fallback // not registered in process: the gateway serves it
	}
	return &hotRoute{mux: mux, conn: conn, method: method, m: m, newReq: newReq, newResp: newResp, fallback: fallback}
}

func (h *hotRoute) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodPost || len(r.Header["Grpc-Timeout"]) > 0 || ctx.Value(keyUnauthenticatedBody) != nil {
		h.fallback.ServeHTTP(w, r)
		return
	}
	inbound, outbound := runtime.MarshalerForRequest(h.mux, r)
	dec, ok := inbound.(*sanitizingMarshaler)
	if !ok || outbound != inbound {
		h.fallback.ServeHTTP(w, r)
		return
	}
	req := h.newReq()
	// As the generated gateway handler: a decoding error is InvalidArgument with the
	// decoder's (sanitized) message; an empty body is an empty request.
	data, rerr := readBody(r)
	if err := dec.decode(data, rerr, req); err != nil && !errors.Is(err, io.EOF) {
		runtime.HTTPError(ctx, h.mux, outbound, w, r, status.Errorf(codes.InvalidArgument, "%v", err))
		return
	}
	resp, header, trailer, err := h.conn.invoke(ctx, h.m, h.method, incomingMD(ctx, r), req)
	ctx = runtime.NewServerMetadataContext(ctx, runtime.ServerMetadata{HeaderMD: header, TrailerMD: trailer})
	if err != nil {
		runtime.HTTPError(ctx, h.mux, outbound, w, r, err)
		return
	}
	if resp == nil {
		resp = h.newResp() // an empty reply, as the gateway's client call leaves it
	}
	runtime.ForwardResponseMessage(ctx, h.mux, outbound, w, r, resp, h.mux.GetForwardResponseOptions()...)
}

// incomingMD is the incoming metadata of an HTTP call as the gateway (newGatewayMux) passes
// it: the Authorization headers and X-Request-Id (values the gateway would forward: printable
// ASCII), then clientInfo's keys, which replace any of the same name.
func incomingMD(ctx context.Context, r *http.Request) metadata.MD {
	md := clientInfo(ctx, r)
	for _, v := range r.Header["Authorization"] {
		if mdText(v) {
			md["authorization"] = append(md["authorization"], v)
		}
	}
	if v := r.Header["X-Request-Id"]; len(v) > 0 && mdText(v[0]) {
		md["x-request-id"] = v[:1:1]
	}
	return md
}

// mdText reports whether v is a valid gRPC metadata text value (printable ASCII), as the
// gateway checks before forwarding a header.
func mdText(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// readBody reads r's body whole; the error is the reader's (a *http.MaxBytesError past the
// guard's limit). With a Content-Length it reads into one buffer of that size.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	if n := r.ContentLength; n > 0 && n <= MaxMessageBytes {
		b := make([]byte, 0, n+1) // +1: EOF is seen without growing
		for {
			m, err := r.Body.Read(b[len(b):cap(b)])
			b = b[:len(b)+m]
			if err == io.EOF {
				return b, nil
			}
			if err != nil {
				return b, err
			}
			if len(b) == cap(b) {
				rest, err := io.ReadAll(r.Body)
				return append(b, rest...), err
			}
		}
	}
	return io.ReadAll(r.Body)
}

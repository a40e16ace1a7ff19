package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

type recordService struct {
	tvpb.UnsafeRecordServiceServer
	s *Server
}

func rawDocs(in []string) []json.RawMessage {
	out := make([]json.RawMessage, len(in))
	for i, d := range in {
		out[i] = json.RawMessage(d)
	}
	return out
}

func (r *recordService) failures(ctx context.Context, fails []vault.RecordFailure) []*tvpb.RecordFieldError {
	var out []*tvpb.RecordFieldError
	for _, f := range fails {
		ie := itemError(ctx, r.s.log, f.Err)
		out = append(out, &tvpb.RecordFieldError{Doc: int32(f.Doc), Path: f.Path, Code: ie.GetCode(), Message: ie.GetMessage()})
	}
	return out
}

func (r *recordService) TokenizeRecords(ctx context.Context, req *tvpb.TokenizeRecordsRequest) (*tvpb.TokenizeRecordsResponse, error) {
	pol, err := vault.CompilePolicy([]byte(req.GetPolicy()))
	if err != nil {
		return nil, toStatus(ctx, r.s.log, err)
	}
	docs, fails, err := r.s.vlt().TokenizeRecords(ctx, pol, req.GetDomain(), rawDocs(req.GetDocuments()))
	if err != nil {
		return nil, toStatus(ctx, r.s.log, err)
	}
	out := &tvpb.TokenizeRecordsResponse{Errors: r.failures(ctx, fails)}
	for _, d := range docs {
		out.Documents = append(out.Documents, string(d))
	}
	return out, nil
}

func (r *recordService) DetokenizeRecords(ctx context.Context, req *tvpb.DetokenizeRecordsRequest) (*tvpb.DetokenizeRecordsResponse, error) {
	pol, err := vault.CompilePolicy([]byte(req.GetPolicy()))
	if err != nil {
		return nil, toStatus(ctx, r.s.log, err)
	}
	docs, fails, err := r.s.vlt().DetokenizeRecords(ctx, pol, req.GetDomain(), req.GetPurpose(), rawDocs(req.GetDocuments()))
	if err != nil {
		return nil, toStatus(ctx, r.s.log, err)
	}
	out := &tvpb.DetokenizeRecordsResponse{Errors: r.failures(ctx, fails)}
	for _, d := range docs {
		out.Documents = append(out.Documents, string(d))
	}
	return out, nil
}

// recordsHTTP serves POST /v1/records:tokenize and :detokenize with documents as JSON values
// (kept byte for byte, which the gateway's protobuf mapping cannot do), by calling the gRPC
// methods through the gateway's connection (in process: inproc.go) so every interceptor runs. It goes through
// the gateway's own paths: its mux annotates the call (forwarded headers, caller address) and
// writes the errors (one status table, runtime.HTTPStatusFromCode).
type recordsHTTP struct {
	conn grpc.ClientConnInterface
	mux  *runtime.ServeMux
	log  func(error)
}

type recordsBody struct {
	Documents []json.RawMessage `json:"documents"`
	Policy    json.RawMessage   `json:"policy"`
	Domain    string            `json:"domain"`
	Purpose   string            `json:"purpose"`
}

// decode reads the request body: exactly one JSON object of recordsBody's fields, nothing after it.
func (b *recordsBody) decode(r io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(r, MaxMessageBytes))
	if err == nil && oneJSONValue(data) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if dec.Decode(b) == nil {
			return nil
		}
	}
	return status.Error(codes.InvalidArgument, `malformed request body: want {"documents":[{…}],"policy":{"$.path":"template"},"domain":"…"}`)
}

func (rh recordsHTTP) serve(tokenize bool) http.HandlerFunc {
	method := "/tokenvault.v1.RecordService/DetokenizeRecords"
	if tokenize {
		method = "/tokenvault.v1.RecordService/TokenizeRecords"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		_, marshaler := runtime.MarshalerForRequest(rh.mux, r)
		var md runtime.ServerMetadata // the gRPC call's headers and trailers, for the error handler
		ctx := r.Context()
		fail := func(err error) { runtime.HTTPError(ctx, rh.mux, marshaler, w, r, err) }
		var body recordsBody
		// A request refused from its headers (guardBody) has no body: the RPC refuses it.
		if r.Context().Value(keyUnauthenticatedBody) == nil {
			if err := body.decode(r.Body); err != nil { // bounded by guardBody
				if max, ok := bodyTooLarge(r); ok {
					writeTooLarge(w, max)
					return
				}
				fail(err)
				return
			}
		}
		// The policy may be a JSON object (path → template) or a YAML/JSON string.
		policy := string(body.Policy)
		var s string
		if json.Unmarshal(body.Policy, &s) == nil {
			policy = s
		}
		docs := make([]string, len(body.Documents))
		for i, d := range body.Documents {
			docs[i] = string(d)
		}
		actx, err := runtime.AnnotateContext(ctx, rh.mux, r, method)
		if err != nil {
			fail(err)
			return
		}
		c := tvpb.NewRecordServiceClient(rh.conn)
		var out struct {
			Documents []json.RawMessage `json:"documents"`
			Errors    []json.RawMessage `json:"errors,omitempty"`
		}
		var respDocs []string
		var errs []*tvpb.RecordFieldError
		opts := []grpc.CallOption{grpc.Header(&md.HeaderMD), grpc.Trailer(&md.TrailerMD)}
		if tokenize {
			var resp *tvpb.TokenizeRecordsResponse
			resp, err = c.TokenizeRecords(actx, &tvpb.TokenizeRecordsRequest{Documents: docs, Policy: policy, Domain: body.Domain}, opts...)
			respDocs, errs = resp.GetDocuments(), resp.GetErrors()
		} else {
			var resp *tvpb.DetokenizeRecordsResponse
			resp, err = c.DetokenizeRecords(actx, &tvpb.DetokenizeRecordsRequest{Documents: docs, Policy: policy, Domain: body.Domain, Purpose: body.Purpose}, opts...)
			respDocs, errs = resp.GetDocuments(), resp.GetErrors()
		}
		if err != nil {
			ctx = runtime.NewServerMetadataContext(r.Context(), md)
			fail(err)
			return
		}
		for _, d := range respDocs {
			if d == "" {
				out.Documents = append(out.Documents, json.RawMessage("null"))
			} else {
				out.Documents = append(out.Documents, json.RawMessage(d))
			}
		}
		for _, e := range errs {
			b, _ := protojson.Marshal(e)
			out.Errors = append(out.Errors, b)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(out); err != nil {
			rh.log(err)
			fail(status.Error(codes.Internal, "internal error"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(buf.Bytes())
	}
}

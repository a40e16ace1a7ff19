package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
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
// methods over the gateway's in-memory connection so every interceptor runs.
type recordsHTTP struct {
	conn *grpc.ClientConn
	log  func(error)
}

type recordsBody struct {
	Documents []json.RawMessage `json:"documents"`
	Policy    json.RawMessage   `json:"policy"`
	Domain    string            `json:"domain"`
	Purpose   string            `json:"purpose"`
}

func writeJSONError(w http.ResponseWriter, code int, grpcCode codes.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]any{"code": int(grpcCode), "message": msg})
	w.Write(b)
}

func (rh recordsHTTP) serve(tokenize bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body recordsBody
		// A request refused from its headers (guardBody) has no body: the RPC refuses it.
		if r.Context().Value(keyUnauthenticatedBody) == nil {
			dec := json.NewDecoder(r.Body) // bounded by guardBody
			dec.DisallowUnknownFields()
			if err := dec.Decode(&body); err != nil {
				if max, ok := bodyTooLarge(r); ok {
					writeTooLarge(w, max)
					return
				}
				writeJSONError(w, http.StatusBadRequest, codes.InvalidArgument,
					`malformed request body: want {"documents":[{…}],"policy":{"$.path":"template"},"domain":"…"}`)
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
		md := metadata.MD{}
		if a := r.Header.Get("Authorization"); a != "" {
			md.Set("authorization", a)
		}
		if id := r.Header.Get("X-Request-Id"); id != "" {
			md.Set("x-request-id", id)
		}
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			md.Set(mdRemoteAddr, host)
		}
		ctx := metadata.NewOutgoingContext(r.Context(), md)
		c := tvpb.NewRecordServiceClient(rh.conn)
		var out struct {
			Documents []json.RawMessage `json:"documents"`
			Errors    []json.RawMessage `json:"errors,omitempty"`
		}
		var respDocs []string
		var errs []*tvpb.RecordFieldError
		var err error
		if tokenize {
			var resp *tvpb.TokenizeRecordsResponse
			resp, err = c.TokenizeRecords(ctx, &tvpb.TokenizeRecordsRequest{Documents: docs, Policy: policy, Domain: body.Domain})
			respDocs, errs = resp.GetDocuments(), resp.GetErrors()
		} else {
			var resp *tvpb.DetokenizeRecordsResponse
			resp, err = c.DetokenizeRecords(ctx, &tvpb.DetokenizeRecordsRequest{Documents: docs, Policy: policy, Domain: body.Domain, Purpose: body.Purpose})
			respDocs, errs = resp.GetDocuments(), resp.GetErrors()
		}
		if err != nil {
			st := status.Convert(err)
			writeJSONError(w, httpStatus(st.Code()), st.Code(), st.Message())
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
			writeJSONError(w, http.StatusInternalServerError, codes.Internal, "internal error")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(buf.Bytes())
	}
}

// httpStatus maps a gRPC code to its HTTP status as grpc-gateway does.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Canceled:
		return 499
	}
	return http.StatusInternalServerError
}

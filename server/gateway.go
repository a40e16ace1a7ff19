package server

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/server/console"
	"github.com/tokenvault/tokenvault/vault"
)

// openAPISpec is the OpenAPI 3.1 document that go generate ./proto writes from the protos
// (server/openapi/gen).
//
//go:embed openapi/tokenvault.openapi.json
var openAPISpec []byte

// specWithVersion returns the OpenAPI document with info.version set to version (the
// generated one when version is empty).
func specWithVersion(spec []byte, version string) ([]byte, error) {
	if version == "" {
		return spec, nil
	}
	var doc map[string]any
	if err := json.Unmarshal(spec, &doc); err != nil {
		return nil, fmt.Errorf("server: reading the OpenAPI document: %w", err)
	}
	info, ok := doc["info"].(map[string]any)
	if !ok {
		return nil, errors.New("server: the OpenAPI document has no info")
	}
	info["version"] = version
	return json.Marshal(doc)
}

// internalHTTP builds the internal HTTP handler: the gateway (calling the gRPC server's
// methods through its interceptor chain, in process for unary methods: inproc.go), /healthz, /metrics and /openapi.json. The returned func closes the
// gateway's connection.
func (s *Server) internalHTTP(ctx context.Context) (http.Handler, func(), error) {
	conn, err := grpc.NewClient("passthrough:///internal",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.iconn.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("server: gateway connection: %w", err)
	}
	routes, err := routesFromSpec(openAPISpec)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	spec, err := specWithVersion(openAPISpec, s.cfg.Version)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	mux := newGatewayMux(routes)
	// Unary methods run in process through the gRPC server's interceptor chain; streams go
	// over conn (inproc.go).
	ic := s.iproc.over(conn)
	if err := errors.Join(
		tvpb.RegisterTokenServiceHandlerClient(ctx, mux, tvpb.NewTokenServiceClient(ic)),
		tvpb.RegisterTemplateServiceHandlerClient(ctx, mux, tvpb.NewTemplateServiceClient(ic)),
		tvpb.RegisterCredentialServiceHandlerClient(ctx, mux, tvpb.NewCredentialServiceClient(ic)),
		tvpb.RegisterGrantServiceHandlerClient(ctx, mux, tvpb.NewGrantServiceClient(ic)),
		tvpb.RegisterAuditServiceHandlerClient(ctx, mux, tvpb.NewAuditServiceClient(ic)),
		tvpb.RegisterKeyServiceHandlerClient(ctx, mux, tvpb.NewKeyServiceClient(ic)),
		tvpb.RegisterTextServiceHandlerClient(ctx, mux, tvpb.NewTextServiceClient(ic)),
	); err != nil {
		conn.Close()
		return nil, nil, err
	}
	h := http.NewServeMux()
	own := func(method, path string, handler http.Handler) { serveOnly(h, method, path, handler) }
	own("GET", "/healthz", http.HandlerFunc(s.healthz))
	own("GET", "/livez", http.HandlerFunc(livez))
	// Metrics name vendors, domains and volumes: admin or auditor only here; Prometheus can
	// use the metrics listener (Config.MetricsAddr) instead.
	own("GET", "/metrics", s.requireRoles(s.iauth, "GET /metrics", s.metricsHandler(), vault.RoleAdmin, vault.RoleAuditor))
	own("GET", "/openapi.json", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(spec)
	}))
	rh := recordsHTTP{conn: ic, mux: mux, log: func(err error) { s.log.Error("records response", slog.String("error", err.Error())) }}
	guard := func(h http.Handler) http.Handler { return s.guardBody(s.iauth, s.limits.HTTPMaxBody, h) }
	own("POST", "/v1/records:tokenize", guard(rh.serve(true)))
	own("POST", "/v1/records:detokenize", guard(rh.serve(false)))
	// Streams may outlast the write timeout: the caller is authenticated by then. (They are
	// newline-delimited JSON: see sanitizingMarshaler.StreamContentType.)
	stream := func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
		mux.ServeHTTP(&streamErrorWriter{ResponseWriter: w}, r)
	}
	h.HandleFunc("GET /v1/backup", stream)
	h.HandleFunc("GET /v1/audit:export", stream)
	h.Handle("/", guard(mux))
	// The hottest routes skip the gateway's generic routing and annotation (hotroute.go);
	// what they do not take falls through to mux.
	h.Handle("/v1/tokens:tokenize", guard(newHotRoute(mux, ic, "/tokenvault.v1.TokenService/Tokenize",
		func() proto.Message { return &tvpb.TokenizeRequest{} }, func() proto.Message { return &tvpb.TokenizeResponse{} }, mux)))
	h.Handle("/v1/tokens:detokenize", guard(newHotRoute(mux, ic, "/tokenvault.v1.TokenService/Detokenize",
		func() proto.Message { return &tvpb.DetokenizeRequest{} }, func() proto.Message { return &tvpb.DetokenizeResponse{} }, mux)))
	if s.console != nil {
		h.Handle(console.Prefix, s.console.Handler())
	}
	return s.withConsoleSessions(h), func() { conn.Close() }, nil
}

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
}

// metricsHTTP serves the metrics listener: GET /metrics without credentials, nothing else.
func (s *Server) metricsHTTP() http.Handler {
	h := http.NewServeMux()
	h.Handle("GET /metrics", s.metricsHandler())
	return h
}

// newGatewayMux returns a grpc-gateway mux with tokenvault's marshaler and header rules;
// routes name the methods of its paths for 405 answers.
func newGatewayMux(routes gatewayRoutes) *runtime.ServeMux {
	return runtime.NewServeMux(
		// One route, one method: no X-HTTP-Method-Override, no form-POST-as-GET fallback.
		runtime.WithDisableHTTPMethodOverride(),
		runtime.WithDisablePathLengthFallback(),
		runtime.WithErrorHandler(func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
			if max, ok := bodyTooLarge(r); ok {
				writeTooLarge(w, max)
				return
			}
			runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
		}),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &sanitizingMarshaler{JSONPb: runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: false},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
		// Forward only what the gRPC side reads. In particular no Grpc-Metadata-* headers:
		// the metadata set by clientInfo below must come from the connection, not the caller.
		runtime.WithIncomingHeaderMatcher(func(h string) (string, bool) {
			switch http.CanonicalHeaderKey(h) {
			case "Authorization":
				return "authorization", true
			case "X-Request-Id":
				return "x-request-id", true
			}
			return "", false
		}),
		runtime.WithMetadata(clientInfo),
		runtime.WithOutgoingHeaderMatcher(func(h string) (string, bool) {
			switch h {
			case "x-request-id":
				return "X-Request-Id", true
			case "retry-after":
				return "Retry-After", true
			}
			return "", false
		}),
		runtime.WithRoutingErrorHandler(routes.routingError),
	)
}

// Metadata keys the gateways set from the HTTP connection. The gRPC servers behind them are
// reachable only in memory through these gateways, so the values can be trusted.
const (
	mdRemoteAddr = "x-tokenvault-remote-addr"
	mdClientSANs = "x-tokenvault-client-san"
)

// clientInfo passes the caller's address and the SANs of its verified client certificate.
func clientInfo(_ context.Context, r *http.Request) metadata.MD {
	md := metadata.MD{}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		md.Set(mdRemoteAddr, host)
	}
	if r.TLS != nil {
		if sans := verifiedSANs(r.TLS.VerifiedChains); len(sans) > 0 {
			md.Set(mdClientSANs, sans...)
		}
	}
	if id, ok := r.Context().Value(keySession).(string); ok {
		md.Set(mdSession, id)
	}
	return md
}

// vendorHTTP serves the vendor listener: POST /v1/tokens:detokenize (the VendorService, on
// its own gRPC server reached over an in-memory connection) and GET /healthz; anything else
// is 404.
func (s *Server) vendorHTTP(ctx context.Context) (http.Handler, func(), error) {
	conn, err := grpc.NewClient("passthrough:///vendor",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.vconn.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("server: vendor gateway connection: %w", err)
	}
	mux := newGatewayMux(nil)
	vc := s.vproc.over(conn)
	if err := tvpb.RegisterVendorServiceHandlerClient(ctx, mux, tvpb.NewVendorServiceClient(vc)); err != nil {
		conn.Close()
		return nil, nil, err
	}
	h := http.NewServeMux()
	serveOnly(h, "GET", "/healthz", http.HandlerFunc(s.healthz))
	viaGateway := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = "/v1/vendor/tokens:detokenize", ""
		mux.ServeHTTP(w, r2)
	})
	serveOnly(h, "POST", "/v1/tokens:detokenize", s.guardBody(s.vauth, s.limits.VendorMaxBody,
		newHotRoute(mux, vc, "/tokenvault.v1.VendorService/VendorDetokenize",
			func() proto.Message { return &tvpb.VendorDetokenizeRequest{} }, func() proto.Message { return &tvpb.VendorDetokenizeResponse{} }, viaGateway)))
	return h, func() { conn.Close() }, nil
}

// streamErrorWriter gives a stream that fails before its first message (401, 403, 503, …)
// the error body of every other route, the google.rpc.Status object: the gateway would wrap
// it as a stream line, {"error": {…}}. Errors after the stream started stay such lines.
type streamErrorWriter struct {
	http.ResponseWriter
	failed bool
}

func (w *streamErrorWriter) WriteHeader(code int) {
	w.failed = code >= 400
	w.ResponseWriter.WriteHeader(code)
}

func (w *streamErrorWriter) Write(p []byte) (int, error) {
	var chunk struct {
		Error json.RawMessage `json:"error"`
	}
	if w.failed && json.Unmarshal(p, &chunk) == nil && len(chunk.Error) > 0 {
		if _, err := w.ResponseWriter.Write(chunk.Error); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets the gateway's http.ResponseController flush the stream.
func (w *streamErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// livez answers 200 while the process serves HTTP, sealed or not: a liveness probe that must
// not restart a vault waiting for its KMS (use /healthz for readiness).
func livez(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"status":"ALIVE"}`)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	resp, err := s.health.Check(r.Context(), &grpc_health_v1.HealthCheckRequest{})
	w.Header().Set("Content-Type", "application/json")
	if err != nil || resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":"NOT_SERVING"}`)
		return
	}
	io.WriteString(w, `{"status":"SERVING"}`)
}

// sanitizingMarshaler is the gateway's JSON marshaler with decode errors stripped of request
// content: protojson quotes the offending input ("invalid value for string field value: 4111…"),
// which may be PII, and the gateway would copy it into the HTTP response.
type sanitizingMarshaler struct {
	runtime.JSONPb
}

var (
	jsonPosRE      = regexp.MustCompile(`\(line \d+:\d+\)`)
	unknownFieldRE = regexp.MustCompile(`unknown field "([a-zA-Z_][a-zA-Z0-9_]{0,63})"`)
)

func (m *sanitizingMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		// Read the whole body and decode it strictly: trailing data after the JSON value is an
		// error, not ignored.
		data, err := io.ReadAll(r)
		return m.decode(data, err, v)
	})
}

// decode decodes a request body, data as read with the read error err, into v: the
// gateway's decoder, which hotRoute calls too.
func (m *sanitizingMarshaler) decode(data []byte, err error, v any) error {
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return fmt.Errorf("request body larger than %d bytes", maxErr.Limit)
	}
	if err != nil {
		return errors.New("cannot read the request body")
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return io.EOF
	}
	if decodeFast(data, v) { // tokenize and detokenize in plain JSON (jsonfast.go)
		return nil
	}
	err = m.JSONPb.Unmarshal(data, v)
	if err != nil {
		// The docs' short enum names ("mode": "deterministic"): tried only after a
		// failure, so well-formed requests pay nothing.
		if pm := messageOf(v); pm != nil {
			if expanded, changed := expandEnumShortNames(data, pm); changed && m.JSONPb.Unmarshal(expanded, v) == nil {
				err = nil
			}
		}
	}
	if err == nil && !oneJSONValue(data) {
		err = errors.New("trailing data after the JSON value")
	}
	if err != nil {
		// Plain errors: the gateway wraps them in an InvalidArgument status itself.
		msg := "malformed JSON request body"
		if pos := jsonPosRE.FindString(err.Error()); pos != "" {
			msg += " at " + pos[1:len(pos)-1]
		}
		// The name of an unknown field is schema-shaped, not data: say it (values never).
		if f := unknownFieldRE.FindStringSubmatch(err.Error()); f != nil {
			msg += ": unknown field " + strconv.Quote(f[1])
		}
		return errors.New(msg + ": check the field names and types against /openapi.json (values are JSON strings; durations like \"3600s\"; enums like \"masked\" or \"REVEAL_MASKED\")")
	}
	return nil
}

// StreamContentType labels the gateway's server streams (GET /v1/audit:export, GET
// /v1/backup): one JSON object a line, {"result": …} or a last {"error": …}.
func (m *sanitizingMarshaler) StreamContentType(any) string { return "application/x-ndjson" }

func (m *sanitizingMarshaler) Unmarshal(data []byte, v any) error {
	if err := m.JSONPb.Unmarshal(data, v); err != nil {
		return status.Error(codes.InvalidArgument, "malformed JSON")
	}
	return nil
}

// Marshal writes the replies of tokenize and detokenize by hand when it can (jsonfast.go),
// everything else with protojson.
func (m *sanitizingMarshaler) Marshal(v any) ([]byte, error) {
	if b, ok := marshalFast(v); ok {
		return b, nil
	}
	return m.JSONPb.Marshal(v)
}

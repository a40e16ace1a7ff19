package server

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
)

// HTTP conventions every listener follows, whatever answers the request (the gateway, the
// records handler, a body or connection guard, the health and metrics handlers):
//
//   - every response carries X-Request-Id: the caller's when well-formed, else a new one, the
//     same id the RPC logs and audits;
//   - a 401 carries an RFC 6750 challenge, Bearer realm="tokenvault" (with
//     error="invalid_token" when credentials were sent); the human message stays in the body;
//   - 429 and 503 carry Retry-After in seconds: the grant's own delay when a rate refused the
//     call, else DefaultRetryAfter429 / DefaultRetryAfter503;
//   - a request body must be JSON: a Content-Type other than application/json (or a +json
//     type) is refused with 415 before anything reads the body. A body without Content-Type
//     is taken as JSON;
//   - a path served with another method answers 405 with Allow (see routingError).
const (
	DefaultRetryAfter429 = "60"
	DefaultRetryAfter503 = "1"
)

// bearerChallenge is the WWW-Authenticate header of a 401 (RFC 6750, section 3).
func bearerChallenge(r *http.Request) string {
	if r.Header.Get("Authorization") == "" {
		return `Bearer realm="tokenvault"`
	}
	return `Bearer realm="tokenvault", error="invalid_token"`
}

// withHTTPConventions wraps one listener's handler with the conventions above.
func withHTTPConventions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := requestIDFrom(r)
		// The gateway forwards the header: the RPC takes this id for its logs and audit. One
		// value slice serves the request, the response and WriteHeader (Set would make three).
		idv := []string{id}
		r.Header["X-Request-Id"] = idv
		w.Header()["X-Request-Id"] = idv
		cw := &conventionWriter{ResponseWriter: w, r: r, id: idv}
		if hasBody(r) && !isJSONContentType(r.Header.Get("Content-Type")) {
			w.Header().Set("Accept", "application/json")
			w.Header().Set("Connection", "close")
			writeJSONError(cw, http.StatusUnsupportedMediaType, codes.InvalidArgument,
				"request bodies are JSON: send Content-Type: application/json")
			return
		}
		next.ServeHTTP(cw, r)
	})
}

func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody
}

// isJSONContentType accepts no Content-Type, application/json and application/*+json, with
// any parameters (charset).
func isJSONContentType(ct string) bool {
	if ct == "" || ct == "application/json" { // the usual one, without parsing (a map per call)
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || (strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"))
}

// conventionWriter fixes the headers of a response as its status is written.
type conventionWriter struct {
	http.ResponseWriter
	r     *http.Request
	id    []string // the X-Request-Id header's value
	wrote bool
}

func (w *conventionWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		h := w.Header()
		// The gateway adds the RPC's x-request-id header again: keep one.
		h["X-Request-Id"] = w.id
		switch code {
		case http.StatusUnauthorized:
			h.Set("WWW-Authenticate", bearerChallenge(w.r))
		case http.StatusTooManyRequests:
			if h.Get("Retry-After") == "" {
				h.Set("Retry-After", DefaultRetryAfter429)
			}
		case http.StatusServiceUnavailable:
			if h.Get("Retry-After") == "" {
				h.Set("Retry-After", DefaultRetryAfter503)
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *conventionWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (write deadlines of streams).
func (w *conventionWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes flushes on, for the streaming endpoints.
func (w *conventionWriter) Flush() {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// gatewayRoutes are the method and path pattern of every gateway route, from the OpenAPI
// document generated with the gateway code (so they cannot drift apart).
type gatewayRoutes []gatewayRoute

type gatewayRoute struct {
	re      *regexp.Regexp
	methods []string
}

var pathParamRE = regexp.MustCompile(`\{[^}]+\}`)

// routesFromSpec reads the paths of a Swagger/OpenAPI document.
func routesFromSpec(spec []byte) (gatewayRoutes, error) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(spec, &doc); err != nil {
		return nil, fmt.Errorf("server: reading the OpenAPI paths: %w", err)
	}
	var rs gatewayRoutes
	for p, ops := range doc.Paths {
		var expr strings.Builder
		expr.WriteString("^")
		for i, part := range pathParamRE.Split(p, -1) {
			if i > 0 {
				expr.WriteString(`[^/:]+`) // a parameter never holds the ":verb" of a custom method
			}
			expr.WriteString(regexp.QuoteMeta(part))
		}
		expr.WriteString("$")
		var ms []string
		for m := range ops {
			switch m {
			case "get", "post", "put", "patch", "delete":
				ms = append(ms, strings.ToUpper(m))
			}
		}
		slices.Sort(ms)
		rs = append(rs, gatewayRoute{re: regexp.MustCompile(expr.String()), methods: ms})
	}
	return rs, nil
}

// allow lists the methods served on path.
func (rs gatewayRoutes) allow(path string) []string {
	var ms []string
	for _, r := range rs {
		if r.re.MatchString(path) {
			ms = append(ms, r.methods...)
		}
	}
	slices.Sort(ms)
	return slices.Compact(ms)
}

// routingError answers the gateway's routing failures: 404 for an unknown path, 405 with
// Allow for a known path asked with another method (the gateway's default says 501), 400
// otherwise; each with the google.rpc.Status JSON body of every other error.
func (rs gatewayRoutes) routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus == http.StatusMethodNotAllowed {
		methodNotAllowed(strings.Join(rs.allow(r.URL.Path), ", ")).ServeHTTP(w, r)
		return
	}
	runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
}

// serveOnly registers handler for method on path in h, and a 405 with Allow: method for the
// path's other methods (which would otherwise fall through to the gateway's 404).
func serveOnly(h *http.ServeMux, method, path string, handler http.Handler) {
	h.Handle(method+" "+path, handler)
	h.Handle(path, methodNotAllowed(method))
}

// methodNotAllowed answers 405 with Allow: method, for the paths the listener serves itself.
func methodNotAllowed(method string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", method)
		writeJSONError(w, http.StatusMethodNotAllowed, codes.Unimplemented,
			fmt.Sprintf("method %s is not allowed on this path; see the Allow header", r.Method))
	})
}

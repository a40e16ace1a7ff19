package server_test

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
)

// caller is one identity of the allow-matrix test; "" is an anonymous caller. scope names the
// credential's scope ("" unscoped): a scope limits items, never which methods a role may call.
type caller struct {
	role   vault.Role
	scope  string
	secret string
}

// String names the caller in failures.
func (c caller) String() string {
	if c.scope == "" {
		return string(c.role)
	}
	return string(c.role) + " (" + c.scope + ")"
}

// matrixScopes are the scoped variants of the tokenizer and detokenizer credentials.
var matrixScopes = map[string]vault.Scope{
	"a/pan":    {Domains: []string{"a"}, Templates: []string{"pan"}},
	"a/masked": {Domains: []string{"a"}, Reveal: vault.RevealMasked},
}

func callers(t *testing.T, h *testenv.Env) []caller {
	t.Helper()
	out := []caller{{role: "", secret: ""}}
	add := func(spec vault.CredentialSpec, scope string) {
		_, secret, err := h.Vault.CreateCredential(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, caller{role: spec.Role, scope: scope, secret: secret})
	}
	for _, r := range vault.Roles() {
		vendor := ""
		if r == vault.RoleVendor {
			vendor = "acme"
		}
		add(vault.CredentialSpec{Name: "matrix-" + string(r), Role: r, Vendor: vendor}, "")
		for name, sc := range matrixScopes {
			if (r == vault.RoleTokenizer && sc.Reveal == "") || r == vault.RoleDetokenizer {
				add(vault.CredentialSpec{Name: "matrix-" + string(r) + "-" + strings.ReplaceAll(name, "/", "-"), Role: r, Scope: sc}, name)
			}
		}
	}
	return out
}

// expected is what the table says: may this caller call method on listener l?
func expected(policy map[string]server.Rule, method string, l server.Listener, c caller) bool {
	r, ok := policy[method]
	if !ok || (r.Listener != server.Both && r.Listener != l) {
		return false
	}
	if r.Public {
		return true
	}
	return c.role != "" && r.Allows(c.role)
}

func denied(code codes.Code) bool {
	return code == codes.Unauthenticated || code == codes.PermissionDenied
}

func httpDenied(code int) bool {
	return code == http.StatusUnauthorized || code == http.StatusForbidden
}

func methodDesc(t *testing.T, full string) protoreflect.MethodDescriptor {
	t.Helper()
	parts := strings.Split(strings.TrimPrefix(full, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(parts[0]))
	if err != nil {
		t.Fatalf("%s: %v", full, err)
	}
	m := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(parts[1]))
	if m == nil {
		t.Fatalf("%s: no such method", full)
	}
	return m
}

// httpRoute returns the method's HTTP verb and path (path parameters filled with "1").
func httpRoute(m protoreflect.MethodDescriptor) (string, string, bool) {
	rule, ok := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
	if !ok || rule == nil {
		return "", "", false
	}
	var verb, path string
	switch p := rule.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		verb, path = "GET", p.Get
	case *annotations.HttpRule_Post:
		verb, path = "POST", p.Post
	default:
		return "", "", false
	}
	for strings.Contains(path, "{") {
		i, j := strings.Index(path, "{"), strings.Index(path, "}")
		path = path[:i] + "1" + path[j+1:]
	}
	return verb, path, true
}

// customRoutes are HTTP routes served by hand rather than by the gateway's annotations.
var customRoutes = map[string]string{
	tvpb.RecordService_TokenizeRecords_FullMethodName:   "/v1/records:tokenize",
	tvpb.RecordService_DetokenizeRecords_FullMethodName: "/v1/records:detokenize",
}

// TestAllowMatrix calls every RPC of every service, on every listener, with every role and
// with no credential, over gRPC and over HTTP, and checks that what is allowed is exactly what
// the authorization table says. An RPC without a table entry fails the test.
func TestAllowMatrix(t *testing.T) { testenv.ForBackends(t, &pg, testAllowMatrix) }

func testAllowMatrix(t *testing.T, backend testenv.Option) {
	h := testenv.Start(t, backend)
	policy := server.Policy(false)
	cs := callers(t, h)
	methods := 0
	for l, gs := range h.Server.GRPCServers() {
		var names []string
		for svc, info := range gs.GetServiceInfo() {
			for _, m := range info.Methods {
				names = append(names, "/"+svc+"/"+m.Name)
			}
		}
		sort.Strings(names)
		for _, full := range names {
			if _, ok := policy[full]; !ok {
				t.Errorf("%s (%s listener) has no entry in the authorization table", full, l)
				continue
			}
			methods++
			md := methodDesc(t, full)
			for _, c := range cs {
				want := expected(policy, full, l, c)
				// gRPC: only the internal listener is a gRPC endpoint.
				if l == server.Internal && !md.IsStreamingServer() && !md.IsStreamingClient() {
					in := dynamicpb.NewMessage(md.Input())
					out := dynamicpb.NewMessage(md.Output())
					err := h.Conn.Invoke(authCtx(c.secret), full, in, out)
					if got := !denied(status.Code(err)); got != want {
						t.Errorf("gRPC %s as %q: allowed=%v (%v), table says %v", full, c, got, err, want)
					}
				}
				verb, path, ok := httpRoute(md)
				if custom, isCustom := customRoutes[full]; isCustom {
					verb, path, ok = "POST", custom, true
				}
				if !ok {
					continue
				}
				url := h.URL(path)
				if l == server.Vendor {
					path = "/v1/tokens:detokenize"
					url = h.VendorURL(path)
				}
				var body any // none for GET and DELETE
				if verb == "POST" {
					body = "{}"
				}
				code, _ := h.Do(verb, url, c.secret, body)
				if got := !httpDenied(code); got != want {
					t.Errorf("HTTP %s %s%s as %q: status %d, table says allowed=%v", verb, l, path, c, code, want)
				}
			}
		}
	}
	if methods < 12 {
		t.Fatalf("walked only %d methods", methods)
	}
	// Cross-listener: internal paths do not exist on the vendor listener, and vendor
	// credentials open nothing on the internal one.
	for _, c := range cs {
		code, _ := h.Do("POST", h.VendorURL("/v1/tokens:tokenize"), c.secret, "{}")
		if code != http.StatusNotFound {
			t.Errorf("vendor listener /v1/tokens:tokenize as %q: %d, want 404", c, code)
		}
	}
}

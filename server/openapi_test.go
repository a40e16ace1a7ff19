package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tokenvault/tokenvault/internal/testenv"
)

// TestOpenAPICoversEveryRoute: /openapi.json documents every RPC's HTTP route, with the
// proto comments as descriptions. (CI also regenerates it and fails when it is stale.)
func TestOpenAPICoversEveryRoute(t *testing.T) {
	h := testenv.Start(t)
	code, body := h.Do("GET", "/openapi.json", "", nil)
	if code != http.StatusOK {
		t.Fatalf("/openapi.json = %d", code)
	}
	// Path items hold operations by method, and servers.
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	decodeInto(t, body, &spec)
	type operation struct {
		Summary     string `json:"summary"`
		Description string `json:"description"`
	}
	if _, ok := spec.Paths["/v1/vendor/tokens:detokenize"]; ok {
		t.Error("the spec documents the vendor gateway's internal route /v1/vendor/tokens:detokenize")
	}
	n := 0
	for _, gs := range h.Server.GRPCServers() {
		for svc, info := range gs.GetServiceInfo() {
			for _, m := range info.Methods {
				md := methodDesc(t, "/"+svc+"/"+m.Name)
				verb, path, ok := httpRoute(md)
				if !ok {
					continue
				}
				if path == "/v1/vendor/tokens:detokenize" {
					// Served by the vendor listener as POST /v1/tokens:detokenize, which must
					// then name the vendor listener among its servers.
					path = "/v1/tokens:detokenize"
					if !strings.Contains(string(spec.Paths[path]["servers"]), "vendor listener") {
						t.Errorf("%s does not name the vendor listener as a server: %s", path, spec.Paths[path]["servers"])
					}
				}
				// The generator writes path parameters as {name}; httpRoute filled them in.
				found := false
				for p, ops := range spec.Paths {
					if strings.Count(p, "/") != strings.Count(path, "/") {
						continue
					}
					if raw, ok := ops[strings.ToLower(verb)]; ok && routeMatches(p, path) {
						found = true
						var op operation
						decodeInto(t, raw, &op)
						if op.Summary == "" && op.Description == "" {
							t.Errorf("%s %s has no description", verb, p)
						}
					}
				}
				if !found {
					t.Errorf("/openapi.json lacks %s %s (%s/%s)", verb, path, svc, m.Name)
				}
				n++
			}
		}
	}
	if n < 20 {
		t.Fatalf("checked only %d routes", n)
	}
	var raw map[string]any
	if json.Unmarshal(body, &raw) != nil {
		t.Fatal("not JSON")
	}
}

// routeMatches compares a spec path with {params} to a concrete path.
func routeMatches(spec, concrete string) bool {
	sp, cp := strings.Split(spec, "/"), strings.Split(concrete, "/")
	if len(sp) != len(cp) {
		return false
	}
	for i := range sp {
		if strings.HasPrefix(sp[i], "{") {
			if j := strings.Index(sp[i], "}"); j >= 0 && strings.HasSuffix(cp[i], sp[i][j+1:]) {
				continue
			}
			return false
		}
		if sp[i] != cp[i] {
			return false
		}
	}
	return true
}

package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenvault/tokenvault/internal/testenv"
)

func TestHealth(t *testing.T) {
	h := testenv.Start(t)
	for _, addr := range []string{h.Addrs.HTTP, h.Addrs.Vendor} {
		code, body := h.Do("GET", "http://"+addr+"/healthz", "", nil)
		if code != http.StatusOK || !strings.Contains(string(body), "SERVING") {
			t.Errorf("%s/healthz = %d %s", addr, code, body)
		}
	}
	resp, err := grpc_health_v1.NewHealthClient(h.Conn).Check(context.Background(), &grpc_health_v1.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Errorf("gRPC health = %v, %v", resp, err)
	}
	// The vendor listener serves nothing else.
	code, _ := h.Do("POST", h.VendorURL("/v1/tokens:tokenize"), rootSecret, "{}")
	if code != http.StatusNotFound {
		t.Errorf("vendor listener tokenize = %d, want 404", code)
	}
	code, body := h.Do("GET", "/metrics", rootSecret, nil)
	if code != http.StatusOK || !strings.Contains(string(body), "tokenvault_requests_total") {
		t.Errorf("/metrics = %d", code)
	}
	for _, m := range []string{"tokenvault_live_grants 0", "tokenvault_store_bytes", "tokenvault_primary_data_key_age_seconds", "tokenvault_audit_seq", "tokenvault_sealed 0"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
	code, body = h.Do("GET", "/openapi.json", "", nil)
	if code != http.StatusOK || !strings.Contains(string(body), "/v1/tokens:tokenize") {
		t.Errorf("/openapi.json = %d", code)
	}
}

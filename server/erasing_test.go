package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenvault/tokenvault/vault"
)

// A tokenize that waited for an erasure of its subject until its deadline is UNAVAILABLE
// (HTTP 503): retrying is safe. The message says what to do and names no subject.
func TestSubjectErasingStatus(t *testing.T) {
	var logs strings.Builder
	err := toStatus(context.Background(), slog.New(slog.NewJSONHandler(&logs, nil)),
		errors.Join(errors.New("storing tokens"), &vault.RetryAfterError{Err: vault.ErrSubjectErasing, After: time.Second}))
	// An expected wait, not an outage: logged as a warning, never at ERROR.
	if !strings.Contains(logs.String(), `"level":"WARN"`) || strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("log = %s; want one warning and no error", logs.String())
	}
	st, _ := status.FromError(err)
	if st.Code() != codes.Unavailable {
		t.Errorf("code = %v, want Unavailable", st.Code())
	}
	if !strings.Contains(st.Message(), "being erased; retry") || !strings.Contains(st.Message(), "nothing was stored") {
		t.Errorf("message = %q; want it to say a subject is being erased, nothing was stored, and to retry", st.Message())
	}
}

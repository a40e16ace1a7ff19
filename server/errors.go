package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	rpccode "google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/store"
)

// codeOf is the one table from vault errors to gRPC codes, matched with errors.Is in order.
// Anything else is Internal.
func codeOf(err error) codes.Code {
	switch {
	case errors.Is(err, vault.ErrUnauthenticated):
		return codes.Unauthenticated
	case errors.Is(err, vault.ErrUnknownTemplate),
		errors.Is(err, vault.ErrBatchTooLarge),
		errors.Is(err, vault.ErrEmptyBatch),
		errors.Is(err, vault.ErrInvalidArgument),
		errors.Is(err, vault.ErrInvalidTemplate),
		errors.Is(err, vault.ErrInvalidPolicy),
		errors.Is(err, vault.ErrInvalidDocument),
		errors.Is(err, vault.ErrRecordLimit),
		errors.Is(err, vault.ErrInvalidValue):
		return codes.InvalidArgument
	case errors.Is(err, vault.ErrPermissionDenied), errors.Is(err, vault.ErrOutOfScope):
		return codes.PermissionDenied
	case errors.Is(err, vault.ErrRateLimited), errors.Is(err, vault.ErrQuotaExhausted):
		return codes.ResourceExhausted
	case errors.Is(err, vault.ErrGrantNotFound):
		return codes.NotFound
	case errors.Is(err, vault.ErrKeyInUse), errors.Is(err, vault.ErrKeyState), errors.Is(err, vault.ErrCredentialState),
		errors.Is(err, vault.ErrNoSuchVendor):
		return codes.FailedPrecondition
	case errors.Is(err, vault.ErrNoSuchKey):
		return codes.NotFound
	case errors.Is(err, vault.ErrTemplateExists), errors.Is(err, vault.ErrCredentialExists):
		return codes.AlreadyExists
	case errors.Is(err, vault.ErrNotFound), errors.Is(err, vault.ErrCredentialNotFound), errors.Is(err, vault.ErrNoAuditEvent):
		return codes.NotFound
	case errors.Is(err, vault.ErrTokenSpaceExhausted):
		return codes.ResourceExhausted
	case errors.Is(err, vault.ErrSubjectErasing):
		return codes.Unavailable
	case errors.Is(err, store.ErrCommitUnknown), errors.Is(err, store.ErrUnavailable):
		// Before the context cases: an unknown commit outcome may wrap the deadline that
		// ended it, and the caller must learn that the outcome is unknown.
		return codes.Unavailable
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, store.ErrClosed):
		return codes.Unavailable
	}
	return codes.Internal
}

// toStatus converts a whole-call vault error into a gRPC status error. Internal errors are
// logged with the request id and answered with an opaque message naming that id.
func toStatus(ctx context.Context, log *slog.Logger, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isVaultErr(err) {
		return err
	}
	c := codeOf(err)
	var ra *vault.RetryAfterError
	if errors.As(err, &ra) && ra.After > 0 {
		// Forwarded by the gateways as the HTTP Retry-After header.
		_ = grpc.SetHeader(ctx, metadata.Pairs("retry-after", strconv.Itoa(int(math.Ceil(ra.After.Seconds())))))
	}
	if c == codes.Internal || c == codes.Unavailable {
		id := requestID(ctx)
		if errors.Is(err, vault.ErrSubjectErasing) {
			// Expected while a subject is erased, not an outage: a warning (no subject in it).
			log.WarnContext(ctx, "request waited past its deadline for an erasure of its subject", slog.String("request_id", id))
		} else {
			log.ErrorContext(ctx, "request failed", slog.String("request_id", id), slog.String("error", err.Error()))
		}
		return status.Error(c, opaqueMessage(err, c, id))
	}
	return status.Error(c, err.Error())
}

// opaqueMessage is what a caller is told of an Internal or Unavailable error: what to do, and
// the request id under which the cause is logged; never the cause itself (it may name the
// database, its address or a statement).
func opaqueMessage(err error, c codes.Code, id string) string {
	switch {
	case c == codes.Internal:
		if errors.Is(err, vault.ErrIntegrity) {
			return vault.ErrIntegrity.Error() + " (request id " + id + ")"
		}
		return "internal error (request id " + id + ")"
	case errors.Is(err, store.ErrCommitUnknown):
		return "the vault lost its database connection while committing: the outcome is unknown and nothing was revealed; check before repeating a change, retry later (request id " + id + ")"
	case errors.Is(err, store.ErrUnavailable):
		return "the vault cannot reach its database; retry later, or on another replica (request id " + id + ")"
	case errors.Is(err, vault.ErrSubjectErasing):
		return vault.ErrSubjectErasing.Error() + "; nothing was stored (request id " + id + ")"
	}
	return "the vault is not available; retry later (request id " + id + ")"
}

func isVaultErr(err error) bool { return codeOf(err) != codes.Internal }

// itemError converts a per-item vault error into the API's ItemError.
func itemError(ctx context.Context, log *slog.Logger, err error) *tvpb.ItemError {
	c := codeOf(err)
	msg := err.Error()
	if c == codes.Internal || c == codes.Unavailable {
		id := requestID(ctx)
		log.ErrorContext(ctx, "item failed", slog.String("request_id", id), slog.String("error", err.Error()))
		msg = opaqueMessage(err, c, id)
	}
	return &tvpb.ItemError{Code: rpccode.Code(c).String(), Message: msg}
}

// writeJSONError writes an error body shaped like the gateway's ({"code":…,"message":…}) with
// an HTTP status of its own: for answers no gRPC code maps to (413 for an oversized body),
// given before a request reaches the gateway. Everything else goes through the gateway's
// error handler and runtime.HTTPStatusFromCode.
func writeJSONError(w http.ResponseWriter, code int, grpcCode codes.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]any{"code": int(grpcCode), "message": msg})
	w.Write(b)
}

// oneJSONValue reports whether data is exactly one JSON value, give or take white space: the
// HTTP bodies refuse trailing data after it rather than ignoring it.
func oneJSONValue(data []byte) bool { return json.Valid(data) }

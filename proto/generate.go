// Package proto holds tokenvault's Protocol Buffers definitions (proto/tokenvault/v1) and the
// generated Go, gRPC and grpc-gateway code beside them.
//
// Regenerate everything after editing a .proto file, from the repository root:
//
//	go generate ./proto
//
// buf runs offline with local plugins pinned in tools/go.mod; CI fails when the committed
// generated code differs from what this produces.
package proto

//go:generate sh -c "cd .. && go tool -modfile=tools/go.mod buf lint && go tool -modfile=tools/go.mod buf generate && go run ./server/openapi/gen"

// Package proto holds tokenvault's Protocol Buffers definitions (proto/tokenvault/v1) and the
// generated Go, gRPC and grpc-gateway code beside them.
//
// It also writes the OpenAPI 3.1 document server/openapi/tokenvault.openapi.json: buf's
// protoc-gen-openapiv2 writes Swagger 2.0, which server/openapi/gen converts and completes.
//
// Regenerate everything after editing a .proto file, from the repository root:
//
//	go generate ./proto
//
// buf runs offline with local plugins pinned in tools/go.mod; CI fails when the committed
// generated code differs from what this produces.
package proto

//go:generate sh -c "cd .. && go tool -modfile=tools/go.mod buf lint && go tool -modfile=tools/go.mod buf generate && go run ./server/openapi/gen"

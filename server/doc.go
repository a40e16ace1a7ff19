// Package server is tokenvault's network edge: the gRPC server, the grpc-gateway HTTP/JSON
// front, authentication and the authorization table, input validation, request logging,
// metrics, and the one translation of vault errors into gRPC status codes.
//
// # Basics
//
// [New] assembles a [Server] from a [Config]; [Server.Run] listens on the internal gRPC
// address, the internal HTTP address and the vendor address until its context ends, then
// stops gracefully. The HTTP gateway calls the gRPC server's methods through the server's own
// interceptor chain, so every interceptor (recovery, request id, logging, authentication and
// authorization, protovalidate) runs once for HTTP calls too: unary methods in process
// (inproc.go, no protobuf encoding or HTTP/2 framing), streams over an in-memory connection.
// The hottest bodies and replies (tokenize, detokenize) skip protojson when they are plain
// (jsonfast.go).
//
// Authorization lives in one table keyed by full gRPC method name ([Policy]); a method that
// is not in the table is refused (fail closed).
//
// # Caveats
//
// Request and response bodies are never logged. Status messages go to callers verbatim (the
// gateway copies them into HTTP bodies), so they never contain values, tokens or secrets.
package server

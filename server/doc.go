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
// (jsonfast.go), and their routes skip the gateway's generic routing and header annotation
// while keeping its decoder, error handler and response writer (hotroute.go). An HTTP or
// unary gRPC call that comes without a deadline gets the server's once, shared by its
// authentication and its handler.
//
// Authorization lives in one table keyed by full gRPC method name ([Policy]); a method that
// is not in the table is refused (fail closed).
//
// The web console (package console) is served at /ui/ on the internal HTTP listener. Its
// session cookie authenticates REST calls through the same path (consoleauth.go): the
// session's credential is re-read on every call, and [ConsoleMethods] says which methods a
// session may call at all (none that returns a value).
//
// # Caveats
//
// Request and response bodies are never logged. Status messages go to callers verbatim (the
// gateway copies them into HTTP bodies), so they never contain values, tokens or secrets.
package server

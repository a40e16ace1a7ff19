// Command gen writes tokenvault's OpenAPI 3.1 document, server/openapi/tokenvault.openapi.json,
// from the Swagger 2.0 file protoc-gen-openapiv2 writes (go generate ./proto runs both).
//
// It converts the Swagger file with kin-openapi's openapi2conv, then completes what the
// protos cannot say through protoc-gen-openapiv2:
//
//   - the limits the server enforces with protovalidate (buf.validate rules read from the
//     compiled descriptors: lengths, patterns, item counts, ranges, required fields) and
//     additionalProperties: false on request bodies, whose unknown fields the server refuses;
//   - the listeners (the internal HTTP listener and the vendor listener as servers), the
//     security of each operation (HTTP bearer, mutual TLS on the vendor listener);
//   - the error responses of the HTTP conventions (server/httpconv.go) with their headers;
//   - the routes the server serves outside the gateway (records, health, metrics, the spec);
//   - newline-delimited JSON for the streaming routes.
//
// The gateway route of the vendor RPC (/v1/vendor/tokens:detokenize) is plumbing behind the
// vendor listener's POST /v1/tokens:detokenize: it is not in the document.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/tokenvault/tokenvault/proto/tokenvault/v1" // registers the descriptors
)

// obj is a JSON object of the document being built.
type obj = map[string]any

func main() {
	in := flag.String("in", "server/openapi/tokenvault.swagger.json", "the Swagger 2.0 input (removed after conversion)")
	out := flag.String("out", "server/openapi/tokenvault.openapi.json", "the OpenAPI 3.1 output")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "openapi gen:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	doc, err := convert(data)
	if err != nil {
		return err
	}
	if err := complete(doc); err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Remove(in)
}

// convert turns the Swagger 2.0 document into a generic OpenAPI 3 object.
func convert(swagger []byte) (obj, error) {
	var d2 openapi2.T
	if err := json.Unmarshal(swagger, &d2); err != nil {
		return nil, fmt.Errorf("reading the Swagger input: %w", err)
	}
	d3, err := openapi2conv.ToV3(&d2)
	if err != nil {
		return nil, fmt.Errorf("converting to OpenAPI 3: %w", err)
	}
	b, err := json.Marshal(d3)
	if err != nil {
		return nil, err
	}
	var doc obj
	return doc, json.Unmarshal(b, &doc)
}

const (
	pkgPrefix = "tokenvault.v1."
	// The committed document's version; the server sets its own build's when serving it.
	devVersion = "0.0.0-dev"
)

// complete adds to the converted document what the Swagger file lacks (see the package doc).
func complete(doc obj) error {
	doc["openapi"] = "3.1.0"
	doc["info"] = obj{
		"title":   "tokenvault API",
		"version": devVersion,
		"summary": "Tokenization and PII vault: the internal HTTP/JSON API and the vendor listener.",
		"description": "Generated from the protos (proto/tokenvault/v1) by go generate ./proto. " +
			"JSON field names are lowerCamelCase here; the server also accepts lower_snake_case. " +
			"Enum values are the full names shown (e.g. REVEAL_MASKED); the server also accepts their numbers " +
			"and short names (masked). 64-bit integers and durations (\"3600s\") are JSON strings. " +
			"Every response carries X-Request-Id. A path asked with a method it does not serve answers 405 " +
			"with an Allow header and the error body. Errors have the body of components/schemas/Status.",
	}
	doc["servers"] = []any{internalServer()}
	delete(doc, "security")
	schemas, err := renameSchemas(doc)
	if err != nil {
		return err
	}
	paths := doc["paths"].(obj)
	delete(paths, "/v1/vendor/tokens:detokenize")
	if err := applyRules(schemas, paths); err != nil {
		return err
	}
	documentEnums(schemas)
	addHandServed(paths, schemas)
	doc["tags"] = append(doc["tags"].([]any), obj{"name": "Operations", "description": "Health, metrics and this document."})
	comps := doc["components"].(obj)
	comps["securitySchemes"] = obj{
		"bearer": obj{"type": "http", "scheme": "bearer",
			"description": "A tokenvault credential's secret (or, if configured, a JWT from the trusted issuer): Authorization: Bearer <secret>."},
		"vendorMutualTLS": obj{"type": "mutualTLS",
			"description": "The vendor listener's TLS with a client certificate signed by its client CA (in production; --vendor-tls-* flags)."},
	}
	comps["headers"] = obj{"X-Request-Id": requiredHeader("X-Request-Id")}
	comps["responses"] = errorResponses()
	schemas["Status"] = statusSchema()
	for p, item := range paths {
		for m, op := range item.(obj) {
			op, isOp := op.(obj)
			if !isOp || m == "servers" {
				continue
			}
			if err := completeOperation(p, m, op); err != nil {
				return err
			}
		}
	}
	vendorDetokenize(paths)
	// Request bodies and what they contain: the server refuses unknown fields.
	for _, item := range paths {
		walk(item, func(o obj) {
			if body, ok := o["requestBody"].(obj); ok {
				walk(body, func(r obj) {
					if t, ok := schemas[schemaName(r)].(obj); ok {
						closeSchema(schemas, t)
					}
				})
			}
		})
	}
	return nil
}

func internalServer() obj {
	return obj{"url": "http://127.0.0.1:8080", "description": "The internal HTTP/JSON listener (--http-addr; https with --tls-cert)."}
}

func vendorServer() obj {
	return obj{"url": "https://127.0.0.1:8443", "description": "The vendor listener (--vendor-addr): POST /v1/tokens:detokenize and GET /healthz only. Plain http on loopback without --vendor-tls-cert."}
}

// renameSchemas names the components after their messages without the package
// (tokenvault.v1.TokenService.EraseSubjectBody → TokenServiceEraseSubjectBody) and rewrites
// every reference. It returns the schemas.
func renameSchemas(doc obj) (obj, error) {
	comps := doc["components"].(obj)
	old := comps["schemas"].(obj)
	renames := map[string]string{}
	schemas := obj{}
	for name, s := range old {
		n := strings.ReplaceAll(strings.TrimPrefix(name, pkgPrefix), ".", "")
		switch name {
		case "google.rpc.Status":
			continue // replaced by statusSchema
		case "google.protobuf.Any":
			n = "Any"
		}
		if _, dup := schemas[n]; dup {
			return nil, fmt.Errorf("two schemas named %s", n)
		}
		renames["#/components/schemas/"+name] = "#/components/schemas/" + n
		s.(obj)["x-proto-message"] = name
		schemas[n] = s
	}
	renames["#/components/schemas/google.rpc.Status"] = "#/components/schemas/Status"
	comps["schemas"] = schemas
	walk(doc, func(o obj) {
		delete(o, "x-originalParamName") // openapi2conv's note of the Swagger body parameter
		if ref, ok := o["$ref"].(string); ok {
			if n, ok := renames[ref]; ok {
				o["$ref"] = n
			}
		}
	})
	return schemas, nil
}

// walk calls f on every object of v, depth first.
func walk(v any, f func(obj)) {
	switch v := v.(type) {
	case obj:
		f(v)
		for _, c := range v {
			walk(c, f)
		}
	case []any:
		for _, c := range v {
			walk(c, f)
		}
	}
}

// applyRules carries the protovalidate rules of each message into its schema; the bodies of
// routes with path parameters (…Body) take the rules of their RPC's request message.
func applyRules(schemas, paths obj) error {
	for name, s := range schemas {
		s := s.(obj)
		full, _ := s["x-proto-message"].(string)
		delete(s, "x-proto-message")
		if strings.HasSuffix(name, "Body") {
			// tokenvault.v1.TokenService.EraseSubjectBody: the input of TokenService.EraseSubject.
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(strings.TrimSuffix(full, "Body")))
			if err != nil {
				return fmt.Errorf("%s: %w", full, err)
			}
			full = string(d.(protoreflect.MethodDescriptor).Input().FullName())
		}
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(full))
		if err != nil {
			if strings.HasPrefix(full, "google.") {
				continue
			}
			return fmt.Errorf("%s: %w", full, err)
		}
		if md, ok := d.(protoreflect.MessageDescriptor); ok {
			messageRules(s, md)
		}
	}
	// Query parameters of GET routes.
	for _, item := range paths {
		for _, op := range item.(obj) {
			op, isOp := op.(obj)
			if !isOp {
				continue
			}
			params, _ := op["parameters"].([]any)
			if len(params) == 0 {
				continue
			}
			md := inputOf(op)
			if md == nil {
				continue
			}
			for _, p := range params {
				p := p.(obj)
				if f := fieldByJSONName(md, p["name"].(string)); f != nil {
					if fieldRules(p["schema"].(obj), f) {
						p["required"] = true
					}
				}
			}
		}
	}
	return nil
}

// inputOf is the request message of an operation, from its operationId (Service_Method).
func inputOf(op obj) protoreflect.MessageDescriptor {
	id, _ := op["operationId"].(string)
	svc, m, ok := strings.Cut(id, "_")
	if !ok {
		return nil
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(pkgPrefix + svc + "." + m))
	if err != nil {
		return nil
	}
	return d.(protoreflect.MethodDescriptor).Input()
}

func fieldByJSONName(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if f := md.Fields().ByJSONName(name); f != nil {
		return f
	}
	return md.Fields().ByName(protoreflect.Name(name))
}

func messageRules(s obj, md protoreflect.MessageDescriptor) {
	props, _ := s["properties"].(obj)
	var required []string
	for name, p := range props {
		f := fieldByJSONName(md, name)
		if f == nil {
			continue
		}
		if fieldRules(p.(obj), f) {
			required = append(required, name)
		}
	}
	if len(required) > 0 {
		sort.Strings(required)
		s["required"] = required
	}
}

// fieldRules sets the schema keywords of f's buf.validate rules on s and reports whether the
// field must be present (required, or a non-empty string or list: protojson omits empty ones).
func fieldRules(s obj, f protoreflect.FieldDescriptor) bool {
	r, _ := proto.GetExtension(f.Options(), validate.E_Field).(*validate.FieldRules)
	if r == nil {
		return false
	}
	required := r.GetRequired()
	target := s
	if rep := r.GetRepeated(); rep != nil {
		if rep.MinItems != nil {
			s["minItems"] = rep.GetMinItems()
			required = required || rep.GetMinItems() > 0
		}
		if rep.MaxItems != nil {
			s["maxItems"] = rep.GetMaxItems()
		}
		if items, ok := s["items"].(obj); ok && rep.GetItems() != nil {
			scalarRules(items, rep.GetItems())
		}
		return required
	}
	if _, isRef := target["$ref"]; isRef {
		return required
	}
	return scalarRules(target, r) || required
}

// scalarRules sets string, number and duration rules; it reports a string that may not be empty.
func scalarRules(s obj, r *validate.FieldRules) bool {
	nonEmpty := false
	if str := r.GetString(); str != nil {
		if str.MinLen != nil {
			s["minLength"] = str.GetMinLen()
			nonEmpty = str.GetMinLen() > 0
		}
		if str.MaxLen != nil {
			s["maxLength"] = str.GetMaxLen()
		}
		if str.MaxBytes != nil {
			if _, ok := s["maxLength"]; !ok {
				s["maxLength"] = str.GetMaxBytes() // a character is at least a byte
			}
			appendDescription(s, fmt.Sprintf("At most %d bytes of UTF-8.", str.GetMaxBytes()))
		}
		if str.MinBytes != nil && str.GetMinBytes() > 0 {
			s["minLength"] = 1
			nonEmpty = true
		}
		if str.Pattern != nil {
			s["pattern"] = str.GetPattern()
		}
		if len(str.GetIn()) > 0 {
			s["enum"] = str.GetIn()
		}
	}
	numeric := func(gt, gte, lt, lte *float64) {
		if gte != nil {
			s["minimum"] = *gte
		}
		if gt != nil {
			s["exclusiveMinimum"] = *gt
		}
		if lte != nil {
			s["maximum"] = *lte
		}
		if lt != nil {
			s["exclusiveMaximum"] = *lt
		}
	}
	if n := r.GetInt32(); n != nil {
		numeric(f64(n.HasGt(), float64(n.GetGt())), f64(n.HasGte(), float64(n.GetGte())), f64(n.HasLt(), float64(n.GetLt())), f64(n.HasLte(), float64(n.GetLte())))
	}
	if n := r.GetUint32(); n != nil {
		numeric(f64(n.HasGt(), float64(n.GetGt())), f64(n.HasGte(), float64(n.GetGte())), f64(n.HasLt(), float64(n.GetLt())), f64(n.HasLte(), float64(n.GetLte())))
	}
	if d := r.GetDuration(); d != nil {
		var limits []string
		if d.HasGte() {
			limits = append(limits, fmt.Sprintf("at least %ds", d.GetGte().GetSeconds()))
		}
		if d.HasGt() {
			limits = append(limits, fmt.Sprintf("more than %ds", d.GetGt().GetSeconds()))
		}
		if d.HasLte() {
			limits = append(limits, fmt.Sprintf("at most %ds", d.GetLte().GetSeconds()))
		}
		s["pattern"] = `^-?[0-9]+(\.[0-9]{1,9})?s$`
		if len(limits) > 0 {
			appendDescription(s, "A duration in seconds such as \"3600s\": "+strings.Join(limits, ", ")+".")
		}
	}
	return nonEmpty
}

func f64(ok bool, v float64) *float64 {
	if !ok {
		return nil
	}
	return &v
}

func appendDescription(s obj, text string) {
	if d, _ := s["description"].(string); d != "" {
		s["description"] = d + "\n\n" + text
		return
	}
	s["description"] = text
}

// closeSchema sets additionalProperties: false on a request schema and the objects it
// references: the server refuses unknown fields.
func closeSchema(schemas obj, s obj) {
	if _, done := s["additionalProperties"]; done || s["type"] != "object" {
		return
	}
	s["additionalProperties"] = false
	walk(s["properties"], func(o obj) {
		if t, ok := schemas[schemaName(o)].(obj); ok {
			closeSchema(schemas, t)
		}
	})
}

// schemaName is the component a {"$ref": "#/components/schemas/Name"} names, else "".
func schemaName(o obj) string {
	ref, _ := o["$ref"].(string)
	name, ok := strings.CutPrefix(ref, "#/components/schemas/")
	if !ok {
		return ""
	}
	return name
}

// documentEnums says on every enum which spellings the server accepts.
func documentEnums(schemas obj) {
	for _, s := range schemas {
		s := s.(obj)
		if _, ok := s["enum"]; ok && s["type"] == "string" {
			appendDescription(s, "Requests may also use the value's number or its short name (the part after the type's prefix, lower case).")
		}
	}
}

func ref(kind, name string) obj { return obj{"$ref": "#/components/" + kind + "/" + name} }

// statusSchema is the body of every error: google.rpc.Status as the gateway writes it.
func statusSchema() obj {
	return obj{
		"type":        "object",
		"description": "An error: the gRPC status code, a message for humans, and details (google.rpc.Status).",
		"required":    []any{"code", "message"},
		"properties": obj{
			"code":    obj{"type": "integer", "format": "int32", "description": "The gRPC status code (3 invalid argument, 5 not found, 7 permission denied, 8 resource exhausted, 14 unavailable, 16 unauthenticated, …)."},
			"message": obj{"type": "string", "description": "What went wrong; never a value or token of the request."},
			"details": obj{"type": "array", "items": ref("schemas", "Any")},
		},
	}
}

func commonHeaders() obj {
	return obj{
		"X-Request-Id": obj{"description": "The request's id: the caller's X-Request-Id when well-formed, else a new one; logs and audit events carry it.",
			"schema": obj{"type": "string"}},
		"Retry-After": obj{"description": "Seconds to wait before retrying.", "schema": obj{"type": "integer", "minimum": 0}},
		"WWW-Authenticate": obj{"description": "The RFC 6750 challenge: Bearer realm=\"tokenvault\" (with error=\"invalid_token\" when credentials were sent).",
			"schema": obj{"type": "string"}},
	}
}

// errorResponses are the shared error responses; extra names headers beyond X-Request-Id.
func errorResponses() obj {
	resp := func(desc string, extra ...string) obj {
		h := obj{"X-Request-Id": ref("headers", "X-Request-Id")}
		for _, e := range extra {
			h[e] = requiredHeader(e)
		}
		return obj{"description": desc, "headers": h, "content": obj{"application/json": obj{"schema": ref("schemas", "Status")}}}
	}
	return obj{
		"BadRequest":           resp("The request is malformed or breaks a limit (code 3, invalid argument; 9, failed precondition)."),
		"Unauthorized":         resp("No credential, or one that is unknown, revoked or expired (code 16).", "WWW-Authenticate"),
		"Forbidden":            resp("The credential's role or scope does not allow this call (code 7)."),
		"NotFound":             resp("No such object (code 5)."),
		"Conflict":             resp("The object exists already (code 6)."),
		"PayloadTooLarge":      resp("The request body is larger than the listener accepts."),
		"UnsupportedMediaType": resp("The request body is not JSON: send Content-Type: application/json."),
		"TooManyRequests":      resp("A rate or quota refused the call (code 8).", "Retry-After"),
		"Unavailable":          resp("The vault is sealed or too busy (code 14).", "Retry-After"),
		"Error":                resp("Any other error, with its gRPC status code."),
	}
}

// requiredHeader is a copy of a common header with required: true (a $ref cannot add it).
func requiredHeader(name string) obj {
	h := obj{"required": true}
	for k, v := range commonHeaders()[name].(obj) {
		h[k] = v
	}
	return h
}

func requestIDHeader() obj { return obj{"X-Request-Id": ref("headers", "X-Request-Id")} }

// publicPath reports the routes that need no credential.
func publicPath(p string) bool { return p == "/healthz" || p == "/livez" || p == "/openapi.json" }

// dataPaths may answer 429: grant rates, quotas, exhausted token spaces.
func dataPath(p string) bool {
	return strings.HasPrefix(p, "/v1/tokens:") || strings.HasPrefix(p, "/v1/text:") || strings.HasPrefix(p, "/v1/records:")
}

// completeOperation sets the operation's security and documents its error responses.
func completeOperation(path, method string, op obj) error {
	resps := op["responses"].(obj)
	ok, _ := resps["200"].(obj)
	if ok == nil {
		return fmt.Errorf("%s %s has no 200 response", method, path)
	}
	ok["headers"] = requestIDHeader()
	if d, _ := ok["description"].(string); d == "A successful response." || d == "A successful response.(streaming responses)" {
		ok["description"] = "OK."
	}
	if publicPath(path) {
		op["security"] = []any{}
		return nil
	}
	op["security"] = []any{obj{"bearer": []any{}}}
	codes := map[string]string{"401": "Unauthorized", "403": "Forbidden", "503": "Unavailable", "default": "Error"}
	if _, body := op["requestBody"]; body {
		codes["400"], codes["413"], codes["415"] = "BadRequest", "PayloadTooLarge", "UnsupportedMediaType"
	}
	if params, _ := op["parameters"].([]any); len(params) > 0 {
		codes["400"] = "BadRequest"
		for _, p := range params {
			if p.(obj)["in"] == "path" {
				codes["404"] = "NotFound"
			}
		}
	}
	if dataPath(path) {
		codes["429"] = "TooManyRequests"
	}
	if path == "/v1/templates" && method == "post" {
		codes["409"] = "Conflict"
	}
	for c, name := range codes {
		resps[c] = ref("responses", name)
	}
	if path == "/v1/audit:export" || path == "/v1/backup" {
		ndjson(ok)
	}
	return nil
}

// ndjson declares a streaming route's 200 as newline-delimited JSON: one object a line, each
// {"result": …} or, if the stream fails after it started, a last {"error": …}.
func ndjson(ok obj) {
	content := ok["content"].(obj)
	line := content["application/json"]
	delete(content, "application/json")
	content["application/x-ndjson"] = line
	if s, ok := line.(obj)["schema"].(obj); ok {
		s["title"] = strings.Replace(s["title"].(string), pkgPrefix, "", 1)
	}
	ok["description"] = "A stream of newline-delimited JSON objects, each of this schema: {\"result\": …} per message, " +
		"and {\"error\": …} as the last line if the stream fails after it started."
}

// vendorDetokenize describes POST /v1/tokens:detokenize on both listeners.
func vendorDetokenize(paths obj) {
	item := paths["/v1/tokens:detokenize"].(obj)
	item["servers"] = []any{internalServer(), vendorServer()}
	op := item["post"].(obj)
	appendDescription(op, "On the vendor listener this is the vendor's detokenize (VendorService.VendorDetokenize): "+
		"the caller is a vendor credential, over mutual TLS in production; every item is checked against the vendor's grants "+
		"(domain, template, expiry, rate) and masked grants return masked values; purpose is required and grantId may name the grant. "+
		"Denied items are per-item errors with code PERMISSION_DENIED. On the internal listener the caller is an admin or detokenizer "+
		"credential and grantId is refused.")
	op["security"] = []any{obj{"bearer": []any{}}, obj{"bearer": []any{}, "vendorMutualTLS": []any{}}}
	op["tags"] = []any{"TokenService", "VendorService"}
	body := op["requestBody"].(obj)["content"].(obj)["application/json"].(obj)
	body["schema"] = obj{"anyOf": []any{ref("schemas", "DetokenizeRequest"), ref("schemas", "VendorDetokenizeRequest")}}
}

// addHandServed adds the routes the server serves itself, outside the gateway.
func addHandServed(paths, schemas obj) {
	delete(schemas, "VendorDetokenizeResponse") // the same shape as DetokenizeResponse
	json200 := func(desc string, schema obj) obj {
		return obj{"description": desc, "content": obj{"application/json": obj{"schema": schema}}}
	}
	health := func(desc string) obj {
		return obj{"type": "object", "required": []any{"status"}, "description": desc,
			"properties": obj{"status": obj{"type": "string", "enum": []any{"SERVING", "NOT_SERVING", "ALIVE"}}}}
	}
	schemas["Health"] = health("The listener's state.")
	healthz := obj{"get": obj{
		"operationId": "Healthz", "tags": []any{"Operations"},
		"summary": "Readiness: 200 while the vault serves, 503 while it is sealed.",
		"responses": obj{
			"200": json200("Serving.", ref("schemas", "Health")),
			"503": obj{"description": "Sealed: the key-encryption key is not available yet.",
				"headers": obj{"X-Request-Id": ref("headers", "X-Request-Id"), "Retry-After": requiredHeader("Retry-After")},
				"content": obj{"application/json": obj{"schema": ref("schemas", "Health")}}},
		},
	}}
	healthz["servers"] = []any{internalServer(), vendorServer()}
	paths["/healthz"] = healthz
	paths["/livez"] = obj{"get": obj{
		"operationId": "Livez", "tags": []any{"Operations"},
		"summary":   "Liveness: 200 while the process serves HTTP, sealed or not.",
		"responses": obj{"200": json200("Alive.", ref("schemas", "Health"))},
	}}
	paths["/openapi.json"] = obj{"get": obj{
		"operationId": "OpenAPI", "tags": []any{"Operations"},
		"summary": "This document, with info.version set to the server's version.",
		"responses": obj{"200": json200("The OpenAPI 3.1 document.", obj{"type": "object", "required": []any{"openapi", "info", "paths"},
			"properties": obj{"openapi": obj{"type": "string"}, "info": obj{"type": "object"}, "paths": obj{"type": "object"}}})},
	}}
	paths["/metrics"] = obj{"get": obj{
		"operationId": "Metrics", "tags": []any{"Operations"},
		"summary": "Prometheus metrics (text exposition format). Callers: admin, auditor; the metrics listener (--metrics-addr) serves them without a credential.",
		"responses": obj{
			"200":     obj{"description": "The metrics.", "content": obj{"text/plain": obj{"schema": obj{"type": "string"}}}},
			"401":     ref("responses", "Unauthorized"),
			"403":     ref("responses", "Forbidden"),
			"default": ref("responses", "Error"),
		},
	}}
	schemas["RecordFieldError"] = obj{"type": "object", "description": "A field that failed, never its value.", "properties": obj{
		"doc":     obj{"type": "integer", "format": "int32", "description": "The document's index in the request."},
		"path":    obj{"type": "string", "description": "The field's JSON path in the document, e.g. $.items[2].card."},
		"code":    obj{"type": "string", "description": "A canonical gRPC code name, e.g. INVALID_ARGUMENT or NOT_FOUND."},
		"message": obj{"type": "string", "description": "Why it failed."},
	}}
	schemas["RecordsResponse"] = obj{"type": "object", "required": []any{"documents"}, "properties": obj{
		"documents": obj{"type": "array", "description": "The documents in request order; null for a withheld document.",
			"items": obj{"type": []any{"object", "null"}}},
		"errors": obj{"type": "array", "items": ref("schemas", "RecordFieldError")},
	}}
	records := func(tokenize bool) obj {
		props := obj{
			"documents": obj{"type": "array", "minItems": 1, "maxItems": 1000, "items": obj{"type": "object"},
				"description": "The JSON documents, at most 1,000 a call."},
			"policy": obj{"description": "The field policy: JSON paths to template names ({\"$.customer.email\": \"email\"}), or the same as YAML or JSON text.",
				"oneOf": []any{obj{"type": "object", "minProperties": 1, "additionalProperties": obj{"type": "string"}}, obj{"type": "string", "minLength": 1, "maxLength": 65536}}},
			"domain": obj{"type": "string", "maxLength": 63, "pattern": "^([a-z0-9][a-z0-9._-]*)?$", "description": "The token domain. Empty means \"default\"."},
		}
		name, verb := "TokenizeRecordsRequest", "Tokenizes the fields the policy names in each document. Callers: admin, tokenizer."
		if !tokenize {
			name, verb = "DetokenizeRecordsRequest", "Puts the values back in the fields the policy names. Callers: admin, detokenizer."
			props["purpose"] = obj{"type": "string", "maxLength": 256, "description": "Why the values are needed. Kept with the audit trail."}
		}
		schemas[name] = obj{"type": "object", "additionalProperties": false, "required": []any{"documents", "policy"}, "properties": props}
		return obj{"post": obj{
			"operationId": strings.TrimSuffix(name, "Request"), "tags": []any{"RecordService"}, "summary": verb,
			"requestBody": obj{"required": true, "content": obj{"application/json": obj{"schema": ref("schemas", name)}}},
			"responses":   obj{"200": json200("The documents, and the fields that failed.", ref("schemas", "RecordsResponse"))},
		}}
	}
	paths["/v1/records:tokenize"] = records(true)
	paths["/v1/records:detokenize"] = records(false)
}

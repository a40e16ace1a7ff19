// Package client is tokenvault's Go client over the gRPC API.
//
// # Basics
//
//	c, err := client.New("127.0.0.1:7070", client.WithToken(secret))
//	res, err := c.Tokenize(ctx, []client.TokenizeItem{{Value: "4111111111111111", Template: "pan"}})
//
// Tokenize and Detokenize split inputs larger than the server's batch limit into several
// calls and return results in input order. Per-item failures are in each result's Err.
//
// The admin services have typed accessors on the same connection:
//
//	st, err := c.Keys().GetKeyStatus(ctx, &tvpb.GetKeyStatusRequest{})
//	cr, err := c.Credentials().CreateCredential(ctx, &tvpb.CreateCredentialRequest{Name: "etl", Role: "tokenizer"})
//
// # Deadlines
//
// Every unary call whose context has no deadline gets the client's default timeout
// (WithTimeout, 30 s): a server that accepts the connection but never answers fails the call
// with codes.DeadlineExceeded instead of hanging. Each call of a split Tokenize or Detokenize
// gets its own. A context with its own deadline keeps it, longer or shorter.
//
// Streams (AuditService.ExportAudit, KeyService.Backup) run as long as they keep moving: a
// backup of a large store may take longer than any fixed deadline. Instead, the default
// timeout is an idle limit on them: opening the stream and each wait for the next message
// must end within it, or the stream fails with codes.DeadlineExceeded. Time the caller spends
// between two Recv calls does not count. A context with a deadline turns the idle limit off.
//
// # Caveats
//
// Without WithTLS the connection is plain text: use it only on loopback or in dev mode.
package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

// MaxBatch is the server's limit of items per call.
const MaxBatch = 10000

// Client talks to a tokenvault server. It is safe for concurrent use.
type Client struct {
	conn      *grpc.ClientConn
	tokens    tvpb.TokenServiceClient
	templates tvpb.TemplateServiceClient
	records   tvpb.RecordServiceClient
	batch     int
}

type options struct {
	token   string
	tls     *tls.Config
	batch   int
	retries int
	timeout time.Duration
}

// Option configures New.
type Option func(*options)

// WithToken sends secret as a bearer credential on every call.
func WithToken(secret string) Option { return func(o *options) { o.token = secret } }

// WithTLS uses TLS (and mTLS when cfg has client certificates).
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithBatchSize sets how many items go in one call (at most MaxBatch).
func WithBatchSize(n int) Option { return func(o *options) { o.batch = n } }

// WithRetries sets how many times a call is tried when the server is Unavailable (sealed,
// restarting, unreachable), with exponential backoff from 100 ms to 5 s (default 5; 1 turns
// retries off). Tokenize is safe to retry: a deterministic template returns the same token,
// a random one may leave an extra token that also detokenizes.
func WithRetries(n int) Option { return func(o *options) { o.retries = n } }

// WithTimeout gives every unary call without a deadline of its own this one, and is the idle
// limit of streams (default 30 s; 0 turns both off). See the package documentation.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// serviceConfig turns on gRPC's own retries for Unavailable on every tokenvault service.
func serviceConfig(attempts int) string {
	return fmt.Sprintf(`{"methodConfig":[{"name":[{"service":"tokenvault.v1.TokenService"},{"service":"tokenvault.v1.TemplateService"},{"service":"tokenvault.v1.RecordService"},{"service":"tokenvault.v1.CredentialService"},{"service":"tokenvault.v1.GrantService"},{"service":"tokenvault.v1.AuditService"},{"service":"tokenvault.v1.KeyService"},{"service":"tokenvault.v1.TextService"}],
"retryPolicy":{"maxAttempts":%d,"initialBackoff":"0.1s","maxBackoff":"5s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}]}`, attempts)
}

type bearer struct {
	token  string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}
func (b bearer) RequireTransportSecurity() bool { return b.secure }

// New returns a client for the server at addr (host:port). It does not connect until the
// first call.
func New(addr string, opts ...Option) (*Client, error) {
	o := options{batch: MaxBatch, retries: 5, timeout: 30 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	if o.batch <= 0 || o.batch > MaxBatch {
		return nil, fmt.Errorf("client: batch size must be 1..%d", MaxBatch)
	}
	if o.retries < 1 || o.retries > 5 {
		return nil, fmt.Errorf("client: retries must be 1..5 (gRPC's limit)")
	}
	if o.timeout < 0 {
		return nil, fmt.Errorf("client: the timeout must not be negative (0 turns it off)")
	}
	dial := []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64 << 20))}
	if o.timeout > 0 {
		dial = append(dial, grpc.WithChainUnaryInterceptor(unaryDeadline(o.timeout)),
			grpc.WithChainStreamInterceptor(streamIdle(o.timeout)))
	}
	if o.retries > 1 {
		dial = append(dial, grpc.WithDefaultServiceConfig(serviceConfig(o.retries)))
	}
	if o.tls != nil {
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(o.tls)))
	} else {
		dial = append(dial, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer{token: o.token, secure: o.tls != nil}))
	}
	conn, err := grpc.NewClient(addr, dial...)
	if err != nil {
		return nil, err
	}
	return &Client{conn: conn, tokens: tvpb.NewTokenServiceClient(conn), templates: tvpb.NewTemplateServiceClient(conn),
		records: tvpb.NewRecordServiceClient(conn), batch: o.batch}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn exposes the underlying connection. The accessors below cover every service; calls made
// through Conn get the same default deadline and idle limit.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Tokens is the TokenService (Tokenize and Detokenize above wrap two of its calls; DeleteTokens
// and EraseSubject are here).
func (c *Client) Tokens() tvpb.TokenServiceClient { return c.tokens }

// Templates is the TemplateService.
func (c *Client) Templates() tvpb.TemplateServiceClient { return c.templates }

// Records is the RecordService.
func (c *Client) Records() tvpb.RecordServiceClient { return c.records }

// Text is the TextService: personal data in free text.
func (c *Client) Text() tvpb.TextServiceClient { return tvpb.NewTextServiceClient(c.conn) }

// Credentials is the CredentialService (admin).
func (c *Client) Credentials() tvpb.CredentialServiceClient {
	return tvpb.NewCredentialServiceClient(c.conn)
}

// Grants is the GrantService (admin; reads: auditor too).
func (c *Client) Grants() tvpb.GrantServiceClient { return tvpb.NewGrantServiceClient(c.conn) }

// Keys is the KeyService (admin; status: auditor too).
func (c *Client) Keys() tvpb.KeyServiceClient { return tvpb.NewKeyServiceClient(c.conn) }

// Audit is the AuditService (admin, auditor).
func (c *Client) Audit() tvpb.AuditServiceClient { return tvpb.NewAuditServiceClient(c.conn) }

// TokenizeItem is one value to tokenize.
type TokenizeItem struct {
	Value, Template, Domain, Subject string
	// TTL, when set, makes the token expire this long after it is issued.
	TTL time.Duration
}

// Result is one item's outcome: Token or Value, or Err (an *ItemError).
type Result struct {
	Token, Value string
	Err          error
}

// ItemError is a per-item failure reported by the server.
type ItemError struct {
	Code, Message string
}

func (e *ItemError) Error() string { return e.Code + ": " + e.Message }

func itemErr(e *tvpb.ItemError) error {
	if e == nil {
		return nil
	}
	return &ItemError{Code: e.GetCode(), Message: e.GetMessage()}
}

// Tokenize tokenizes items, in calls of at most the batch size, and returns results in
// order. A whole-call error stops at the failing call: results for earlier calls are lost
// with it, but their tokens are stored (deterministic templates return them again).
func (c *Client) Tokenize(ctx context.Context, items []TokenizeItem) ([]Result, error) {
	return inBatches(ctx, c, items, func(ctx context.Context, batch []TokenizeItem) ([]*tvpb.TokenizeResult, error) {
		req := &tvpb.TokenizeRequest{Items: make([]*tvpb.TokenizeItem, 0, len(batch))}
		for _, it := range batch {
			pi := &tvpb.TokenizeItem{Value: it.Value, Template: it.Template, Domain: it.Domain, Subject: it.Subject}
			if it.TTL > 0 {
				pi.Ttl = durationpb.New(it.TTL)
			}
			req.Items = append(req.Items, pi)
		}
		resp, err := c.tokens.Tokenize(ctx, req)
		return resp.GetResults(), err
	}, func(r *tvpb.TokenizeResult) Result {
		return Result{Token: r.GetToken(), Err: itemErr(r.GetError())}
	})
}

// inBatches sends items in calls of at most the batch size (each gets the default deadline
// of its own) and returns the results of all in order (result converts each). It stops at
// the first failing call, and refuses a reply with a wrong number of results.
func inBatches[I, R any](ctx context.Context, c *Client, items []I, call func(context.Context, []I) ([]R, error), result func(R) Result) ([]Result, error) {
	out := make([]Result, 0, len(items))
	for start := 0; start < len(items); start += c.batch {
		batch := items[start:min(start+c.batch, len(items))]
		rs, err := call(ctx, batch)
		if err != nil {
			return nil, err
		}
		if len(rs) != len(batch) {
			return nil, errors.New("client: server returned a wrong number of results")
		}
		for _, r := range rs {
			out = append(out, result(r))
		}
	}
	return out, nil
}

// DetokenizeItem is one token to reveal.
type DetokenizeItem struct {
	Token, Domain, Template string
}

// Detokenize reveals tokens, in calls of at most the batch size, stating purpose.
func (c *Client) Detokenize(ctx context.Context, purpose string, items []DetokenizeItem) ([]Result, error) {
	return inBatches(ctx, c, items, func(ctx context.Context, batch []DetokenizeItem) ([]*tvpb.DetokenizeResult, error) {
		req := &tvpb.DetokenizeRequest{Purpose: purpose, Items: make([]*tvpb.DetokenizeItem, 0, len(batch))}
		for _, it := range batch {
			req.Items = append(req.Items, &tvpb.DetokenizeItem{Token: it.Token, Domain: it.Domain, Template: it.Template})
		}
		resp, err := c.tokens.Detokenize(ctx, req)
		return resp.GetResults(), err
	}, func(r *tvpb.DetokenizeResult) Result {
		return Result{Value: r.GetValue(), Err: itemErr(r.GetError())}
	})
}

// CreateTemplate stores a custom template.
func (c *Client) CreateTemplate(ctx context.Context, t *tvpb.Template) (*tvpb.Template, error) {
	resp, err := c.templates.CreateTemplate(ctx, &tvpb.CreateTemplateRequest{Template: t})
	if err != nil {
		return nil, err
	}
	return resp.GetTemplate(), nil
}

// ListTemplates lists all templates.
func (c *Client) ListTemplates(ctx context.Context) ([]*tvpb.Template, error) {
	resp, err := c.templates.ListTemplates(ctx, &tvpb.ListTemplatesRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetTemplates(), nil
}

// FieldError names a record field that failed, by document index and JSON path.
type FieldError struct {
	Doc           int
	Path          string
	Code, Message string
}

func (e FieldError) Error() string {
	return fmt.Sprintf("document %d, %s: %s: %s", e.Doc, e.Path, e.Code, e.Message)
}

func fieldErrors(in []*tvpb.RecordFieldError) []FieldError {
	var out []FieldError
	for _, e := range in {
		out = append(out, FieldError{Doc: int(e.GetDoc()), Path: e.GetPath(), Code: e.GetCode(), Message: e.GetMessage()})
	}
	return out
}

// TokenizeRecords tokenizes the fields a policy selects ("$.customer.email: email", one rule a
// line, YAML or JSON) in each JSON document, in domain. A document any of whose fields failed
// comes back nil, with its failures listed. Member order and number text are kept.
func (c *Client) TokenizeRecords(ctx context.Context, policy, domain string, docs []json.RawMessage) ([]json.RawMessage, []FieldError, error) {
	req := &tvpb.TokenizeRecordsRequest{Policy: policy, Domain: domain}
	for _, d := range docs {
		req.Documents = append(req.Documents, string(d))
	}
	resp, err := c.records.TokenizeRecords(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	return rawDocs(resp.GetDocuments()), fieldErrors(resp.GetErrors()), nil
}

// DetokenizeRecords reveals the tokens at the policy's paths; a field that fails keeps its
// token and is listed.
func (c *Client) DetokenizeRecords(ctx context.Context, policy, domain, purpose string, docs []json.RawMessage) ([]json.RawMessage, []FieldError, error) {
	req := &tvpb.DetokenizeRecordsRequest{Policy: policy, Domain: domain, Purpose: purpose}
	for _, d := range docs {
		req.Documents = append(req.Documents, string(d))
	}
	resp, err := c.records.DetokenizeRecords(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	return rawDocs(resp.GetDocuments()), fieldErrors(resp.GetErrors()), nil
}

func rawDocs(in []string) []json.RawMessage {
	out := make([]json.RawMessage, len(in))
	for i, d := range in {
		if d != "" {
			out[i] = json.RawMessage(d)
		}
	}
	return out
}

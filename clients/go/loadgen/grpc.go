package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"

	client "github.com/tokenvault/tokenvault/clients/go"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

// grpcConn speaks gRPC over Config.Conns shared connections (HTTP/2 multiplexes the
// workers' calls), made by the Go client so that credentials are sent as it sends them.
type grpcConn struct {
	cfg     *Config
	clients []*client.Client
	stubs   []tvpb.TokenServiceClient
	next    atomic.Uint32
}

func newGRPCConn(cfg *Config) (*grpcConn, error) {
	c := &grpcConn{cfg: cfg}
	for range cfg.Conns {
		opts := []client.Option{client.WithToken(cfg.Token), client.WithTimeout(max(cfg.RequestTimeout, 0))}
		if cfg.TLS != nil {
			opts = append(opts, client.WithTLS(cfg.TLS))
		}
		cl, err := client.New(cfg.GRPCAddr, opts...)
		if err != nil {
			c.close()
			return nil, err
		}
		c.clients = append(c.clients, cl)
		c.stubs = append(c.stubs, tvpb.NewTokenServiceClient(cl.Conn()))
	}
	return c, nil
}

func (c *grpcConn) close() {
	for _, cl := range c.clients {
		cl.Close()
	}
}

// newRequest returns a *tvpb.TokenizeRequest or *tvpb.DetokenizeRequest. Prepared requests
// are shared by workers: marshaling a message only reads it.
func (c *grpcConn) newRequest(op string, items []string) any {
	if op == OpTokenize {
		req := &tvpb.TokenizeRequest{Items: make([]*tvpb.TokenizeItem, len(items))}
		for i, v := range items {
			req.Items[i] = &tvpb.TokenizeItem{Value: v, Template: c.cfg.Template, Domain: c.cfg.Domain}
		}
		return req
	}
	req := &tvpb.DetokenizeRequest{Purpose: c.cfg.Purpose, Items: make([]*tvpb.DetokenizeItem, len(items))}
	for i, t := range items {
		req.Items[i] = &tvpb.DetokenizeItem{Token: t, Domain: c.cfg.Domain}
	}
	return req
}

// stub picks a connection round robin.
func (c *grpcConn) stub() tvpb.TokenServiceClient {
	return c.stubs[int(c.next.Add(1))%len(c.stubs)]
}

func (c *grpcConn) do(ctx context.Context, req any, _ *bytes.Buffer, tokens []string) (outcome, error) {
	ctx, cancel := c.cfg.requestContext(ctx)
	defer cancel()
	var o outcome
	switch r := req.(type) {
	case *tvpb.TokenizeRequest:
		resp, err := c.stub().Tokenize(ctx, r)
		if err != nil {
			return o, err
		}
		if len(resp.GetResults()) != len(r.Items) {
			return o, fmt.Errorf("reply has %d results for %d items", len(resp.GetResults()), len(r.Items))
		}
		for i, res := range resp.GetResults() {
			o.add(res.GetError())
			if tokens != nil && res.GetError() == nil {
				tokens[i] = res.GetToken()
			}
		}
	case *tvpb.DetokenizeRequest:
		resp, err := c.stub().Detokenize(ctx, r)
		if err != nil {
			return o, err
		}
		if len(resp.GetResults()) != len(r.Items) {
			return o, fmt.Errorf("reply has %d results for %d items", len(resp.GetResults()), len(r.Items))
		}
		for _, res := range resp.GetResults() {
			o.add(res.GetError())
		}
	}
	return o, nil
}

func (o *outcome) add(e *tvpb.ItemError) {
	if e == nil {
		o.ok++
		return
	}
	o.failed++
	if o.firstErr == "" {
		o.firstErr = e.GetCode() + ": " + e.GetMessage()
	}
}

func (c *grpcConn) templateBases(ctx context.Context) (map[string]string, error) {
	ts, err := c.clients[0].ListTemplates(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(ts))
	for _, t := range ts {
		m[t.GetName()] = t.GetBase()
	}
	return m, nil
}

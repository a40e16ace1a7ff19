package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// httpConn speaks the HTTP/JSON gateway over a fixed pool of keep-alive connections, one per
// worker. Request bodies are written by hand (no reflection) and replies are only scanned,
// unless they carry per-item errors or the caller wants the tokens: the client must stay
// cheap next to the server it measures.
type httpConn struct {
	cfg    *Config
	client *http.Client
	base   string
	auth   string
}

func newHTTPConn(cfg *Config) *httpConn {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.Concurrency,
		MaxIdleConnsPerHost: cfg.Concurrency,
		MaxConnsPerHost:     cfg.Concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		TLSClientConfig:     cfg.TLS,
	}
	scheme := "http://"
	if cfg.TLS != nil {
		scheme = "https://"
	}
	return &httpConn{
		cfg:    cfg,
		client: &http.Client{Transport: tr, Timeout: max(cfg.RequestTimeout, 0)}, // 0: none
		base:   scheme + cfg.HTTPAddr,
		auth:   "Bearer " + cfg.Token,
	}
}

func (c *httpConn) close() { c.client.CloseIdleConnections() }

// httpRequest is a prepared request body.
type httpRequest struct {
	path string
	body []byte
	op   string
	n    int // items
}

func (c *httpConn) newRequest(op string, items []string) any {
	b := make([]byte, 0, 32+len(items)*(48+len(c.cfg.Template)+len(c.cfg.Domain)))
	b = append(b, `{"items":[`...)
	for i, it := range items {
		if i > 0 {
			b = append(b, ',')
		}
		if op == OpTokenize {
			b = append(b, `{"value":`...)
			b = appendJSONString(b, it)
			b = append(b, `,"template":`...)
			b = appendJSONString(b, c.cfg.Template)
		} else {
			b = append(b, `{"token":`...)
			b = appendJSONString(b, it)
		}
		if c.cfg.Domain != "" {
			b = append(b, `,"domain":`...)
			b = appendJSONString(b, c.cfg.Domain)
		}
		b = append(b, '}')
	}
	b = append(b, ']')
	if op == OpDetokenize {
		b = append(b, `,"purpose":`...)
		b = appendJSONString(b, c.cfg.Purpose)
	}
	b = append(b, '}')
	return &httpRequest{path: "/v1/tokens:" + op, body: b, op: op, n: len(items)}
}

// httpReply is the gateway's answer to tokenize and detokenize.
type httpReply struct {
	Results []struct {
		Token string `json:"token"`
		Value string `json:"value"`
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"results"`
}

var (
	errorKey = []byte(`"error"`)
	tokenKey = []byte(`"token":`)
	valueKey = []byte(`"value":`)
)

func (c *httpConn) do(ctx context.Context, req any, buf *bytes.Buffer, tokens []string) (outcome, error) {
	r := req.(*httpRequest)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+r.path, bytes.NewReader(r.body))
	if err != nil {
		return outcome{}, err
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", c.auth)
	resp, err := c.client.Do(hr)
	if err != nil {
		return outcome{}, err
	}
	buf.Reset()
	_, err = buf.ReadFrom(resp.Body)
	resp.Body.Close()
	if err != nil {
		return outcome{}, fmt.Errorf("reading reply: %w", err)
	}
	body := buf.Bytes()
	if resp.StatusCode != http.StatusOK {
		return outcome{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, statusMessage(body))
	}
	n := r.n
	// Without per-item errors and without a need for the tokens, counting the result keys
	// is enough: a key cannot occur unescaped inside a JSON string.
	if tokens == nil && !bytes.Contains(body, errorKey) {
		key := tokenKey
		if r.op == OpDetokenize {
			key = valueKey
		}
		if got := bytes.Count(body, key); got != n {
			return outcome{}, fmt.Errorf("reply has %d results for %d items", got, n)
		}
		return outcome{ok: n}, nil
	}
	var rep httpReply
	if err := json.Unmarshal(body, &rep); err != nil {
		return outcome{}, fmt.Errorf("decoding reply: %w", err)
	}
	if len(rep.Results) != n {
		return outcome{}, fmt.Errorf("reply has %d results for %d items", len(rep.Results), n)
	}
	var o outcome
	for i, res := range rep.Results {
		if res.Error != nil {
			o.failed++
			if o.firstErr == "" {
				o.firstErr = res.Error.Code + ": " + res.Error.Message
			}
			continue
		}
		o.ok++
		if tokens != nil {
			tokens[i] = res.Token
		}
	}
	return o, nil
}

// statusMessage extracts the message of a gateway error body, or returns it shortened.
func statusMessage(body []byte) string {
	var st struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &st) == nil && st.Message != "" {
		return st.Message
	}
	if len(body) > 200 {
		body = body[:200]
	}
	return string(bytes.TrimSpace(body))
}

func (c *httpConn) templateBases(ctx context.Context) (map[string]string, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/templates", nil)
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Authorization", c.auth)
	resp, err := c.client.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, statusMessage(body))
	}
	var list struct {
		Templates []struct {
			Name string `json:"name"`
			Base string `json:"base"`
		} `json:"templates"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("decoding template list: %w", err)
	}
	m := make(map[string]string, len(list.Templates))
	for _, t := range list.Templates {
		m[t.Name] = t.Base
	}
	return m, nil
}

// appendJSONString appends s as a JSON string.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

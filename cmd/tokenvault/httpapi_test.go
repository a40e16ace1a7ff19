package main

// The server's HTTP/JSON API as the tests use it: one request helper (httpDo), tokenize and
// detokenize, key status and key operations, health.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// newHTTPClient returns a client with its own connection pool, so that a killed server's
// connections do not leak into the next one.
func newHTTPClient() *http.Client {
	return &http.Client{
		Timeout:   time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
	}
}

// httpDo sends a request with the bearer secret and returns the status and body.
func httpDo(c *http.Client, method, url, secret string, body []byte) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// API shapes (only the fields the tests use).
type tokenizeItem struct {
	Value    string `json:"value"`
	Template string `json:"template"`
	Domain   string `json:"domain,omitempty"`
	Subject  string `json:"subject,omitempty"`
}

type detokenizeItem struct {
	Token    string `json:"token"`
	Domain   string `json:"domain,omitempty"`
	Template string `json:"template,omitempty"`
}

type itemError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type result struct {
	Token string     `json:"token"`
	Value string     `json:"value"`
	Error *itemError `json:"error"`
}

type resultsResp struct {
	Results []result `json:"results"`
}

// call posts a JSON request and decodes a 200 response; any failure is returned as an error.
func call(c *http.Client, httpAddr, path, secret string, req any) ([]result, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	code, data, err := httpDo(c, http.MethodPost, "http://"+httpAddr+path, secret, body)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d: %s", path, code, data)
	}
	var r resultsResp
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: decoding %q: %v", path, data, err)
	}
	return r.Results, nil
}

func tokenize(c *http.Client, httpAddr, secret string, items []tokenizeItem) ([]result, error) {
	res, err := call(c, httpAddr, "/v1/tokens:tokenize", secret, map[string]any{"items": items})
	if err == nil && len(res) != len(items) {
		err = fmt.Errorf("tokenize: %d results for %d items", len(res), len(items))
	}
	return res, err
}

func detokenize(c *http.Client, httpAddr, secret string, items []detokenizeItem) ([]result, error) {
	res, err := call(c, httpAddr, "/v1/tokens:detokenize", secret, map[string]any{"items": items, "purpose": "e2e-test"})
	if err == nil && len(res) != len(items) {
		err = fmt.Errorf("detokenize: %d results for %d items", len(res), len(items))
	}
	return res, err
}

// u64 decodes a protojson uint64, which is a JSON string ("42"), or a plain number.
type u64 uint64

func (n *u64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("uint64 %s: %w", b, err)
	}
	*n = u64(v)
	return nil
}

// keyStatusResp is GET /v1/keys (grpc-gateway JSON: lowerCamelCase, zero values omitted).
type keyStatusResp struct {
	Keys []struct {
		KeyID      uint32 `json:"keyId"`
		State      string `json:"state"`
		CreateTime string `json:"createTime"`
		Records    u64    `json:"records"`
	} `json:"keys"`
	RewrapTarget uint32 `json:"rewrapTarget"`
	RewrapDone   bool   `json:"rewrapDone"`
	Rewrapped    u64    `json:"rewrapped"`
	Remaining    u64    `json:"remaining"`
	Total        u64    `json:"total"`
}

func (k keyStatusResp) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rewrap target %d done %v rewrapped %d remaining %d total %d; keys:", k.RewrapTarget, k.RewrapDone, k.Rewrapped, k.Remaining, k.Total)
	for _, key := range k.Keys {
		fmt.Fprintf(&b, " [%d %s records=%d]", key.KeyID, key.State, key.Records)
	}
	return b.String()
}

// primaries returns the ids of the keys in state primary.
func (k keyStatusResp) primaries() []uint32 {
	var ids []uint32
	for _, key := range k.Keys {
		if key.State == "primary" {
			ids = append(ids, key.KeyID)
		}
	}
	return ids
}

// getKeyStatus is GET /v1/keys.
func getKeyStatus(c *http.Client, httpAddr, secret string) (keyStatusResp, error) {
	var ks keyStatusResp
	code, data, err := httpDo(c, http.MethodGet, "http://"+httpAddr+"/v1/keys", secret, nil)
	if err != nil {
		return ks, err
	}
	if code != http.StatusOK {
		return ks, fmt.Errorf("GET /v1/keys: HTTP %d: %s", code, data)
	}
	if err := json.Unmarshal(data, &ks); err != nil {
		return ks, fmt.Errorf("GET /v1/keys: decoding %s: %v", data, err)
	}
	return ks, nil
}

// rotateKey is POST /v1/keys:rotate; it returns the new primary key's id.
func rotateKey(c *http.Client, httpAddr, secret string) (uint32, error) {
	code, data, err := httpDo(c, http.MethodPost, "http://"+httpAddr+"/v1/keys:rotate", secret, []byte("{}"))
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("POST /v1/keys:rotate: HTTP %d: %s", code, data)
	}
	var r struct {
		KeyID uint32 `json:"keyId"`
	}
	if err := json.Unmarshal(data, &r); err != nil || r.KeyID == 0 {
		return 0, fmt.Errorf("POST /v1/keys:rotate: bad body %s (%v)", data, err)
	}
	return r.KeyID, nil
}

// keyOp is POST /v1/keys/{id}:{op} (disable, enable, destroy).
func keyOp(c *http.Client, httpAddr, secret, op string, id uint32) error {
	code, data, err := httpDo(c, http.MethodPost, fmt.Sprintf("http://%s/v1/keys/%d:%s", httpAddr, id, op), secret, []byte("{}"))
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("POST /v1/keys/%d:%s: HTTP %d: %s", id, op, code, data)
	}
	return nil
}

// healthCode is GET path's status code (0 on a transport error).
func healthCode(c *http.Client, httpAddr, path string) int {
	code, _, err := httpDo(c, http.MethodGet, "http://"+httpAddr+path, "", nil)
	if err != nil {
		return 0
	}
	return code
}

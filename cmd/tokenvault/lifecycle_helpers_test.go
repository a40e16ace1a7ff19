package main

// Helpers for lifecycle_e2e_test.go: key status and key operations over HTTP, health polling,
// and a tokenize load that also names data subjects.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

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

// waitFor polls cond every interval until it is true or timeout passes; it reports whether
// cond became true.
func waitFor(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(interval)
	}
}

// copyFile copies src to dst with mode perm.
func copyFile(t *testing.T, src, dst string, perm os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
	if err := os.WriteFile(dst, data, perm); err != nil {
		t.Fatalf("copying to %s: %v", dst, err)
	}
}

// lcSubjects are the data subjects the lifecycle load names.
const lcSubjects = 64

// lcValue is a valid value for tmpl, unique for (run, worker, seq); run < 100, worker < 10.
func lcValue(tmpl string, run, worker, seq int) string {
	switch tmpl {
	case "pan":
		// 16 digits: 5, run (2), worker (1), 12-digit sequence number.
		return fmt.Sprintf("5%02d%d%012d", run%100, worker%10, seq)
	case "email":
		return fmt.Sprintf("lc.%d.%d.%d@example.org", run, worker, seq)
	default:
		return fmt.Sprintf("lifecycle opaque r%d w%d n%d", run, worker, seq)
	}
}

// lcItems returns n fresh tokenize items: templates and domains mixed, about a quarter of
// them naming one of lcSubjects data subjects.
func lcItems(rng *rand.Rand, run, worker int, seq *int, n int) []tokenizeItem {
	items := make([]tokenizeItem, n)
	for i := range items {
		tmpl := loadTemplates[rng.IntN(len(loadTemplates))]
		items[i] = tokenizeItem{Value: lcValue(tmpl, run, worker, *seq), Template: tmpl, Domain: loadDomains[rng.IntN(len(loadDomains))]}
		if rng.IntN(4) == 0 {
			items[i].Subject = fmt.Sprintf("lc-subject-%d", rng.IntN(lcSubjects))
		}
		*seq++
	}
	return items
}

// tokenizeAcked tokenizes items and returns the acknowledged pairs; any failure is an error.
func tokenizeAcked(c *http.Client, httpAddr string, items []tokenizeItem) ([]acked, error) {
	res, err := tokenize(c, httpAddr, rootToken, items)
	if err != nil {
		return nil, err
	}
	out := make([]acked, 0, len(items))
	for i, r := range res {
		if r.Error != nil || r.Token == "" {
			return nil, fmt.Errorf("item %q (%s) failed: %+v", items[i].Value, items[i].Template, r.Error)
		}
		out = append(out, acked{value: items[i].Value, template: items[i].Template, domain: items[i].Domain, token: r.Token})
	}
	return out, nil
}

// runSubjectLoad is runLoad (e2e_test.go) with data subjects and lcValue values: workers
// tokenize batches of 1-50 fresh values until halted or until their first transport error
// (the server was killed), recording what a 200 acknowledged.
func runSubjectLoad(t *testing.T, c *http.Client, httpAddr string, seed uint64, run, workers int, log *ackLog, st *loadStats) *load {
	l := &load{stop: make(chan struct{})}
	t.Cleanup(l.halt)
	var reported atomic.Int32
	report := func(format string, args ...any) {
		if reported.Add(1) <= 5 {
			t.Errorf(format, args...)
		}
	}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(1_000_000+run*1000+w)))
			seq := 0
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				items := lcItems(rng, run, w, &seq, 1+rng.IntN(50))
				body, _ := json.Marshal(map[string]any{"items": items})
				code, data, err := postRaw(c, "http://"+httpAddr+"/v1/tokens:tokenize", rootToken, body)
				if err != nil {
					st.transportErrs.Add(1)
					return
				}
				st.batches.Add(1)
				if code != http.StatusOK {
					report("tokenize under load: HTTP %d: %s", code, data)
					return
				}
				var r resultsResp
				if err := json.Unmarshal(data, &r); err != nil || len(r.Results) != len(items) {
					report("tokenize under load: bad 200 body for %d items (%v): %s", len(items), err, data)
					return
				}
				var ok []acked
				for i, res := range r.Results {
					if res.Error != nil || res.Token == "" {
						report("tokenize under load: item %q (%s) failed: %+v", items[i].Value, items[i].Template, res.Error)
						continue
					}
					ok = append(ok, acked{value: items[i].Value, template: items[i].Template, domain: items[i].Domain, token: res.Token})
				}
				log.add(ok...)
				st.acked.Add(int64(len(ok)))
			}
		}()
	}
	return l
}

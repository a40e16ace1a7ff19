package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tokenvault/tokenvault/internal/testenv"
	"github.com/tokenvault/tokenvault/vault"
)

// startFuzzServer starts one real server (testenv: real bbolt file, real keys) shared by every
// input of a fuzz target: starting one per input would be far too slow. Logs are discarded and
// commits skip fsync: the fuzzer wants throughput, and durability is not under test here.
func startFuzzServer(f *testing.F) *testenv.Env {
	f.Helper()
	return testenv.Start(f, testenv.NoSync(), testenv.DiscardLogs())
}

// publicKeys name request fields that hold identifiers, not data: an unknown template
// name is quoted back on purpose ("unknown template \"x\" (item 1, counting from 1)"), and the API
// validates both against ^[a-z0-9._-]*$-style patterns first.
var publicKeys = map[string]bool{"template": true, "domain": true}

// serverPhrases are texts of the server's own error bodies; a request string that is part
// of one of them is found in a body without being echoed.
var serverPhrases = `rpc error: code = InvalidArgument desc = malformed JSON request body at line: ` +
	`expected the shape in /openapi.json (values must be JSON strings of valid UTF-8) ` +
	"validation error: validation errors:\n - items: purpose: must contain at least 1 item(s) " +
	fmt.Sprintf(`must contain no more than %[1]d item(s) must contain at most %[1]d item(s) `, vault.MaxBatch) +
	"does not match regex pattern `^[a-z][a-z0-9_-]*$` `^([a-z0-9][a-z0-9._-]*)?$` `^([a-z][a-z0-9_-]*)?$` " +
	`must be at least 1 characters must be at most 63 characters must be at most 256 characters ` +
	`must be at most 65536 bytes must be at most 256 bytes ` +
	`type.googleapis.com/buf.validate.Violations repeated.min_items repeated.max_items ` +
	`string.max_bytes string.min_len string.max_len string.pattern fieldNumber fieldName fieldType ` +
	`TYPE_MESSAGE TYPE_STRING TYPE_UINT64 elements violations ruleId message details unknown template ` +
	`request body larger than 67108864 bytes invalid or revoked credentials missing credentials`

// dataStrings returns the string values of a JSON request, except those under publicKeys
// (and not also elsewhere). When body is not valid JSON it falls back to every quoted
// stretch of it, raw.
func dataStrings(body []byte) []string {
	var doc any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		var out []string
		for _, m := range quotedRE.FindAll(body, -1) {
			out = append(out, string(m[1:len(m)-1]))
		}
		return out
	}
	data, public := map[string]bool{}, map[string]bool{}
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case string:
			if publicKeys[key] {
				public[v] = true
			} else {
				data[v] = true
			}
		case []any:
			for _, e := range v {
				walk(e, key)
			}
		case map[string]any:
			for k, e := range v {
				walk(e, k)
			}
		}
	}
	walk(doc, "")
	var out []string
	for s := range data {
		if !public[s] {
			out = append(out, s)
		}
	}
	return out
}

var quotedRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// checkResponse is the property shared by the fuzz targets: a status from the documented
// set, never an internal error, and no 400 body quoting request data of 12 characters or more.
func checkResponse(t *testing.T, req []byte, code int, body []byte) {
	t.Helper()
	switch code {
	case http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge:
	default:
		t.Fatalf("HTTP %d for request %q: %s", code, req, body)
	}
	if bytes.Contains(body, []byte("internal error")) {
		t.Fatalf("internal error for request %q: %s", req, body)
	}
	if code != http.StatusBadRequest {
		return
	}
	for _, s := range dataStrings(req) {
		if utf8.RuneCountInString(s) < 12 || strings.Contains(serverPhrases, s) {
			continue
		}
		esc, _ := json.Marshal(s)
		if bytes.Contains(body, []byte(s)) || bytes.Contains(body, esc[1:len(esc)-1]) {
			t.Fatalf("400 body quotes request data %q\nrequest: %q\nresponse: %s", s, req, body)
		}
	}
}

var tokenizeSeeds = []string{
	`{"items":[{"value":"4111111111111111","template":"pan","domain":"acme"}]}`,
	`{"items":[{"value":"4111-1111-1111-1111","template":"pan"},{"value":"jane.doe@example.com","template":"email"},{"value":"123-45-6789","template":"ssn"}]}`,
	`{"items":[{"value":"any text at all, ünïcode ✓","template":"opaque","subject":"subject-123456789"}]}`,
	`{"items":[{"value":"4111111111111112","template":"pan"},{"value":"12","template":"pan"}]}`,
	`{"items":[{"value":"sensitive-value-123","template":"nosuchtemplate"}]}`,
	`{"items":[{"value":"sensitive-value-123","template":"PAN"}]}`,
	`{"items":[{"value":"sensitive-value-123","template":"pan","domain":"Bad Domain"}]}`,
	`{"items":[{"value":"sensitive-value-123","template":"pan","unknownField":"x"}]}`,
	`{"items":[{"value":12345678901234,"template":"pan"}]}`,
	`{"items":[{"value":["sensitive-value-123"],"template":"pan"}]}`,
	`{"items":[{"value":"sensitive-value-123","template":"pan"}`,
	`{"items":[]}`,
	`{"items":null}`,
	`{"items":{}}`,
	`{}`,
	`[]`,
	`null`,
	``,
	`{`,
	`{"items":[{"value":"\ud800sensitive-value-123","template":"opaque"}]}`,
	"{\"items\":[{\"value\":\"sensitive-\xff-value-123\",\"template\":\"opaque\"}]}",
	`{"items":[{"value":"sensitive-value-123","template":"opaque"}]} trailing`,
	`{"items":[{"value":"sensitive-value-123","value":"other-value-4567890","template":"opaque"}]}`,
}

// FuzzTokenizeHTTP fuzzes the body of POST /v1/tokens:tokenize.
func FuzzTokenizeHTTP(f *testing.F) {
	for _, s := range tokenizeSeeds {
		f.Add([]byte(s))
	}
	fs := startFuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		code, resp := fs.For(t).Post("/v1/tokens:tokenize", rootSecret, body)
		checkResponse(t, body, code, resp)
	})
}

// FuzzDetokenizeHTTP fuzzes the body of POST /v1/tokens:detokenize, seeded with real tokens.
func FuzzDetokenizeHTTP(f *testing.F) {
	fs := startFuzzServer(f)
	code, resp := fs.Post("/v1/tokens:tokenize", rootSecret, tokenizeSeeds[1])
	if code != http.StatusOK {
		f.Fatalf("tokenizing the seed values: HTTP %d %s", code, resp)
	}
	var res struct {
		Results []struct{ Token string } `json:"results"`
	}
	if err := json.Unmarshal(resp, &res); err != nil || len(res.Results) != 3 {
		f.Fatalf("tokenizing the seed values: %v %s", err, resp)
	}
	pan, email, ssn := res.Results[0].Token, res.Results[1].Token, res.Results[2].Token
	for _, s := range []string{
		`{"items":[{"token":"` + pan + `"}],"purpose":"refund-1234"}`,
		`{"items":[{"token":"` + pan + `","template":"pan"},{"token":"` + email + `","domain":"default"},{"token":"` + ssn + `","template":"ssn"}]}`,
		`{"items":[{"token":"` + pan + `","domain":"acme"}]}`,
		`{"items":[{"token":"` + pan + `","template":"ssn"}]}`,
		`{"items":[{"token":"tok_doesnotexist0123456789"}]}`,
		`{"items":[{"token":"` + pan + `","domain":"Bad Domain"}]}`,
		`{"items":[{"token":"` + pan + `","template":"Bad Template"}]}`,
		`{"items":[{"token":"` + pan + `"}],"purpose":"` + strings.Repeat("p", 300) + `"}`,
		`{"items":[{"token":"` + pan + `","unknown":"x"}]}`,
		`{"items":[{"token":["` + pan + `"]}]}`,
		`{"items":[{"token":"` + pan + `"`,
		`{"items":[]}`,
		`{}`,
		``,
		"{\"items\":[{\"token\":\"tok_\xff\xfe-not-utf8-token\"}]}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		code, resp := fs.For(t).Post("/v1/tokens:detokenize", rootSecret, body)
		checkResponse(t, body, code, resp)
	})
}

package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
)

type corpusDoc struct {
	Lang   string `json:"lang"`
	Region string `json:"region"`
	Text   string `json:"text"`
}

// corpusDocs returns the first n documents of each language of the held-out corpus.
func corpusDocs(t *testing.T, n int) []corpusDoc {
	f, err := os.Open("../vault/textscan/testdata/heldout.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	per := map[string]int{}
	var out []corpusDoc
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var d corpusDoc
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		if per[d.Lang] < n {
			per[d.Lang]++
			out = append(out, d)
		}
	}
	if len(per) < 4 {
		t.Fatalf("corpus has %d languages", len(per))
	}
	return out
}

func auditEvents(t *testing.T, h *testenv.Env) []vault.AuditEvent {
	evs, _, err := h.Vault.ListAudit(context.Background(), vault.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// TestTextRoundTrip tokenizes corpus texts of every language over gRPC, checks the tokens
// replaced exactly the findings, detokenizes over HTTP and gets the input back byte for byte;
// no value or token reaches the logs or the audit trail.
func TestTextRoundTrip(t *testing.T) { testenv.ForBackends(t, &pg, testTextRoundTrip) }

func testTextRoundTrip(t *testing.T, backend testenv.Option) {
	h := testenv.Start(t, backend)
	c := tvpb.NewTextServiceClient(h.Conn)
	docs := corpusDocs(t, 5)
	req := &tvpb.TokenizeTextRequest{}
	for _, d := range docs {
		req.Items = append(req.Items, &tvpb.TokenizeTextItem{Text: d.Text, Domain: "chat", DefaultRegion: d.Region})
	}
	resp, err := c.TokenizeText(authCtx(rootSecret), req)
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	body := map[string]any{"purpose": "support-42"}
	var items []map[string]string
	for i, r := range resp.GetResults() {
		if r.GetError() != nil {
			t.Fatalf("item %d: %v", i, r.GetError())
		}
		in := []rune(docs[i].Text)
		for _, f := range r.GetFindings() {
			val := string(in[f.GetStart():f.GetEnd()])
			if f.GetToken() == "" || f.GetToken() == val || !strings.Contains(r.GetText(), f.GetToken()) {
				t.Errorf("item %d: finding %s: token missing or equal to the value", i, f.GetEntity())
			}
			if strings.Contains(r.GetText(), val) && len(val) > 6 {
				t.Errorf("item %d: tokenized text still holds a %s value", i, f.GetEntity())
			}
			secrets = append(secrets, val, f.GetToken())
		}
		items = append(items, map[string]string{"text": r.GetText(), "domain": "chat"})
	}
	if len(secrets) < 20 {
		t.Fatalf("only %d findings in %d texts", len(secrets)/2, len(docs))
	}
	body["items"] = items
	code, out := h.Post(h.URL("/v1/text:detokenize"), rootSecret, body)
	if code != 200 {
		t.Fatalf("detokenize: %d %s", code, out)
	}
	var dr struct {
		Results []struct {
			Text     string `json:"text"`
			Replaced int    `json:"replaced"`
		} `json:"results"`
	}
	decodeInto(t, out, &dr)
	for i, r := range dr.Results {
		if r.Text != docs[i].Text {
			t.Errorf("item %d (%s): round trip differs:\n got %q\nwant %q", i, docs[i].Lang, r.Text, docs[i].Text)
		}
		if r.Replaced != len(resp.GetResults()[i].GetFindings()) {
			t.Errorf("item %d: replaced %d of %d", i, r.Replaced, len(resp.GetResults()[i].GetFindings()))
		}
	}
	h.AssertNotLogged(secrets...)
	evs, _ := json.Marshal(auditEvents(t, h))
	for _, s := range secrets {
		if strings.Contains(string(evs), s) {
			t.Errorf("audit trail holds a value or token (%d bytes)", len(s))
		}
	}
	var reveal bool
	for _, ev := range auditEvents(t, h) {
		if strings.Contains(ev.Method, "DetokenizeText") && ev.Purpose == "support-42" && ev.Allowed > 0 {
			reveal = true
		}
	}
	if !reveal {
		t.Error("no audited reveal with the purpose")
	}
}

// TestTextOffsetsCodePoints: offsets count code points, past emoji and combining marks.
func TestTextOffsetsCodePoints(t *testing.T) {
	h := testenv.Start(t)
	text := "Grüße 👍🏽 e\u0301 — card 4111 1111 1111 1111, mail jo@example.com"
	resp, err := tvpb.NewTextServiceClient(h.Conn).TokenizeText(authCtx(rootSecret), &tvpb.TokenizeTextRequest{
		Items: []*tvpb.TokenizeTextItem{{Text: text, Mode: "detect"}}})
	if err != nil {
		t.Fatal(err)
	}
	rs := []rune(text)
	want := map[string]string{"pan": "4111 1111 1111 1111", "email": "jo@example.com"}
	fs := resp.GetResults()[0].GetFindings()
	if len(fs) != 2 {
		t.Fatalf("findings: %v", fs)
	}
	for _, f := range fs {
		if got := string(rs[f.GetStart():f.GetEnd()]); got != want[f.GetEntity()] {
			t.Errorf("%s at [%d,%d) is %q", f.GetEntity(), f.GetStart(), f.GetEnd(), got)
		}
		if f.GetToken() != "" {
			t.Error("detect returned a token")
		}
	}
	if resp.GetResults()[0].GetText() != text {
		t.Error("detect changed the text")
	}
}

// TestTextDetectStoresNothing: detect writes nothing (every store change is audited in its
// own transaction, so an unchanged audit trail is an unchanged store), and its values are
// not tokens afterwards.
func TestTextDetectStoresNothing(t *testing.T) {
	h := testenv.Start(t)
	before := len(auditEvents(t, h))
	text := "SSN 123-45-6789, card 4111-1111-1111-1111, +49 30 12345678"
	code, out := h.Post(h.URL("/v1/text:tokenize"), rootSecret, map[string]any{"items": []map[string]any{{"text": text, "mode": "detect", "domain": "d1"}}})
	var dr struct {
		Results []struct {
			Findings []struct {
				Entity     string  `json:"entity"`
				Start, End int     // JSON numbers, code points
				Confidence float64 `json:"confidence"`
			} `json:"findings"`
		} `json:"results"`
	}
	decodeInto(t, out, &dr)
	if code != 200 || len(dr.Results) != 1 || len(dr.Results[0].Findings) != 3 || dr.Results[0].Findings[0].Entity != "ssn" ||
		dr.Results[0].Findings[0].Start != 4 || dr.Results[0].Findings[0].End != 15 {
		t.Fatalf("detect: %d %s", code, out)
	}
	if after := len(auditEvents(t, h)); after != before {
		t.Errorf("detect changed the store: %d audit events, was %d", after, before)
	}
	h.AssertNotLogged("123-45-6789", "4111-1111-1111-1111")
}

// TestTextBatchErrors: a bad item fails alone; a malformed call fails whole; a text that is
// not a token stays as it is on detokenize, without error.
func TestTextBatchErrors(t *testing.T) {
	h := testenv.Start(t)
	c := tvpb.NewTextServiceClient(h.Conn)
	resp, err := c.TokenizeText(authCtx(rootSecret), &tvpb.TokenizeTextRequest{Items: []*tvpb.TokenizeTextItem{
		{Text: "card 4111 1111 1111 1111"},
		{Text: "call 030 1234567", DefaultRegion: "QQ"},
		{Text: "nothing here"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.GetResults()
	if r[0].GetError() != nil || r[2].GetError() != nil || r[2].GetText() != "nothing here" {
		t.Fatalf("good items failed: %v", r)
	}
	if r[1].GetError().GetCode() != "INVALID_ARGUMENT" || strings.Contains(r[1].GetError().GetMessage(), "030") {
		t.Errorf("bad region: %v", r[1].GetError())
	}
	for _, bad := range []*tvpb.TokenizeTextRequest{
		{},
		{Items: []*tvpb.TokenizeTextItem{{Text: "x", Entities: []string{"name"}}}},
		{Items: []*tvpb.TokenizeTextItem{{Text: "x", Mode: "redact"}}},
		{Items: []*tvpb.TokenizeTextItem{{Text: strings.Repeat("1", 1<<20+1)}}},
	} {
		if _, err := c.TokenizeText(authCtx(rootSecret), bad); status.Code(err) != codes.InvalidArgument {
			t.Errorf("malformed call: %v", err)
		}
	}
	if _, err := c.DetokenizeText(authCtx(rootSecret), &tvpb.DetokenizeTextRequest{Items: []*tvpb.DetokenizeTextItem{{Text: "x"}}}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("detokenize without purpose: %v", err)
	}
	plain := "card 4000 0000 0000 0002 and tok_AAAAAAAAAAAAAAAAAAAAAA, a@b.example"
	dr, err := c.DetokenizeText(authCtx(rootSecret), &tvpb.DetokenizeTextRequest{Purpose: "p", Items: []*tvpb.DetokenizeTextItem{{Text: plain}}})
	if err != nil || dr.GetResults()[0].GetText() != plain || dr.GetResults()[0].GetReplaced() != 0 {
		t.Errorf("non-tokens changed: %v %v", dr, err)
	}
}

// TestTextPolicy: the text RPCs are in the authorization table with the roles docs/text.md
// names (TestAllowMatrix then calls them with every role).
func TestTextPolicy(t *testing.T) {
	p := server.Policy(false)
	for m, want := range map[string]vault.Role{
		tvpb.TextService_TokenizeText_FullMethodName:   vault.RoleTokenizer,
		tvpb.TextService_DetokenizeText_FullMethodName: vault.RoleDetokenizer,
	} {
		r, ok := p[m]
		if !ok || !r.Allows(want) || !r.Allows(vault.RoleAdmin) || r.Allows(vault.RoleAuditor) || r.Allows(vault.RoleVendor) {
			t.Errorf("%s: rule %+v", m, r)
		}
	}
	if r := p[tvpb.TextService_TokenizeText_FullMethodName]; r.Allows(vault.RoleDetokenizer) {
		t.Error("detokenizer may tokenize text")
	}
	if r := p[tvpb.TextService_DetokenizeText_FullMethodName]; r.Allows(vault.RoleTokenizer) {
		t.Error("tokenizer may detokenize text")
	}
}

// TestRecordsScan: a field policy rule "scan" tokenizes the personal data inside a free-text
// field (and only it), detokenize reverses it byte for byte, and "scan" cannot be a template.
func TestRecordsScan(t *testing.T) {
	h := testenv.Start(t)
	body := `{"domain":"tickets","policy":{"$.ticket.body":"scan","$.customer.email":"email"},
	  "documents":[{"ticket":{"id":7,"body":"Hi, my card 4111 1111 1111 1111 was charged twice. Call +49 30 12345678."},"customer":{"email":"jo@example.com"}}]}`
	code, resp := h.Post(h.URL("/v1/records:tokenize"), rootSecret, body)
	if code != 200 || contains(resp, "4111 1111 1111 1111") || contains(resp, "12345678") || contains(resp, "jo@example.com") ||
		!contains(resp, "was charged twice. Call +49 ") || !contains(resp, `"id":7`) {
		t.Fatalf("records tokenize with scan: %d %s", code, resp)
	}
	var tok struct {
		Documents []json.RawMessage `json:"documents"`
	}
	decodeInto(t, resp, &tok)
	back, _ := json.Marshal(map[string]any{"domain": "tickets", "purpose": "p", "policy": map[string]string{"$.ticket.body": "scan", "$.customer.email": "email"}, "documents": tok.Documents})
	code, resp = h.Post(h.URL("/v1/records:detokenize"), rootSecret, string(back))
	if code != 200 || !contains(resp, "Hi, my card 4111 1111 1111 1111 was charged twice. Call +49 30 12345678.") || !contains(resp, "jo@example.com") {
		t.Fatalf("records detokenize with scan: %d %s", code, resp)
	}
	if code, resp := h.Post(h.URL("/v1/templates"), rootSecret, `{"name":"scan","base":"digits"}`); code < 400 {
		t.Errorf("template named scan: %d %s", code, resp)
	}
}

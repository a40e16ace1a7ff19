package vault

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestTextCorpusRoundTrip tokenizes every document of both corpora (all languages) and
// detokenizes the result: the input comes back byte for byte, every finding was replaced,
// and detokenizing in another domain changes nothing.
func TestTextCorpusRoundTrip(t *testing.T) {
	v, _ := openTest(t)
	ctx := context.Background()
	for _, file := range []string{"tune.jsonl", "heldout.jsonl"} {
		f, err := os.Open("textscan/testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		var items []TextItem
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var d struct{ Text, Region string }
			if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
				t.Fatal(err)
			}
			items = append(items, TextItem{Text: d.Text, Domain: "rt", DefaultRegion: d.Region})
		}
		f.Close()
		res, err := v.TokenizeText(ctx, items)
		if err != nil {
			t.Fatal(err)
		}
		back := make([]TextDetokenizeItem, len(res))
		other := make([]TextDetokenizeItem, len(res))
		findings := 0
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("%s %d: %v", file, i, r.Err)
			}
			findings += len(r.Findings)
			back[i] = TextDetokenizeItem{Text: r.Text, Domain: "rt"}
			other[i] = TextDetokenizeItem{Text: r.Text, Domain: "elsewhere"}
		}
		out, _, err := v.DetokenizeText(ctx, "test", back)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range out {
			if r.Err != nil || r.Text != items[i].Text || r.Replaced != len(res[i].Findings) {
				t.Errorf("%s %d: round trip: err %v, replaced %d of %d\n got %q\nwant %q", file, i, r.Err, r.Replaced, len(res[i].Findings), r.Text, items[i].Text)
			}
		}
		out, _, err = v.DetokenizeText(ctx, "test", other)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range out {
			if r.Replaced != 0 || r.Text != res[i].Text {
				t.Errorf("%s %d: another domain's detokenize replaced %d", file, i, r.Replaced)
			}
		}
		t.Logf("%s: %d texts, %d findings round-tripped", file, len(items), findings)
	}
}

// TestTextDetectStoresNothing: detect returns findings but no tokens and leaves the store
// as it was (no audit event: every change is audited in its own transaction).
func TestTextDetectStoresNothing(t *testing.T) {
	v, _ := openTest(t)
	ctx := context.Background()
	before, _, err := v.ListAudit(ctx, AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.TokenizeText(ctx, []TextItem{{Text: "card 4111 1111 1111 1111", Detect: true}})
	if err != nil || len(res[0].Findings) != 1 || res[0].Findings[0].Token != "" || res[0].Text != "card 4111 1111 1111 1111" {
		t.Fatalf("detect: %+v %v", res, err)
	}
	after, _, _ := v.ListAudit(ctx, AuditFilter{Limit: 1000})
	if len(after) != len(before) {
		t.Errorf("detect wrote %d audit events", len(after)-len(before))
	}
	out, _, err := v.DetokenizeText(ctx, "p", []TextDetokenizeItem{{Text: "card 4111 1111 1111 1111"}})
	if err != nil || out[0].Replaced != 0 {
		t.Errorf("a detected value became a token: %+v %v", out, err)
	}
}

// TestTextItemErrors: item errors name the problem, never the text.
func TestTextItemErrors(t *testing.T) {
	v, _ := openTest(t)
	res, err := v.TokenizeText(context.Background(), []TextItem{
		{Text: "secret 4111111111111111\xff"},
		{Text: strings.Repeat("4", MaxTextBytes+1)},
		{Text: "x", Entities: []string{"name"}},
		{Text: "x", DefaultRegion: "QQ"},
		{Text: "x", MinConfidence: 2},
		{Text: "ok 4111 1111 1111 1111"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res[:5] {
		if r.Err == nil || strings.Contains(r.Err.Error(), "4111") {
			t.Errorf("item %d: %v", i, r.Err)
		}
	}
	if res[5].Err != nil || len(res[5].Findings) != 1 {
		t.Errorf("good item: %+v", res[5])
	}
	if _, err := v.TokenizeText(context.Background(), nil); err == nil {
		t.Error("empty batch accepted")
	}
}

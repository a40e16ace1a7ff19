package server_test

import (
	"os"
	"strings"
	"testing"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

// benchText is 16 texts of a benchmark corpus, 4 KiB each: a 64 KiB call.
func benchText(b *testing.B, file string) []string {
	data, err := os.ReadFile("../vault/textscan/testdata/" + file)
	if err != nil {
		b.Fatal(err)
	}
	var texts []string
	for i := 0; i < 16; i++ {
		s := string(data[i*4096 : (i+1)*4096])
		texts = append(texts, strings.ToValidUTF8(s, "?"))
	}
	return texts
}

// BenchmarkTextTokenizeE2E: gRPC TokenizeText (what POST /v1/text:tokenize calls) of 64 KiB
// of dense text a call through a real server (bytes/s of text and findings/s).
func BenchmarkTextTokenizeE2E(b *testing.B) { benchTextE2E(b, "dense.txt") }

// BenchmarkTextTokenizeE2EProse: the same with prose (sparse findings).
func BenchmarkTextTokenizeE2EProse(b *testing.B) { benchTextE2E(b, "prose.txt") }

func benchTextE2E(b *testing.B, file string) {
	h := testenv.Start(b, testenv.DiscardLogs())
	c := tvpb.NewTextServiceClient(h.Conn)
	req := &tvpb.TokenizeTextRequest{}
	n := 0
	for _, t := range benchText(b, file) {
		req.Items = append(req.Items, &tvpb.TokenizeTextItem{Text: t, Domain: "bench", DefaultRegion: "DE"})
		n += len(t)
	}
	b.SetBytes(int64(n))
	found := 0
	for b.Loop() {
		resp, err := c.TokenizeText(authCtx(rootSecret), req)
		if err != nil {
			b.Fatal(err)
		}
		found = 0
		for _, r := range resp.GetResults() {
			found += len(r.GetFindings())
		}
	}
	b.ReportMetric(float64(found)*float64(b.N)/b.Elapsed().Seconds(), "findings/s")
}

// BenchmarkPlainTokenizeE2E: the same values as BenchmarkTextTokenizeE2E's findings, sent to
// Tokenize directly: the plain vault tokenize rate to compare with.
func BenchmarkPlainTokenizeE2E(b *testing.B) {
	h := testenv.Start(b, testenv.DiscardLogs())
	tc := tvpb.NewTextServiceClient(h.Conn)
	det := &tvpb.TokenizeTextRequest{}
	for _, t := range benchText(b, "dense.txt") {
		det.Items = append(det.Items, &tvpb.TokenizeTextItem{Text: t, Mode: "detect", DefaultRegion: "DE"})
	}
	resp, err := tc.TokenizeText(authCtx(rootSecret), det)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := map[string]string{"pan": "pan", "ssn": "ssn", "email": "email", "phone": "phone", "iban": "iban", "ip": "opaque"}
	req := &tvpb.TokenizeRequest{}
	for i, r := range resp.GetResults() {
		rs := []rune(det.Items[i].Text)
		for _, f := range r.GetFindings() {
			req.Items = append(req.Items, &tvpb.TokenizeItem{Value: string(rs[f.GetStart():f.GetEnd()]), Template: tmpl[f.GetEntity()], Domain: "bench"})
		}
	}
	c := tvpb.NewTokenServiceClient(h.Conn)
	for b.Loop() {
		if _, err := c.Tokenize(authCtx(rootSecret), req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(req.Items))*float64(b.N)/b.Elapsed().Seconds(), "findings/s")
}

package server_test

import (
	"context"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

// The audit views the console reads: the new list filters, one event with its chain
// position, the stats of a window and the chain's status, over real vendor traffic.

// auditFixture makes a varied trail: a vendor with two grants revealing through one, the
// other and both at once, a denied call, a canary reveal (an alert), an internal detokenize
// with a purpose, and a denied internal call. It returns the grants' ids.
func auditFixture(t *testing.T, h *testenv.Env) (g1, g2 string) {
	t.Helper()
	ctx := context.Background()
	_, vendorSecret, err := h.Vault.CreateCredential(ctx, vault.CredentialSpec{Name: "acme-api", Role: vault.RoleVendor, Vendor: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	grant := func(domain string) string {
		g, err := h.Vault.CreateGrant(ctx, vault.Grant{Vendor: "acme", Domains: []string{domain}, Templates: []string{"pan"}, Purpose: "refunds", ExpireTime: time.Now().Add(24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return g.ID
	}
	g1, g2 = grant("a"), grant("b")
	tok := func(domain, value string) string {
		res, err := h.Vault.Tokenize(ctx, []vault.TokenizeItem{{Value: value, Template: "pan", Domain: domain}})
		if err != nil || res[0].Err != nil {
			t.Fatal(err, res)
		}
		return res[0].Token
	}
	a1, a2, b1 := tok("a", "4111111111111111"), tok("a", "5555555555554444"), tok("b", "4012888888881881")
	code, body := h.Post("/v1/canaries", rootSecret, map[string]any{"domain": "a", "template": "pan", "value": "4000000000000002", "label": "planted"})
	if code != http.StatusOK {
		t.Fatalf("canary: %d %s", code, body)
	}
	var canary struct{ Token string }
	decodeInto(t, body, &canary)
	type item struct{ tok, domain string }
	reveal := func(purpose string, items ...item) {
		var its []map[string]string
		for _, it := range items {
			its = append(its, map[string]string{"token": it.tok, "domain": it.domain})
		}
		if code, body := h.Do("POST", h.VendorURL("/v1/tokens:detokenize"), vendorSecret, map[string]any{"items": its, "purpose": purpose}); code != http.StatusOK {
			t.Fatalf("vendor detokenize: %d %s", code, body)
		}
	}
	reveal("refunds", item{a1, "a"}, item{a2, "a"})
	reveal("chargeback", item{b1, "b"})
	reveal("refunds", item{a1, "a"}, item{b1, "b"})
	reveal("refunds", item{a1, "c"}) // no grant covers domain c: denied
	reveal("refunds", item{canary.Token, "a"})
	if code, body := h.Post("/v1/tokens:detokenize", rootSecret, map[string]any{"items": []map[string]string{{"token": a2, "domain": "a"}}, "purpose": "support-42"}); code != http.StatusOK {
		t.Fatalf("internal detokenize: %d %s", code, body)
	}
	h.Post("/v1/tokens:detokenize", "tvs_wrong", map[string]any{"items": []map[string]string{{"token": a2, "domain": "a"}}})
	// The canary alert is fired after the call returns: wait for its event.
	deadline := time.Now().Add(30 * time.Second)
	for len(listAudit(t, h, "method=Alert")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no alert event")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return g1, g2
}

// getProto GETs path as root and decodes the answer into m.
func getProto(t *testing.T, h *testenv.Env, p string, m proto.Message) int {
	t.Helper()
	code, body := h.Do("GET", p, rootSecret, nil)
	if code == http.StatusOK {
		if err := protojson.Unmarshal(body, m); err != nil {
			t.Fatalf("GET %s: %v: %s", p, err, body)
		}
	}
	return code
}

func seqs(evs []vault.AuditEvent) []uint64 {
	var out []uint64
	for _, ev := range evs {
		out = append(out, ev.Seq)
	}
	return out
}

// TestAuditListFilters: each new filter returns exactly the events of the whole trail that
// match it.
func TestAuditListFilters(t *testing.T) {
	h := testenv.Start(t)
	g1, g2 := auditFixture(t, h)
	all := listAudit(t, h, "")
	var reqID string
	for _, ev := range all {
		if path.Base(ev.Method) == "VendorDetokenize" && ev.Purpose == "chargeback" {
			reqID = ev.RequestID
		}
	}
	if reqID == "" {
		t.Fatal("fixture lacks the chargeback reveal")
	}
	cases := []struct {
		query string
		match func(vault.AuditEvent) bool
		min   int
	}{
		{"domain=a", func(ev vault.AuditEvent) bool { return slices.Contains(ev.Domains, "a") }, 4},
		{"domain=b", func(ev vault.AuditEvent) bool { return slices.Contains(ev.Domains, "b") }, 3},
		{"template=pan", func(ev vault.AuditEvent) bool { return slices.Contains(ev.Templates, "pan") }, 6},
		{"purpose=support-42", func(ev vault.AuditEvent) bool { return ev.Purpose == "support-42" }, 1},
		{"purpose=refunds", func(ev vault.AuditEvent) bool { return ev.Purpose == "refunds" }, 4},
		{"request_id=" + reqID, func(ev vault.AuditEvent) bool { return ev.RequestID == reqID }, 1},
		{"grant_id=" + g1, func(ev vault.AuditEvent) bool { return slices.Contains(ev.GrantIDs, g1) }, 2},
		{"grant_id=" + g2, func(ev vault.AuditEvent) bool { return slices.Contains(ev.GrantIDs, g2) }, 2},
		{"grant_id=" + g1 + "&purpose=refunds&domain=b", func(ev vault.AuditEvent) bool {
			return slices.Contains(ev.GrantIDs, g1) && ev.Purpose == "refunds" && slices.Contains(ev.Domains, "b")
		}, 1},
		{"outcome=alert", func(ev vault.AuditEvent) bool { return ev.Outcome == "alert" && ev.Method == vault.AlertMethod }, 1},
		{"vendor=acme&outcome=denied", func(ev vault.AuditEvent) bool { return ev.Actor.Vendor == "acme" && ev.Outcome == vault.OutcomeDenied }, 1},
	}
	for _, c := range cases {
		var want []vault.AuditEvent
		for _, ev := range all {
			if c.match(ev) {
				want = append(want, ev)
			}
		}
		got := listAudit(t, h, c.query)
		if !slices.Equal(seqs(got), seqs(want)) || len(got) < c.min {
			t.Errorf("%s: events %v, want %v (at least %d)", c.query, seqs(got), seqs(want), c.min)
		}
	}
	if code, _ := h.Do("GET", "/v1/audit/events?domain="+url.QueryEscape(string(make([]byte, 80))), rootSecret, nil); code != http.StatusBadRequest {
		t.Errorf("overlong domain filter: HTTP %d, want 400", code)
	}
}

// TestAuditEventDetail: one event with its chain position; signed and verified once a
// checkpoint covers it; 404 for none.
func TestAuditEventDetail(t *testing.T) {
	h := testenv.Start(t)
	auditFixture(t, h)
	all := listAudit(t, h, "")
	last := all[len(all)-1].Seq
	var ev tvpb.GetAuditEventResponse
	if code := getProto(t, h, "/v1/audit/events/1", &ev); code != http.StatusOK {
		t.Fatalf("event 1: HTTP %d", code)
	}
	if c := ev.GetChain(); c.GetSeq() != 1 || !c.GetLinked() || c.GetPrevHash() != "sha256:"+zeroHex || ev.GetEvent().GetSeq() != 1 {
		t.Errorf("event 1: %v", &ev)
	}
	// GET /v1/audit/status signs the head: everything is then covered.
	var st tvpb.GetAuditStatusResponse
	if code := getProto(t, h, "/v1/audit/status", &st); code != http.StatusOK || !st.GetVerified() {
		t.Fatalf("status: HTTP %d %v", code, &st)
	}
	var prevHash string
	for seq := uint64(1); seq <= last; seq++ {
		var d tvpb.GetAuditEventResponse
		if code := getProto(t, h, "/v1/audit/events/"+strconv.FormatUint(seq, 10), &d); code != http.StatusOK {
			t.Fatalf("event %d: HTTP %d", seq, code)
		}
		c := d.GetChain()
		if !c.GetLinked() || !c.GetSigned() || !c.GetVerified() || c.GetCheckpointSeq() < seq || c.GetCheckpointSeq() > st.GetHeadSeq() {
			t.Errorf("event %d: chain %v", seq, c)
		}
		if seq > 1 && c.GetPrevHash() != prevHash {
			t.Errorf("event %d: prev hash %s, want the hash of event %d, %s", seq, c.GetPrevHash(), seq-1, prevHash)
		}
		prevHash = c.GetHash()
		// The event is the list's.
		if seq == last && d.GetEvent().GetSeq() != last {
			t.Errorf("event %d: %v", seq, d.GetEvent())
		}
	}
	if code, _ := h.Do("GET", "/v1/audit/events/999999", rootSecret, nil); code != http.StatusNotFound {
		t.Errorf("no such event: HTTP %d, want 404", code)
	}
	if code, _ := h.Do("GET", "/v1/audit/events/0", rootSecret, nil); code != http.StatusBadRequest {
		t.Errorf("event 0: HTTP %d, want 400", code)
	}
}

const zeroHex = "0000000000000000000000000000000000000000000000000000000000000000"

// TestAuditStats: the window's totals equal what the listed events of the same range add up
// to, per series too; the buckets are whole and aligned.
func TestAuditStats(t *testing.T) {
	h := testenv.Start(t)
	g1, g2 := auditFixture(t, h)
	for _, w := range []struct {
		name    string
		bucket  time.Duration
		buckets int
	}{{"24h", time.Hour, 24}, {"7d", 6 * time.Hour, 28}, {"30d", 24 * time.Hour, 30}} {
		var st tvpb.GetAuditStatsResponse
		if code := getProto(t, h, "/v1/audit/stats?window="+w.name, &st); code != http.StatusOK {
			t.Fatalf("stats %s: HTTP %d", w.name, code)
		}
		start, end := st.GetStart().AsTime(), st.GetEnd().AsTime()
		if st.GetWindow() != w.name || time.Duration(st.GetBucketSeconds())*time.Second != w.bucket || end.Sub(start) != time.Duration(w.buckets)*w.bucket ||
			!start.Equal(start.Truncate(w.bucket)) || time.Now().Before(end.Add(-w.bucket)) || !time.Now().Before(end) {
			t.Errorf("%s: window %s..%s, bucket %ds", w.name, start, end, st.GetBucketSeconds())
		}
		if len(st.GetDenials()) != w.buckets || len(st.GetAlerts()) != w.buckets {
			t.Errorf("%s: %d denial and %d alert points, want %d", w.name, len(st.GetDenials()), len(st.GetAlerts()), w.buckets)
		}
		// What the events of the same range add up to.
		evs := listAudit(t, h, "start_time="+url.QueryEscape(start.Format(time.RFC3339Nano))+"&end_time="+url.QueryEscape(end.Format(time.RFC3339Nano)))
		var reveals, denials, alerts int64
		perSeries := map[[2]string]int64{}
		for _, ev := range evs {
			if vault.IsRevealMethod(ev.Method) {
				reveals += int64(ev.Allowed)
				g := ""
				if len(ev.GrantIDs) == 1 {
					g = ev.GrantIDs[0]
				}
				if ev.Allowed > 0 {
					perSeries[[2]string{ev.Actor.Vendor, g}] += int64(ev.Allowed)
				}
			}
			if ev.Outcome == vault.OutcomeDenied {
				denials++
			}
			if ev.Method == vault.AlertMethod {
				alerts++
			}
		}
		tot := st.GetTotals()
		if tot.GetReveals() != reveals || tot.GetDenials() != denials || tot.GetAlerts() != alerts {
			t.Errorf("%s: totals %v, the listed events add up to reveals %d, denials %d, alerts %d", w.name, tot, reveals, denials, alerts)
		}
		// The fixture's own numbers: 2 + 1 + 2 vendor reveals and the canary's decoy (through
		// g1), 1 internal; the denied vendor call and the bad secret; one alert.
		if reveals != 7 || denials != 2 || alerts != 1 {
			t.Errorf("%s: reveals %d, denials %d, alerts %d; want 7, 2, 1", w.name, reveals, denials, alerts)
		}
		want := map[[2]string]int64{{"acme", g1}: 3, {"acme", g2}: 1, {"acme", ""}: 2, {"", ""}: 1}
		got := map[[2]string]int64{}
		var sumDenials int64
		for _, s := range st.GetSeries() {
			if len(s.GetPoints()) != w.buckets {
				t.Errorf("%s: series %s/%s has %d points", w.name, s.GetVendor(), s.GetGrantId(), len(s.GetPoints()))
			}
			for i, p := range s.GetPoints() {
				if !p.GetTime().AsTime().Equal(start.Add(time.Duration(i) * w.bucket)) {
					t.Errorf("%s: point %d at %s", w.name, i, p.GetTime().AsTime())
				}
				got[[2]string{s.GetVendor(), s.GetGrantId()}] += p.GetReveals()
			}
		}
		for _, p := range st.GetDenials() {
			sumDenials += p.GetCount()
		}
		if len(got) != len(want) || sumDenials != denials {
			t.Errorf("%s: series %v, want %v; denial points sum to %d", w.name, got, want, sumDenials)
		}
		for k, n := range want {
			if got[k] != n || perSeries[k] != n {
				t.Errorf("%s: series %v: %d (events say %d), want %d", w.name, k, got[k], perSeries[k], n)
			}
		}
	}
	if code, _ := h.Do("GET", "/v1/audit/stats?window=1y", rootSecret, nil); code != http.StatusBadRequest {
		t.Errorf("window 1y: HTTP %d, want 400", code)
	}
	_, auditorSecret := newCredential(t, h, "aud", "auditor", "")
	_, tokSecret := newCredential(t, h, "tok", "tokenizer", "")
	for secret, want := range map[string]int{auditorSecret: 200, tokSecret: 403} {
		for _, p := range []string{"/v1/audit/stats", "/v1/audit/status", "/v1/audit/events/1"} {
			if code, _ := h.Do("GET", p, secret, nil); code != want {
				t.Errorf("GET %s: HTTP %d, want %d", p, code, want)
			}
		}
	}
}

// TestAuditStatsClock: the window follows the vault's clock; events outside it are not
// counted.
func TestAuditStatsClock(t *testing.T) {
	clk := &testClock{t: time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)}
	h := testenv.Start(t, testenv.Clock(clk.now))
	auditFixture(t, h)
	var st tvpb.GetAuditStatsResponse
	getProto(t, h, "/v1/audit/stats?window=24h", &st)
	if tot := st.GetTotals(); tot.GetReveals() != 7 || tot.GetAlerts() != 1 || !st.GetEnd().AsTime().Equal(time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)) {
		t.Errorf("stats now: totals %v, end %v", tot, st.GetEnd().AsTime())
	}
	clk.add(25 * time.Hour)
	st.Reset()
	getProto(t, h, "/v1/audit/stats?window=24h", &st)
	if st.GetTotals().GetReveals() != 0 || st.GetTotals().GetDenials() != 0 {
		t.Errorf("a day later the 24h window still counts: %v", st.GetTotals())
	}
	st.Reset()
	getProto(t, h, "/v1/audit/stats?window=7d", &st)
	if st.GetTotals().GetReveals() != 7 {
		t.Errorf("a day later the 7d window: %v", st.GetTotals())
	}
}

// TestAuditStatus: the stored chain verifies and its head is signed.
func TestAuditStatus(t *testing.T) {
	h := testenv.Start(t)
	auditFixture(t, h)
	var st tvpb.GetAuditStatusResponse
	if code := getProto(t, h, "/v1/audit/status", &st); code != http.StatusOK {
		t.Fatalf("HTTP %d", code)
	}
	all := listAudit(t, h, "")
	head := all[len(all)-1].Seq
	// The status call itself is audited (after its verification): the head it reports is
	// the one before it.
	if !st.GetVerified() || st.GetProblem() != "" || st.GetHeadSeq() < head-1 || st.GetCheckpoint().GetSeq() != st.GetHeadSeq() ||
		st.GetCheckpoint().GetHash() == "" || st.GetCheckpoint().GetTime() == nil {
		t.Errorf("status %v (head %d)", &st, head)
	}
}

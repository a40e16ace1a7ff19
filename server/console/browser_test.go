package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testenv"
	"github.com/tokenvault/tokenvault/internal/testpg"
)

// The browser tests need Node.js, the e2e package's node_modules and Chromium. .ci/run installs
// them ("== console browser tests: chromium and npm ci" step); without them the test is
// skipped with a message saying so, as internal/testpg does without PostgreSQL (and fails,
// like it, under TOKENVAULT_REQUIRE_TOOLS=1, which .ci/run sets).
const ciStep = `the .ci/run step "console browser tests: chromium and npm ci" (apt-get install -y chromium; npm ci --prefix server/console/e2e)`

// Plain values the seed tokenizes. The console must never show one, nor receive one.
var seedValues = map[string]string{
	"acmePAN":   "4111111111111111",
	"acmeSSN":   "123-45-6789",
	"globexPAN": "5555555555554444",
	"subject":   "4000056655665556",
	"erasable":  "987-65-4320",
	"canary":    "4000000000000002",
}

// Data whose text is markup: the console must render it as text and run none of it.
const (
	xssPurpose = `refunds <img src=x onerror="window.__xss='grant'">`
	xssReveal  = `order-42 <script>window.__xss='reveal'</script>`
	xssLabel   = `export <svg onload="window.__xss='canary'"></svg>`
)

// skipMissing skips t for a missing tool, or fails it when .ci/run asked for every tool
// (testpg.RequireToolsEnv=1): CI must never pass by skipping the browser.
func skipMissing(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv(testpg.RequireToolsEnv) == "1" {
		t.Fatal(msg + " (" + testpg.RequireToolsEnv + "=1: missing tools fail instead of skipping)")
	}
	t.Skip(msg)
}

func browserPrereqs(t *testing.T) (node, chromium string) {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests: not in -short mode")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skipMissing(t, "console browser tests: node (Node.js 20+) not found on PATH; install it, then run "+ciStep)
	}
	chromium = os.Getenv("TOKENVAULT_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		skipMissing(t, "console browser tests: "+chromium+" not found; run "+ciStep)
	}
	if _, err := os.Stat(filepath.Join("e2e", "node_modules", "playwright-core", "package.json")); err != nil {
		skipMissing(t, "console browser tests: e2e/node_modules/playwright-core missing; run "+ciStep)
	}
	return node, chromium
}

// seed is what the browser test is told about the server's data.
type seed struct {
	BaseURL        string            `json:"baseURL"`
	VendorURL      string            `json:"vendorURL"`
	AttackerURL    string            `json:"attackerURL"`
	AdminSecret    string            `json:"adminSecret"`
	AuditorSecret  string            `json:"auditorSecret"`
	GlobexSecret   string            `json:"globexSecret"`
	AcmeSecret     string            `json:"acmeSecret"`
	AcmeCredential string            `json:"acmeCredential"`
	Admin2Secret   string            `json:"admin2Secret"`
	Admin2ID       string            `json:"admin2ID"`
	Tokens         map[string]string `json:"tokens"`
	Values         []string          `json:"values"`
	Secrets        []string          `json:"secrets"`
	XSS            []string          `json:"xss"`
	Expected       map[string]int    `json:"expected"`
	ArtifactsDir   string            `json:"artifactsDir"`
	DocsImgDir     string            `json:"docsImgDir"`
	Chromium       string            `json:"chromium"`
}

type client struct {
	t *testing.T
	h *testenv.Env
}

// call sends a request and decodes a 200 answer into a map; any other status fails the test.
func (c client) call(method, url, secret string, body any) map[string]any {
	c.t.Helper()
	code, data := c.h.Do(method, url, secret, body)
	if code != http.StatusOK {
		c.t.Fatalf("%s %s: HTTP %d %s", method, url, code, data)
	}
	out := map[string]any{}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &out); err != nil {
			c.t.Fatalf("%s %s: %v", method, url, err)
		}
	}
	return out
}

func (c client) credential(name, role, vendor string) (id, secret string) {
	c.t.Helper()
	body := map[string]any{"name": name, "role": role}
	if vendor != "" {
		body["vendor"] = vendor
	}
	r := c.call("POST", "/v1/credentials", testenv.RootSecret, body)
	return r["credential"].(map[string]any)["id"].(string), r["secret"].(string)
}

// reveal calls the vendor listener's detokenize and fails the test unless it answers want.
func (c client) reveal(want int, secret, purpose string, items ...map[string]string) {
	c.t.Helper()
	code, body := c.h.Do("POST", c.h.VendorURL("/v1/tokens:detokenize"), secret, map[string]any{"items": items, "purpose": purpose})
	if code != want {
		c.t.Fatalf("vendor reveal (purpose %q): HTTP %d %s, want %d", purpose, code, body, want)
	}
}

// auditEvents returns every event matching the query (admin), decoded.
func (c client) auditEvents(q string) []map[string]any {
	c.t.Helper()
	var out []map[string]any
	token := ""
	for {
		u := "/v1/audit/events?pageSize=1000" + q
		if token != "" {
			u += "&pageToken=" + token
		}
		r := c.call("GET", u, testenv.RootSecret, nil)
		evs, _ := r["events"].([]any)
		for _, e := range evs {
			var ev map[string]any
			if err := json.Unmarshal([]byte(e.(map[string]any)["json"].(string)), &ev); err != nil {
				c.t.Fatal(err)
			}
			out = append(out, ev)
		}
		token, _ = r["nextPageToken"].(string)
		if token == "" {
			return out
		}
	}
}

func num(v any) int {
	switch x := v.(type) {
	case float64:
		return int(x)
	case string:
		var n int
		fmt.Sscan(x, &n)
		return n
	}
	return 0
}

// TestConsoleInBrowser starts a real server with real data and runs the console's browser
// tests (e2e/console.test.mjs) against it in Chromium: sign-in and sign-out, an auditor who
// cannot act, creating and revoking a grant (the vendor is refused at once), audit filters
// against the API, chart totals against the audit trail, CSRF, CSP, and no value in anything
// the browser receives. Screenshots of each page go to $TOKENVAULT_CONSOLE_ARTIFACTS (kept), or
// to a temporary directory kept only when the test fails; TOKENVAULT_CONSOLE_DOCS_IMG=1 also
// writes them to docs/img/console-<page>.png.
func TestConsoleInBrowser(t *testing.T) {
	node, chromium := browserPrereqs(t)
	h := testenv.Start(t)
	c := client{t: t, h: h}

	_, adminSecret := c.credential("console-admin", "admin", "")
	_, auditorSecret := c.credential("console-auditor", "auditor", "")
	admin2ID, admin2Secret := c.credential("console-admin-2", "admin", "")
	acmeID, acmeSecret := c.credential("acme-api", "vendor", "acme")
	_, globexSecret := c.credential("globex-api", "vendor", "globex")

	tok := c.call("POST", "/v1/tokens:tokenize", testenv.RootSecret, map[string]any{"items": []map[string]string{
		{"value": seedValues["acmePAN"], "template": "pan", "domain": "acme"},
		{"value": seedValues["acmeSSN"], "template": "ssn", "domain": "acme-kyc"},
		{"value": seedValues["globexPAN"], "template": "pan", "domain": "globex"},
		{"value": seedValues["subject"], "template": "pan", "domain": "crm", "subject": "customer-42"},
		{"value": seedValues["erasable"], "template": "ssn", "domain": "acme"},
	}})
	tokens := map[string]string{}
	for i, name := range []string{"acmePAN", "acmeSSN", "globexPAN", "subject", "erasable"} {
		res := tok["results"].([]any)[i].(map[string]any)
		tv, ok := res["token"].(string)
		if !ok {
			t.Fatalf("tokenize %s: %v", name, res)
		}
		tokens[name] = tv
	}
	canary := c.call("POST", "/v1/canaries", testenv.RootSecret, map[string]any{"domain": "acme", "template": "pan", "value": seedValues["canary"], "label": xssLabel})
	tokens["canary"] = canary["token"].(string)

	grant := func(g map[string]any, ttl string) string {
		r := c.call("POST", "/v1/grants", testenv.RootSecret, map[string]any{"grant": g, "ttl": ttl})
		return r["grant"].(map[string]any)["id"].(string)
	}
	grant(map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": xssPurpose, "reveal": "REVEAL_FULL", "ratePerMinute": 600}, "2592000s")
	grant(map[string]any{"vendor": "acme", "domains": []string{"acme-short"}, "templates": []string{"pan"}, "purpose": "short-lived", "reveal": "REVEAL_MASKED"}, "259200s")
	grant(map[string]any{"vendor": "acme", "domains": []string{"acme-kyc"}, "templates": []string{"ssn"}, "purpose": "kyc", "reveal": "REVEAL_MASKED", "quota": "2"}, "172800s")

	// Reveals by the vendor, through the vendor listener: allowed (full and masked), then the
	// quota used up (429), a token of a domain no grant covers and another vendor (item
	// denials), and the canary. (Quotas count every item asked for in a granted domain, so the
	// grant with a quota has a domain of its own.)
	pan := map[string]string{"token": tokens["acmePAN"], "domain": "acme"}
	ssn := map[string]string{"token": tokens["acmeSSN"], "domain": "acme-kyc"}
	for i := 0; i < 3; i++ {
		c.reveal(http.StatusOK, acmeSecret, xssReveal, pan)
	}
	// Enough calls that the audit explorer has more than one page (50 events a page).
	for i := 0; i < 40; i++ {
		c.reveal(http.StatusOK, acmeSecret, "refunds", pan)
	}
	c.reveal(http.StatusOK, acmeSecret, "kyc", ssn, ssn)
	c.reveal(http.StatusTooManyRequests, acmeSecret, "kyc", ssn)
	c.reveal(http.StatusOK, acmeSecret, "refunds", map[string]string{"token": tokens["globexPAN"], "domain": "globex"})
	c.reveal(http.StatusOK, globexSecret, "refunds", pan)
	c.reveal(http.StatusOK, acmeSecret, "refunds", map[string]string{"token": tokens["canary"], "domain": "acme"})
	c.call("POST", "/v1/keys:rotate", testenv.RootSecret, map[string]any{})

	deadline := time.Now().Add(30 * time.Second)
	for len(c.auditEvents("&method=Alert")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the canary reveal raised no Alert audit event in 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// What the overview must show for the last 24 hours, from the audit trail itself (the
	// definitions of docs/console.md: reveals are the items detokenize calls revealed, denials
	// the denied events, alerts the Alert events).
	expected := map[string]int{}
	for _, ev := range c.auditEvents("") {
		method, _ := ev["method"].(string)
		for _, m := range []string{"/Detokenize", "/VendorDetokenize", "/DetokenizeRecords", "/DetokenizeText"} {
			if strings.HasSuffix(method, m) {
				expected["reveals"] += num(ev["allowed"])
			}
		}
		if method == "Alert" {
			expected["alerts"]++
		}
		if ev["outcome"] == "denied" {
			expected["denials"]++
		}
	}

	// The attacker: a page on another origin (another port of 127.0.0.1: same site, so the
	// SameSite=Strict cookie goes along) that posts a form to the console's server.
	forge := template.Must(template.New("forge").Parse(`<!doctype html><html><head><title>forged</title></head><body>
<form id="f" method="POST" action="{{.Action}}" enctype="{{.Enctype}}"><input type="hidden" name="{{.Name}}" value="{{.Value}}"></form>
<script>document.getElementById('f').submit()</script></body></html>`))
	// /fetch tries a credentialed JSON POST by script instead: CORS preflight territory.
	forgeFetch := template.Must(template.New("fetch").Parse(`<!doctype html><html><head><title>pending</title></head><body><script>
fetch({{.}}, {method: "POST", credentials: "include", headers: {"Content-Type": "application/json"},
  body: JSON.stringify({grant: {vendor: "globex", domains: ["globex"], templates: ["pan"], purpose: "forged", reveal: "REVEAL_FULL"}, ttl: "3600s"})})
  .then(function (r) { document.title = "answered " + r.status; }, function () { document.title = "blocked"; });
</script></body></html>`))
	attacker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := struct{ Action, Enctype, Name, Value string }{Enctype: "text/plain"}
		switch r.URL.Path {
		case "/fetch":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			forgeFetch.Execute(w, h.URL("/v1/grants"))
			return
		case "/grant":
			d.Action = h.URL("/v1/grants")
			d.Name = `{"grant":{"vendor":"globex","domains":["globex"],"templates":["pan"],"purpose":"forged","reveal":"REVEAL_FULL"},"ttl":"3600s","x":"`
			d.Value = `"}`
		case "/logout":
			d.Action, d.Enctype, d.Name, d.Value = h.URL("/ui/api/logout"), "application/x-www-form-urlencoded", "x", "1"
		case "/revoke":
			d.Action, d.Enctype, d.Name, d.Value = h.URL("/v1/credentials/"+acmeID+":revoke"), "application/x-www-form-urlencoded", "x", "1"
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		forge.Execute(w, d)
	}))
	t.Cleanup(attacker.Close)

	artifacts := os.Getenv("TOKENVAULT_CONSOLE_ARTIFACTS")
	if artifacts == "" {
		dir, err := os.MkdirTemp("", "tokenvault-console-artifacts-")
		if err != nil {
			t.Fatal(err)
		}
		artifacts = dir
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("screenshots and network log kept in %s", dir)
			} else {
				os.RemoveAll(dir)
			}
		})
	} else if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	docsImg := ""
	if os.Getenv("TOKENVAULT_CONSOLE_DOCS_IMG") == "1" {
		docsImg, _ = filepath.Abs(filepath.Join("..", "..", "docs", "img"))
		if err := os.MkdirAll(docsImg, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := seed{
		BaseURL: "http://" + h.Addrs.HTTP, VendorURL: "http://" + h.Addrs.Vendor, AttackerURL: attacker.URL,
		AdminSecret: adminSecret, AuditorSecret: auditorSecret, GlobexSecret: globexSecret, AcmeSecret: acmeSecret,
		AcmeCredential: acmeID, Admin2Secret: admin2Secret, Admin2ID: admin2ID, Tokens: tokens, XSS: []string{xssPurpose, xssReveal, xssLabel},
		Secrets:  []string{adminSecret, auditorSecret, admin2Secret, acmeSecret, globexSecret, testenv.RootSecret},
		Expected: expected, ArtifactsDir: artifacts, DocsImgDir: docsImg, Chromium: chromium,
	}
	for _, v := range seedValues {
		s.Values = append(s.Values, v)
	}
	cfg, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}

	// Under go test's default 10-minute timeout, with room for the seed and the checks after.
	tctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(tctx, node, filepath.Join("e2e", "console.test.mjs"))
	cmd.Env = append(os.Environ(), "TOKENVAULT_CONSOLE_E2E="+string(cfg))
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	logged := make(chan struct{})
	go func() { // each line as it comes, so a hung step shows where it hangs
		defer close(logged)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			t.Log(sc.Text())
		}
	}()
	runErr := cmd.Run()
	pw.Close()
	<-logged
	if runErr != nil {
		t.Fatalf("browser tests failed: %v (screenshots and the network log in %s)", runErr, artifacts)
	}

	// After the browser: what the forged posts and the revoked grant left behind.
	for _, ev := range c.auditEvents("&method=/tokenvault.v1.GrantService/CreateGrant") {
		if ev["purpose"] == "forged" && ev["outcome"] == "allowed" {
			t.Errorf("a forged cross-origin form created a grant: event %v", ev["seq"])
		}
	}
	c.reveal(http.StatusOK, acmeSecret, "refunds", pan) // the forged revoke changed nothing
	h.AssertNotLogged(append(s.Values, s.Secrets...)...)
}

// TestWebAssetsAreInert checks the console's files without a browser: no way to turn data into
// markup or code (innerHTML and kin, eval), no inline script or style in the page, nothing from
// another origin. The browser test shows the CSP holds; this keeps the code from needing it.
func TestWebAssetsAreInert(t *testing.T) {
	forbidden := []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute('on", "javascript:", "http://", "https://", "//cdn", "import("}
	var files int
	err := filepath.WalkDir("web", func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		text := strings.ReplaceAll(string(data), "'http://www.w3.org/2000/svg'", "") // SVG's namespace name
		switch filepath.Ext(p) {
		case ".js":
			for _, f := range forbidden {
				if strings.Contains(text, f) {
					t.Errorf("%s contains %q", p, f)
				}
			}
		case ".html":
			lower := strings.ToLower(text)
			for _, f := range []string{" style=", "<style", "javascript:", "http://", "https://"} {
				if strings.Contains(lower, f) {
					t.Errorf("%s contains %q (inline style or script, or another origin)", p, f)
				}
			}
			if m := regexp.MustCompile(`\son[a-z]+\s*=`).FindString(lower); m != "" {
				t.Errorf("%s has an inline event handler (%q)", p, m)
			}
			for _, tag := range strings.Split(lower, "<script")[1:] {
				if !strings.Contains(tag[:strings.Index(tag, ">")], " src=") {
					t.Errorf("%s has an inline <script>", p)
				}
			}
		case ".css":
			if strings.Contains(text, "@import") || strings.Contains(text, "url(") {
				t.Errorf("%s loads something (@import or url())", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("only %d files under web/", files)
	}
}

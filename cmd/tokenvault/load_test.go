package main

// Tokenize load for the durability and lifecycle tests: workers that tokenize fresh values
// until halted, the log of what the server acknowledged, and the check that all of it survived.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testSeed is TOKENVAULT_E2E_SEED when set (to replay a failure), else a fresh seed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("TOKENVAULT_E2E_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("TOKENVAULT_E2E_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (replay the random choices with TOKENVAULT_E2E_SEED=%d)", seed, seed)
	return seed
}

var loadTemplates = []string{"pan", "opaque", "email"}

var loadDomains = []string{"", "acme"}

// loadKind is what a load tokenizes. Loads of different kinds draw different values and
// random numbers, so that they can run against one vault.
type loadKind struct {
	name     string // in email and opaque values
	panLead  int    // first digit of pan values
	stream   uint64 // added to the random number streams
	subjects bool   // about a quarter of the items name one of lcSubjects data subjects
}

var (
	// plainLoad is the durability tests' load.
	plainLoad = loadKind{name: "load", panLead: 4}
	// subjectLoad is the lifecycle tests' load, with data subjects.
	subjectLoad = loadKind{name: "lifecycle", panLead: 5, stream: 1_000_000, subjects: true}
)

// lcSubjects are the data subjects the subject load names.
const lcSubjects = 64

// value is a valid value for tmpl, unique for (run, worker, seq); run < 100, worker < 10.
func (k loadKind) value(tmpl string, run, worker, seq int) string {
	switch tmpl {
	case "pan":
		// 16 digits: panLead, run (2), worker (1), 12-digit sequence number.
		return fmt.Sprintf("%d%02d%d%012d", k.panLead, run%100, worker%10, seq)
	case "email":
		return fmt.Sprintf("%s.%d.%d.%d@example.org", k.name, run, worker, seq)
	default:
		return fmt.Sprintf("%s opaque r%d w%d n%d", k.name, run, worker, seq)
	}
}

// items returns n fresh tokenize items, templates and domains mixed; seq counts the worker's
// values.
func (k loadKind) items(rng *rand.Rand, run, worker int, seq *int, n int) []tokenizeItem {
	items := make([]tokenizeItem, n)
	for i := range items {
		tmpl := loadTemplates[rng.IntN(len(loadTemplates))]
		items[i] = tokenizeItem{Value: k.value(tmpl, run, worker, *seq), Template: tmpl, Domain: loadDomains[rng.IntN(len(loadDomains))]}
		if k.subjects && rng.IntN(4) == 0 {
			items[i].Subject = fmt.Sprintf("lc-subject-%d", rng.IntN(lcSubjects))
		}
		*seq++
	}
	return items
}

// loadStats counts what a load run saw.
type loadStats struct {
	batches, acked, transportErrs atomic.Int64
}

// load is a running runLoad.
type load struct {
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

// halt tells the workers to send no more requests and waits for them to return.
func (l *load) halt() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// runLoad runs workers goroutines that tokenize batches of 1-50 fresh values of kind until
// halted, and records in log every item of every 200 response. A transport error ends a
// worker (the server is expected to go away); any other failure is a test error. The workers
// are halted at the latest when the test ends.
func runLoad(t *testing.T, kind loadKind, c *http.Client, httpAddr string, seed uint64, run, workers int, log *ackLog, st *loadStats) *load {
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
			rng := rand.New(rand.NewPCG(seed, kind.stream+uint64(run*1000+w)))
			seq := 0
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				items := kind.items(rng, run, w, &seq, 1+rng.IntN(50))
				body, _ := json.Marshal(map[string]any{"items": items})
				code, data, err := httpDo(c, http.MethodPost, "http://"+httpAddr+"/v1/tokens:tokenize", rootToken, body)
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
				ok, failed := ackedOf(items, r.Results)
				for _, f := range failed {
					report("tokenize under load: %v", f)
				}
				log.add(ok...)
				st.acked.Add(int64(len(ok)))
			}
		}()
	}
	return l
}

// acked is one tokenization the server acknowledged with a 200.
type acked struct {
	value, template, domain, token string
}

// ackLog collects acknowledged tokenizations from concurrent goroutines.
type ackLog struct {
	mu   sync.Mutex
	list []acked
}

func (l *ackLog) add(a ...acked) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, a...)
}

func (l *ackLog) snapshot() []acked {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]acked(nil), l.list...)
}

// tokenizeAcked tokenizes items and returns the acknowledged pairs; any failure is an error.
func tokenizeAcked(c *http.Client, httpAddr string, items []tokenizeItem) ([]acked, error) {
	return tokenizeAckedAs(c, httpAddr, rootToken, items)
}

// tokenizeAckedAs is tokenizeAcked with the credential secret.
func tokenizeAckedAs(c *http.Client, httpAddr, secret string, items []tokenizeItem) ([]acked, error) {
	res, err := tokenize(c, httpAddr, secret, items)
	if err != nil {
		return nil, err
	}
	ok, failed := ackedOf(items, res)
	if len(failed) > 0 {
		return nil, failed[0]
	}
	return ok, nil
}

// ackedOf pairs the items with their tokens; failed has an error for each item that got none.
func ackedOf(items []tokenizeItem, res []result) (ok []acked, failed []error) {
	for i, r := range res {
		if r.Error != nil || r.Token == "" {
			failed = append(failed, fmt.Errorf("item %q (%s) failed: %+v", items[i].Value, items[i].Template, r.Error))
			continue
		}
		ok = append(ok, acked{value: items[i].Value, template: items[i].Template, domain: items[i].Domain, token: r.Token})
	}
	return ok, failed
}

// verifyAcked checks that every acknowledged token detokenizes to its value and that
// tokenizing the values again gives the same tokens. It reports at most a few examples.
func verifyAcked(t *testing.T, c *http.Client, httpAddr string, all []acked) {
	t.Helper()
	verifyAckedAs(t, c, httpAddr, rootToken, all)
}

// verifyAckedAs is verifyAcked with the credential secret.
func verifyAckedAs(t *testing.T, c *http.Client, httpAddr, secret string, all []acked) {
	t.Helper()
	const chunk = 1000
	lost, wrong, changed := 0, 0, 0
	var examples []string
	note := func(s string) {
		if len(examples) < 5 {
			examples = append(examples, s)
		}
	}
	for start := 0; start < len(all); start += chunk {
		part := all[start:min(start+chunk, len(all))]
		ditems := make([]detokenizeItem, len(part))
		titems := make([]tokenizeItem, len(part))
		for i, a := range part {
			ditems[i] = detokenizeItem{Token: a.token, Domain: a.domain}
			titems[i] = tokenizeItem{Value: a.value, Template: a.template, Domain: a.domain}
		}
		res, err := detokenize(c, httpAddr, secret, ditems)
		if err != nil {
			t.Fatalf("detokenizing acknowledged tokens: %v", err)
		}
		for i, r := range res {
			switch {
			case r.Error != nil:
				lost++
				note(fmt.Sprintf("token %q (%s, value %q) lost: %s %s", part[i].token, part[i].template, part[i].value, r.Error.Code, r.Error.Message))
			case r.Value != part[i].value:
				wrong++
				note(fmt.Sprintf("token %q detokenized to %q, want %q", part[i].token, r.Value, part[i].value))
			}
		}
		res, err = tokenize(c, httpAddr, secret, titems)
		if err != nil {
			t.Fatalf("tokenizing acknowledged values again: %v", err)
		}
		for i, r := range res {
			if r.Error != nil || r.Token != part[i].token {
				changed++
				note(fmt.Sprintf("value %q (%s) now tokenizes to %q (error %+v), was %q", part[i].value, part[i].template, r.Token, r.Error, part[i].token))
			}
		}
	}
	if lost+wrong+changed > 0 {
		t.Errorf("of %d acknowledged tokens: %d lost, %d detokenize to a wrong value, %d values tokenize differently now; e.g.\n  %s",
			len(all), lost, wrong, changed, strings.Join(examples, "\n  "))
	}
}

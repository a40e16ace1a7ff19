package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/tokenvault/tokenvault/internal/testpg"
	"github.com/tokenvault/tokenvault/vault/store/pgstore"
)

// TestTokenizeDuplicatesInOneBatch checks that a batch decided in rounds of batch reads
// still behaves as if its items were placed one after another: the same value twice in one
// call gets one token (for FF1 candidates, blind-index templates and subjects alike), and
// distinct values never share one, also in a small token space where candidates collide.
func TestTokenizeDuplicatesInOneBatch(t *testing.T) {
	ctx := context.Background()
	v, _ := openTest(t)
	var items []TokenizeItem
	for i := range 40 {
		// Each value three times, interleaved, some with a subject.
		for _, tmpl := range []string{"pan", "email", "digits"} {
			val := map[string]string{"pan": fmt.Sprintf("41111111111%05d", i), "email": fmt.Sprintf("u%d@example.com", i), "digits": fmt.Sprintf("%02d", i)}[tmpl]
			subject := ""
			if i%3 == 0 {
				subject = fmt.Sprintf("subject-%d", i%6)
			}
			items = append(items, TokenizeItem{Value: val, Template: tmpl, Subject: subject})
		}
	}
	items = append(items, items...)
	items = append(items, items[:60]...)
	res, err := v.Tokenize(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	byValue := map[string]string{} // template/value → token
	byToken := map[string]string{} // token → template/value
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("item %d: %v", i, r.Err)
		}
		key := items[i].Template + "/" + items[i].Value
		if tok, ok := byValue[key]; ok && tok != r.Token {
			t.Errorf("Tokenize(%s) in one batch gave %q and %q", key, tok, r.Token)
		}
		if k, ok := byToken[r.Token]; ok && k != key {
			t.Errorf("values %s and %s share token %q", k, key, r.Token)
		}
		byValue[key], byToken[r.Token] = r.Token, key
	}
	refs := make([]TokenRef, len(res))
	for i, r := range res {
		refs[i] = TokenRef{Token: r.Token}
	}
	got, err := v.Detokenize(ctx, "test", refs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i].Err != nil || got[i].Value != items[i].Value {
			t.Errorf("Detokenize(%q) = %q, %v; want %q", refs[i].Token, got[i].Value, got[i].Err, items[i].Value)
		}
	}
	// Again, in a second call: the same tokens.
	again, err := v.Tokenize(ctx, items[:120])
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if again[i].Token != res[i].Token {
			t.Errorf("second call: Tokenize(%q) = %q, first %q", items[i].Value, again[i].Token, res[i].Token)
		}
	}
}

// countingVault opens a vault on a fresh PostgreSQL database and returns it with its store,
// whose RoundTrips the test reads.
// kek may be nil (a new one).
func countingVault(t *testing.T, kek tink.AEAD) (*Vault, *pgstore.Postgres) {
	t.Helper()
	c := testpg.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := pgstore.Open(ctx, c.CreateDB(t, "roundtrips"), pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if kek == nil {
		kek = newKEK(t)
	}
	v, err := Open(ctx, Config{Store: st, KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	return v, st
}

// TestRoundTripsDoNotGrowWithBatch counts the database round trips (statements, batches,
// prepares, pings: pgstore.RoundTrips) of tokenize, re-tokenize, detokenize, vendor
// detokenize and record calls of 10 and of 100 items on PostgreSQL: they must be equal, and
// small. Counts, not timings.
func TestRoundTripsDoNotGrowWithBatch(t *testing.T) {
	v, st := countingVault(t, nil)
	ctx := context.Background()
	if _, err := v.CreateGrant(ctx, Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"pan", "email", "opaque"}, Purpose: "p", ExpireTime: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	policy, err := CompilePolicy([]byte("$.card: pan\n$.email: email\n"))
	if err != nil {
		t.Fatal(err)
	}
	call := 0
	items := func(n int) []TokenizeItem {
		call++
		out := make([]TokenizeItem, n)
		for i := range out {
			switch i % 3 {
			case 0:
				out[i] = TokenizeItem{Value: fmt.Sprintf("4%07d%08d", call, i), Template: "pan", Domain: "acme"}
			case 1:
				out[i] = TokenizeItem{Value: fmt.Sprintf("c%d.u%d@example.com", call, i), Template: "email", Domain: "acme"}
			default:
				out[i] = TokenizeItem{Value: fmt.Sprintf("secret %d %d", call, i), Template: "opaque", Domain: "acme", Subject: fmt.Sprintf("s%d", i%7)}
			}
		}
		return out
	}
	refsOf := func(res []TokenizeResult) []TokenRef {
		refs := make([]TokenRef, len(res))
		for i, r := range res {
			if r.Err != nil {
				t.Fatalf("item %d: %v", i, r.Err)
			}
			refs[i] = TokenRef{Token: r.Token, Domain: "acme"}
		}
		return refs
	}
	docsOf := func(n int) []json.RawMessage {
		call++
		docs := make([]json.RawMessage, n/2)
		for i := range docs {
			docs[i] = json.RawMessage(fmt.Sprintf(`{"card":"5%07d%08d","email":"d%d.%d@example.com"}`, call, i, call, i))
		}
		return docs
	}
	// cost runs each operation on a batch of n items and returns its round trips.
	cost := func(n int) map[string]uint64 {
		out := map[string]uint64{}
		measure := func(name string, fn func() error) {
			before := st.RoundTrips()
			if err := fn(); err != nil {
				t.Fatalf("%s of %d: %v", name, n, err)
			}
			out[name] = st.RoundTrips() - before
		}
		var res []TokenizeResult
		its := items(n)
		measure("tokenize", func() (err error) { res, err = v.Tokenize(ctx, its); return err })
		measure("tokenize again", func() error { _, err := v.Tokenize(ctx, its); return err })
		refs := refsOf(res)
		measure("detokenize", func() error { _, err := v.Detokenize(ctx, "p", refs); return err })
		measure("vendor detokenize", func() error {
			out, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", Items: refs})
			if err == nil && out[0].Value == "" {
				err = fmt.Errorf("nothing revealed: %v", out[0].Err)
			}
			return err
		})
		var tokDocs []json.RawMessage
		docs := docsOf(n)
		measure("record tokenize", func() (err error) { tokDocs, _, err = v.TokenizeRecords(ctx, policy, "acme", docs); return err })
		measure("record detokenize", func() error { _, _, err := v.DetokenizeRecords(ctx, policy, "acme", "p", tokDocs); return err })
		return out
	}
	cost(10) // warm up: connections made, statements prepared
	cost(100)
	small, large := cost(10), cost(100)
	t.Logf("round trips per call, 10 items: %v; 100 items: %v", small, large)
	for name, n := range small {
		if large[name] != n {
			t.Errorf("%s: %d round trips for 10 items, %d for 100: they must not grow with the batch", name, n, large[name])
		}
		if n > 16 {
			t.Errorf("%s: %d round trips, want a small constant (at most 16)", name, n)
		}
	}
}

// TestDetokenizeReusesNothingStale runs Detokenize calls of changing size and content, one
// after another and at once, and checks each answer against what it asked: the read buffers
// they share through the vault's pool (readScratch) carry no record, value or canary mark
// from one call into the next. On bbolt and on PostgreSQL (where the canary marks come in
// the records' statement: store.GetManyIn).
func TestDetokenizeReusesNothingStale(t *testing.T) {
	onBothBackends(t, testDetokenizeReusesNothingStale)
}

// onBothBackends runs test on a vault over bbolt, then on one over PostgreSQL (a fresh
// database).
func onBothBackends(t *testing.T, test func(t *testing.T, v *Vault)) {
	t.Run("bbolt", func(t *testing.T) {
		v, _ := openTest(t)
		test(t, v)
	})
	t.Run("postgres", func(t *testing.T) {
		v, _ := countingVault(t, nil)
		test(t, v)
	})
}

func testDetokenizeReusesNothingStale(t *testing.T, v *Vault) {
	ctx := context.Background()
	var items []TokenizeItem
	for i := range 300 {
		items = append(items, TokenizeItem{Value: fmt.Sprintf("41111111111%05d", i), Template: "pan"})
	}
	res, err := v.Tokenize(ctx, items)
	if err != nil {
		t.Fatal(err)
	}
	can, err := v.CreateCanary(ctx, "", "pan", "4000000000000002", "honeytoken-1")
	if err != nil {
		t.Fatal(err)
	}
	// call detokenizes the tokens of items from..from+n (unknown tokens where unknown[i]),
	// with the canary first when withCanary, and checks every result.
	call := func(from, n int, withCanary bool, unknown func(int) bool) error {
		var refs []TokenRef
		if withCanary {
			refs = append(refs, TokenRef{Token: can.Token})
		}
		for i := from; i < from+n; i++ {
			tok := res[i].Token
			if unknown(i) {
				tok = fmt.Sprintf("99999999999%05d", i)
			}
			refs = append(refs, TokenRef{Token: tok})
		}
		got, err := v.Detokenize(ctx, "test", refs)
		if err != nil {
			return err
		}
		k := 0
		if withCanary {
			if !got[0].Canary || got[0].CanaryLabel != "honeytoken-1" || got[0].Err != nil {
				return fmt.Errorf("canary item: %+v", got[0])
			}
			k = 1
		}
		for i := from; i < from+n; i, k = i+1, k+1 {
			r := got[k]
			if r.Canary || r.CanaryLabel != "" {
				return fmt.Errorf("item %d marked as a canary (%q)", i, r.CanaryLabel)
			}
			if unknown(i) {
				if !errors.Is(r.Err, ErrNotFound) || len(r.Value) != 0 {
					return fmt.Errorf("unknown token %d: %v, value of %d bytes", i, r.Err, len(r.Value))
				}
				continue
			}
			if r.Err != nil || string(r.Value) != items[i].Value {
				return fmt.Errorf("token %d: %v, value %q, want %q", i, r.Err, r.Value, items[i].Value)
			}
		}
		return nil
	}
	none := func(int) bool { return false }
	odd := func(i int) bool { return i%2 == 1 }
	all := func(int) bool { return true }
	for round, c := range []struct {
		from, n int
		canary  bool
		unknown func(int) bool
	}{{0, 300, true, none}, {0, 5, false, all}, {10, 200, false, odd}, {0, 1, false, none}, {50, 250, true, all}, {0, 300, false, none}} {
		if err := call(c.from, c.n, c.canary, c.unknown); err != nil {
			t.Fatalf("call %d: %v", round, err)
		}
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			var err error
			for r := 0; r < 20 && err == nil; r++ {
				u := none
				if (g+r)%2 == 1 {
					u = odd
				}
				err = call((g*31+r*7)%200, 1+(g*13+r)%100, r%3 == 0, u)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

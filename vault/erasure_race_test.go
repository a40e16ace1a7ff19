package vault

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/template"
)

// An erasure that runs while another replica tokenizes values of the same subject: every token
// a tokenize returned is afterwards either listed in the erasure receipt (and erased) or still
// readable. Before the two-phase erasure, PostgreSQL (tokenize under snapshot isolation) let a
// tokenize that read the subject key before the erasure committed store its record under the
// erased key after it: a token neither readable nor in the receipt, an erasure the privacy
// officer cannot account for.
func TestClusterEraseDuringTokenize(t *testing.T) {
	clusterBackends(t, func(t *testing.T, open func(*testing.T, int, *clock) *replicaSet) {
		ctx := context.Background()
		rs := open(t, 2, nil)
		a, b := rs.v[0], rs.v[1]
		// Half the items use a template too small for keyed candidates: their tokens have a
		// blind index entry, which the erasure must delete too.
		if _, err := a.CreateTemplate(ctx, template.Definition{Name: "short-id", Base: "digits"}); err != nil {
			t.Fatal(err)
		}
		var n atomic.Int64 // every value is new
		item := func(subject string) TokenizeItem {
			i := n.Add(1)
			if i%2 == 0 {
				return TokenizeItem{Value: fmt.Sprintf("%05d", i/2), Template: "short-id", Subject: subject}
			}
			return TokenizeItem{Value: pan(0, int(i)), Template: "pan", Subject: subject}
		}
		type issued struct{ token, template string }
		rounds, sweeps := 0, 0
		for deadline := time.Now().Add(6 * time.Second); rounds < 8 || time.Now().Before(deadline) && n.Load() < 150000; rounds++ {
			subject := fmt.Sprintf("subject-%d", rounds)
			it := item(subject)
			first := tokenizeOne(t, a, it)

			var (
				mu     sync.Mutex
				tokens = []issued{{first, it.Template}}
				wg     sync.WaitGroup
				stop   = make(chan struct{})
			)
			for range 4 {
				untilStopped(&wg, stop, func() bool {
					it := item(subject)
					res, err := a.Tokenize(ctx, []TokenizeItem{it})
					if err != nil {
						t.Errorf("tokenize: %v", err)
						return false
					}
					if res[0].Err != nil {
						t.Errorf("tokenize item: %v", res[0].Err)
						return false
					}
					mu.Lock()
					tokens = append(tokens, issued{res[0].Token, it.Template})
					mu.Unlock()
					return true
				})
			}
			time.Sleep(time.Duration(rounds%5) * 3 * time.Millisecond)
			rc, err := b.EraseSubject(ctx, subject)
			close(stop)
			wg.Wait()
			if err != nil {
				t.Fatal(err)
			}
			erased := make(map[string]bool, len(rc.Erased))
			for _, fp := range rc.Erased {
				erased[fp] = true
			}
			// The receipt's audit events (the erasure's, and the sweep's when it erased late
			// records) list exactly the tokens of the receipt: an auditor can check one by the other.
			inEvents := map[string]bool{}
			for _, seq := range []uint64{rc.AuditSeq, rc.SweepAuditSeq} {
				if seq == 0 {
					continue
				}
				ev, _, _, err := b.AuditEventAt(ctx, seq)
				if err != nil {
					t.Fatalf("round %d: audit event %d of the receipt: %v", rounds, seq, err)
				}
				if ev.Method != "EraseSubject" {
					t.Fatalf("round %d: audit event %d of the receipt is %s", rounds, seq, ev.Method)
				}
				for _, fp := range ev.Tokens {
					inEvents[fp] = true
				}
			}
			if len(inEvents) != len(erased) {
				t.Errorf("round %d: the receipt lists %d tokens, its audit events %d (audit_seq %d, sweep_audit_seq %d)", rounds, len(erased), len(inEvents), rc.AuditSeq, rc.SweepAuditSeq)
			}
			for fp := range erased {
				if !inEvents[fp] {
					t.Errorf("round %d: a token of the receipt is in neither of its audit events", rounds)
				}
			}
			if rc.SweepAuditSeq != 0 {
				sweeps++
			}
			if !erased[TokenFingerprint(DefaultDomain, first)] {
				t.Fatalf("round %d: the receipt does not list the token tokenized before the erasure", rounds)
			}
			refs := make([]TokenRef, len(tokens))
			for i, tok := range tokens {
				refs[i] = TokenRef{Token: tok.token, Template: tok.template}
			}
			res, err := a.Detokenize(ctx, "p", refs)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				listed := erased[TokenFingerprint(DefaultDomain, tokens[i].token)]
				switch {
				case listed && r.Err == nil:
					t.Errorf("round %d: token %d is in the receipt but still reveals", rounds, i)
				case !listed && errors.Is(r.Err, ErrNotFound):
					t.Errorf("round %d: token %d of %d was returned by tokenize, is not in the receipt (%d tokens), and no longer reveals: an erasure the receipt does not account for", rounds, i, len(tokens), len(rc.Erased))
				case !listed && r.Err != nil:
					t.Errorf("round %d: token %d: %v", rounds, i, r.Err)
				}
			}
			// The erased values' blind index entries went with them (the sweep decrypts late
			// records under the key it destroyed to find theirs).
			if err := a.store.View(ctx, func(tx store.Tx) error {
				return tx.Scan(bucketIndex, nil, nil, func(_, tok []byte) error {
					if erased[TokenFingerprint(DefaultDomain, string(tok))] {
						t.Errorf("round %d: an index entry still points at an erased token", rounds)
					}
					return nil
				})
			}); err != nil {
				t.Fatal(err)
			}
			if t.Failed() {
				return
			}
		}
		t.Logf("%d rounds, %d with a sweep event", rounds, sweeps)
	})
}

// pan returns a distinct 16-digit card number with a valid Luhn digit for (round, i).
func pan(round, i int) string {
	s := fmt.Sprintf("4%03d%011d", round%1000, i)
	sum := 0
	for k := 0; k < 15; k++ {
		d := int(s[14-k] - '0')
		if k%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return s + string(rune('0'+(10-sum%10)%10))
}

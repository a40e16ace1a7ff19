package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
)

// startReplicas starts n servers on one PostgreSQL database, each with its own vault and
// store pool, the same KEK and replica ids r1…rn.
func startReplicas(t *testing.T, url string, n int, opts ...testenv.Option) []*testenv.Env {
	t.Helper()
	envs := []*testenv.Env{testenv.Start(t, append([]testenv.Option{testenv.Postgres(url), testenv.ReplicaID("r1")}, opts...)...)}
	for i := 2; i <= n; i++ {
		envs = append(envs, testenv.Start(t, append([]testenv.Option{testenv.Postgres(url), testenv.ReplicaID(fmt.Sprintf("r%d", i)), testenv.KEKOf(envs[0].KEK)}, opts...)...))
	}
	return envs
}

// TestReplicasAgreeOnTokens: three replicas (three servers, each its own vault over its own
// pool, one database) tokenize overlapping values at the same time, each value many times
// from every replica, with deterministic (pan) and random (email, opaque) templates: every
// value gets exactly one token, no two values share one, and every token detokenizes from
// every replica.
func TestReplicasAgreeOnTokens(t *testing.T) {
	replicas := startReplicas(t, pg.DB(t), 3, testenv.DiscardLogs())
	type item struct{ value, template string }
	var items []item
	for i := range 40 {
		items = append(items,
			item{fmt.Sprintf("4%015d", 1000+i), "pan"},
			item{fmt.Sprintf("user%d@example.org", i), "email"},
			item{fmt.Sprintf("opaque value %d", i), "opaque"})
	}
	const workersPerReplica, batch = 3, 10
	var mu sync.Mutex
	seen := map[item]map[string]int{} // value → token → times returned
	var wg sync.WaitGroup
	errs := make(chan error, len(replicas)*workersPerReplica)
	for ri, r := range replicas {
		tc := tvpb.NewTokenServiceClient(r.Conn)
		for w := range workersPerReplica {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each worker sends every value, in its own order, in batches.
				rng := rand.New(rand.NewPCG(uint64(ri), uint64(w)))
				order := rng.Perm(len(items))
				for start := 0; start < len(order); start += batch {
					var req tvpb.TokenizeRequest
					var sent []item
					for _, k := range order[start:min(start+batch, len(order))] {
						req.Items = append(req.Items, &tvpb.TokenizeItem{Value: items[k].value, Template: items[k].template, Domain: "acme"})
						sent = append(sent, items[k])
					}
					ctx, cancel := context.WithTimeout(authCtx(rootSecret), 2*time.Minute)
					resp, err := tc.Tokenize(ctx, &req)
					cancel()
					if err != nil {
						errs <- fmt.Errorf("replica r%d worker %d: Tokenize: %v", ri+1, w, err)
						return
					}
					mu.Lock()
					for i, res := range resp.GetResults() {
						if res.GetError() != nil || res.GetToken() == "" {
							mu.Unlock()
							errs <- fmt.Errorf("replica r%d: item %d failed: %v", ri+1, i, res.GetError())
							return
						}
						if seen[sent[i]] == nil {
							seen[sent[i]] = map[string]int{}
						}
						seen[sent[i]][res.GetToken()]++
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	owner := map[string]item{}
	for _, it := range items {
		toks := seen[it]
		if len(toks) != 1 {
			t.Errorf("%s value %q got %d different tokens from the replicas: %v", it.template, it.value, len(toks), toks)
		}
		for tok, n := range toks {
			if n != len(replicas)*workersPerReplica {
				t.Errorf("%s value %q: token returned %d times, want %d", it.template, it.value, n, len(replicas)*workersPerReplica)
			}
			if other, dup := owner[tok]; dup {
				t.Errorf("values %q and %q share the token %q", other.value, it.value, tok)
			}
			owner[tok] = it
		}
	}
	for ri, r := range replicas {
		var req tvpb.DetokenizeRequest
		var want []string
		for tok, it := range owner {
			req.Items = append(req.Items, &tvpb.DetokenizeItem{Token: tok, Domain: "acme"})
			want = append(want, it.value)
		}
		resp, err := tvpb.NewTokenServiceClient(r.Conn).Detokenize(authCtx(rootSecret), &req)
		if err != nil {
			t.Fatalf("replica r%d: Detokenize: %v", ri+1, err)
		}
		for i, res := range resp.GetResults() {
			if res.GetValue() != want[i] {
				t.Errorf("replica r%d: token %q detokenizes to %q (error %v), want %q", ri+1, req.Items[i].GetToken(), res.GetValue(), res.GetError(), want[i])
			}
		}
	}
}

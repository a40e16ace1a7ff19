package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
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

// TestConsoleSessionsAcrossReplicas: a console session is the store's, not one replica's, so a
// load balancer needs no affinity: signed in on one replica, the browser's calls work on the
// other (with the same CSRF token); signing out on one ends the session on both, and so does
// revoking its credential.
func TestConsoleSessionsAcrossReplicas(t *testing.T) {
	replicas := startReplicas(t, pg.DB(t), 2, testenv.DiscardLogs())
	a, b := replicas[0], replicas[1]
	on := func(u *consoleUser, h *testenv.Env) *consoleUser {
		c := *u
		c.h = h
		return &c
	}
	u := signIn(t, a, rootSecret)
	ub := on(u, b)
	if code, body := ub.do("GET", "/v1/grants", nil, false); code != http.StatusOK {
		t.Fatalf("a session made on replica 1, used on replica 2: HTTP %d %s", code, body)
	}
	code, body := ub.do("GET", "/ui/api/session", nil, false)
	var got consoleLogin
	if code != http.StatusOK || json.Unmarshal(body, &got) != nil || got.CSRFToken != u.csrf || got.Credential.ID != u.login.Credential.ID {
		t.Fatalf("session API on replica 2: HTTP %d %s; want the CSRF token and credential of the sign-in on replica 1", code, body)
	}
	// A state change on replica 2 with the CSRF token replica 1 gave.
	if code, body := ub.do("POST", "/v1/templates", map[string]any{"name": "member-id", "base": "opaque"}, true); code != http.StatusOK {
		t.Errorf("a console state change on replica 2: HTTP %d %s", code, body)
	}
	if code, body := ub.do("POST", "/ui/api/logout", "{}", true); code != http.StatusNoContent {
		t.Fatalf("sign-out on replica 2: HTTP %d %s", code, body)
	}
	if code, _ := u.do("GET", "/v1/grants", nil, false); code != http.StatusUnauthorized {
		t.Errorf("replica 1 after a sign-out on replica 2: HTTP %d, want 401", code)
	}

	id, secret := newCredential(t, a, "ops", "admin", "")
	ops := signIn(t, b, secret)
	if code, _ := on(ops, a).do("GET", "/v1/keys", nil, false); code != http.StatusOK {
		t.Fatalf("ops session on replica 1: HTTP %d", code)
	}
	if code, body := a.Post("/v1/credentials/"+id+":revoke", rootSecret, "{}"); code != http.StatusOK {
		t.Fatalf("revoke: HTTP %d %s", code, body)
	}
	for i, h := range replicas {
		if code, _ := on(ops, h).do("GET", "/v1/keys", nil, false); code != http.StatusUnauthorized {
			t.Errorf("replica %d: the session of a credential revoked on replica 1: HTTP %d, want 401", i+1, code)
		}
	}
}

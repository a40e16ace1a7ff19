package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenvault/tokenvault/internal/testenv"
	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/server"
	"github.com/tokenvault/tokenvault/vault"
	"github.com/tokenvault/tokenvault/vault/store"
)

// The vault's buckets these tests look into (docs/erasure.md names them).
const (
	bucketSubjectErasing store.Bucket = "subjecterasing"
	bucketRecords        store.Bucket = "records"
)

// markHold is the store of a vault whose next erasure, once it has committed its erasing mark
// (a write to bucket subjecterasing), is held before it goes on (outside any transaction):
// arm returns marked, closed when the mark has committed, and release, to close to let the
// erasure go on. Its transactions keep the share reads of the store under it.
type markHold struct {
	store.Store
	mu              sync.Mutex
	marked, release chan struct{} // nil: not armed
}

func (h *markHold) arm() (marked, release chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.marked, h.release = make(chan struct{}), make(chan struct{})
	return h.marked, h.release
}

func (h *markHold) Update(ctx context.Context, fn func(store.Tx) error) error {
	wrote := false
	err := h.Store.Update(ctx, func(tx store.Tx) error {
		wrote = false
		return fn(markSpyTx{Tx: tx, wrote: &wrote})
	})
	if err == nil && wrote {
		h.mu.Lock()
		marked, release := h.marked, h.release
		h.marked, h.release = nil, nil
		h.mu.Unlock()
		if marked != nil {
			close(marked)
			<-release
		}
	}
	return err
}

// markSpyTx notes writes of erasing marks, and passes share reads on as they are (so that on
// PostgreSQL a tokenize still locks subject keys and reads the marks in one statement).
type markSpyTx struct {
	store.Tx
	wrote *bool
}

func (t markSpyTx) Put(b store.Bucket, k, v []byte) error {
	if b == bucketSubjectErasing {
		*t.wrote = true
	}
	return t.Tx.Put(b, k, v)
}

func (t markSpyTx) GetForShare(b store.Bucket, key []byte) []byte {
	return store.GetForShare(t.Tx, b, key)
}

func (t markSpyTx) GetManyForShare(b store.Bucket, keys [][]byte) [][]byte {
	return store.GetManyForShare(t.Tx, b, keys)
}

func (t markSpyTx) GetManyForShareUnless(b, guard store.Bucket, keys [][]byte) (vals, guards [][]byte, ok bool) {
	vals, guards = store.GetManyForShareUnless(t.Tx, b, guard, keys)
	return vals, guards, true
}

// countKeys counts the keys of bucket b in e's store.
func countKeys(t *testing.T, e *testenv.Env, b store.Bucket) int {
	t.Helper()
	n := 0
	if err := e.Store.View(context.Background(), func(tx store.Tx) error {
		n = 0
		return tx.Scan(b, nil, nil, func(_, _ []byte) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTokenizeDuringErasureEndToEnd: through the real server, a tokenize of a subject whose
// erasure is under way (held after committing its erasing mark), whose deadline ends while
// it waits for the erasure, answers gRPC UNAVAILABLE and HTTP 503 with Retry-After: 1 (on the
// HTTP fast route, where the server's request timeout is the deadline, and through the
// gateway, with the caller's Grpc-Timeout), with a message that names neither the subject
// nor its fingerprint, and stores nothing: the store holds no more records, and the erasure's
// receipt lists only the token tokenized before it. Once the erasure has ended, the same
// tokenize succeeds.
func TestTokenizeDuringErasureEndToEnd(t *testing.T) {
	testenv.ForBackends(t, &pg, func(t *testing.T, backend testenv.Option) {
		hold := &markHold{}
		env := testenv.Start(t, backend,
			testenv.WrapStore(func(st store.Store) store.Store { hold.Store = st; return hold }),
			testenv.Configure(func(c *server.Config) { c.Limits.RequestTimeout = 2 * time.Second }))
		tc := tvpb.NewTokenServiceClient(env.Conn)
		const subject = "customer-4711"
		item := func(value string) *tvpb.TokenizeItem {
			return &tvpb.TokenizeItem{Value: value, Template: "email", Subject: subject}
		}
		long := func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(authCtx(rootSecret), 2*time.Minute)
		}
		ctx, cancel := long()
		defer cancel()
		resp, err := tc.Tokenize(ctx, &tvpb.TokenizeRequest{Items: []*tvpb.TokenizeItem{item("jane@example.com")}})
		if err != nil || resp.GetResults()[0].GetError() != nil {
			t.Fatalf("tokenize before the erasure: %v %v", err, resp)
		}
		first := resp.GetResults()[0].GetToken()
		records := countKeys(t, env, bucketRecords)

		// The erasure commits its mark and is held.
		marked, release := hold.arm()
		released := false
		defer func() {
			if !released {
				close(release)
			}
		}()
		type erasure struct {
			resp *tvpb.EraseSubjectResponse
			err  error
		}
		erased := make(chan erasure, 1)
		go func() {
			ctx, cancel := long()
			defer cancel()
			resp, err := tc.EraseSubject(ctx, &tvpb.EraseSubjectRequest{Subject: subject})
			erased <- erasure{resp, err}
		}()
		select {
		case <-marked:
		case er := <-erased:
			t.Fatalf("the erasure ended before committing its mark: %v", er.err)
		case <-time.After(time.Minute):
			t.Fatal("the erasure did not commit its erasing mark within a minute")
		}

		var messages []string
		// gRPC, with the caller's deadline.
		short, cancelShort := context.WithTimeout(authCtx(rootSecret), 2*time.Second)
		var md metadata.MD
		_, err = tc.Tokenize(short, &tvpb.TokenizeRequest{Items: []*tvpb.TokenizeItem{item("jane.2@example.com")}}, grpc.Header(&md))
		cancelShort()
		if st, _ := status.FromError(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "being erased") {
			t.Errorf("gRPC tokenize while the subject is erased = %v; want UNAVAILABLE, being erased", err)
		} else {
			messages = append(messages, st.Message())
		}
		if got := md.Get("retry-after"); len(got) != 1 || got[0] != "1" {
			t.Errorf("gRPC retry-after header = %q; want [1]", got)
		}
		// HTTP: the fast route (the server's request timeout), and the gateway (Grpc-Timeout).
		for _, timeout := range []string{"", "2S"} {
			req := env.Request(http.MethodPost, "/v1/tokens:tokenize", rootSecret,
				map[string]any{"items": []map[string]any{{"value": "jane.3@example.com", "template": "email", "subject": subject}}})
			if timeout != "" {
				req.Header.Set("Grpc-Timeout", timeout)
			}
			res, err := env.HTTP.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" || !contains(body, "being erased") {
				t.Errorf("HTTP tokenize (Grpc-Timeout %q) while the subject is erased = %d, Retry-After %q, %s; want 503, 1, being erased",
					timeout, res.StatusCode, res.Header.Get("Retry-After"), body)
			}
			messages = append(messages, string(body))
		}
		if got := countKeys(t, env, bucketRecords); got != records {
			t.Errorf("records after the refused tokenizes: %d, before: %d; want nothing stored", got, records)
		}

		close(release)
		released = true
		er := <-erased
		if er.err != nil {
			t.Fatalf("EraseSubject: %v", er.err)
		}
		rc := er.resp.GetReceipt()
		if fp := vault.TokenFingerprint(vault.DefaultDomain, first); len(rc.GetErased()) != 1 || rc.GetErased()[0] != fp {
			t.Errorf("receipt lists %v; want only the token tokenized before the erasure (%s)", rc.GetErased(), fp)
		}
		var signed struct {
			Subject string `json:"subject"`
		}
		decodeInto(t, []byte(rc.GetReceiptJson()), &signed)
		for _, m := range messages {
			if strings.Contains(m, subject) || signed.Subject == "" || strings.Contains(m, signed.Subject) {
				t.Errorf("the answer %q names the subject or its fingerprint", m)
			}
		}
		// Once the erasure has ended, the subject tokenizes again.
		ctx2, cancel2 := long()
		defer cancel2()
		resp, err = tc.Tokenize(ctx2, &tvpb.TokenizeRequest{Items: []*tvpb.TokenizeItem{item("jane.2@example.com")}})
		if err != nil || resp.GetResults()[0].GetError() != nil {
			t.Fatalf("tokenize after the erasure: %v %v", err, resp)
		}
		dres, err := tc.Detokenize(ctx2, &tvpb.DetokenizeRequest{Items: []*tvpb.DetokenizeItem{{Token: resp.GetResults()[0].GetToken()}, {Token: first}}})
		if err != nil || dres.GetResults()[0].GetValue() != "jane.2@example.com" || dres.GetResults()[1].GetError() == nil {
			t.Errorf("detokenize after the erasure: %v %v; want the new token readable, the erased one not", err, dres)
		}
	})
}

// TestBackgroundDropsStaleErasingMarks: the running server's background pass removes an
// erasing mark no tokenize honours any more (one left by a replica that died mid-erasure and
// never started again under its name, here 10 minutes old, in the single-entry format of the
// first version) and keeps a live one (an erasure under way on another replica).
func TestBackgroundDropsStaleErasingMarks(t *testing.T) {
	testenv.ForBackends(t, &pg, func(t *testing.T, backend testenv.Option) {
		env := testenv.Start(t, backend, testenv.Configure(func(c *server.Config) { c.Background.Interval = 50 * time.Millisecond }))
		mark := func(replica string, started time.Time) []byte {
			return []byte(`{"replica":"` + replica + `","started":"` + started.UTC().Format(time.RFC3339Nano) + `","id":"0123456789abcdef"}`)
		}
		stale, live := []byte("stale-subject-fingerprint"), []byte("live-subject-fingerprint")
		if err := env.Store.Update(context.Background(), func(tx store.Tx) error {
			if err := tx.Put(bucketSubjectErasing, stale, mark("gone-pod", time.Now().Add(-10*time.Minute))); err != nil {
				return err
			}
			return tx.Put(bucketSubjectErasing, live, mark("busy-pod", time.Now()))
		}); err != nil {
			t.Fatal(err)
		}
		has := func(fp []byte) bool {
			var ok bool
			if err := env.Store.View(context.Background(), func(tx store.Tx) error { ok = tx.Get(bucketSubjectErasing, fp) != nil; return nil }); err != nil {
				t.Fatal(err)
			}
			return ok
		}
		const logged = "removed erasing marks left by erasures that did not finish"
		for deadline := time.Now().Add(time.Minute); !strings.Contains(env.Logs.String(), logged); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the background pass did not remove a stale erasing mark within a minute")
			}
		}
		if has(stale) || !has(live) {
			t.Errorf("after the background pass: stale mark kept %v, live mark kept %v; want false, true", has(stale), has(live))
		}
	})
}

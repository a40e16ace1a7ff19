package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tokenvault/tokenvault/internal/storespy"
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
	bucketSubjectKeys    store.Bucket = "subjectkeys"
)

// markHold is the store of a vault whose next erasure, once it has committed its erasing mark
// (a write to bucket subjecterasing), is held before it goes on (outside any transaction):
// arm returns marked, closed when the mark has committed, and release, to close to let the
// erasure go on. Its transactions keep the share reads of the store under it; armShare holds
// the next one that reads a subject key for share (a tokenize, holding its share lock on
// PostgreSQL) the same way, inside its transaction.
type markHold struct {
	storespy.Store
	mark, share storespy.Hold
}

func newMarkHold() *markHold {
	h := &markHold{}
	h.Bucket, h.ShareBucket = bucketSubjectErasing, bucketSubjectKeys
	h.Committed = func(err error) error {
		if err == nil {
			h.mark.Pass()
		}
		return err
	}
	h.Shared = func(vals [][]byte) {
		if len(vals) > 0 && vals[0] != nil {
			h.share.Pass()
		}
	}
	return h
}

// wrap is for testenv.WrapStore: the vault runs on st through h.
func (h *markHold) wrap(st store.Store) store.Store { h.Store.Store = st; return h }

func (h *markHold) arm() (marked, release chan struct{}) { return h.mark.Arm() }

func (h *markHold) armShare() (locked, unlock chan struct{}) { return h.share.Arm() }

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
		hold := newMarkHold()
		env := testenv.Start(t, backend,
			testenv.WrapStore(hold.wrap),
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

// TestEraseReceiptSweepAuditSeq: the erasure receipt's sweep_audit_seq reaches the caller,
// signed, over gRPC and HTTP/JSON. On PostgreSQL, two replicas: a tokenize of the subject on
// r1 holds its share lock on the subject key; the erasure on r2 (its delete queued behind
// that lock) takes its snapshot before the tokenize commits, so its sweep after the key's
// destruction finds the tokenize's record and writes a second EraseSubject event. The
// receipt names it in sweep_audit_seq (the proto field and the signed receipt_json agree, the
// signature verifies, the event lists the late token); a receipt without a sweep has no
// sweep_audit_seq at all.
func TestEraseReceiptSweepAuditSeq(t *testing.T) {
	url := pg.DB(t)
	hold := newMarkHold()
	a := testenv.Start(t, testenv.Postgres(url), testenv.ReplicaID("r1"),
		testenv.WrapStore(hold.wrap))
	b := testenv.Start(t, testenv.Postgres(url), testenv.ReplicaID("r2"), testenv.KEKOf(a.KEK))
	ctx, cancel := context.WithTimeout(authCtx(rootSecret), 4*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	waitingForLock := func() bool {
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	code, pub := b.Do(http.MethodGet, "/v1/audit/public-key", rootSecret, nil)
	if code != http.StatusOK {
		t.Fatalf("GET /v1/audit/public-key: %d %s", code, pub)
	}
	var key struct {
		PublicKeyset string `json:"publicKeyset"`
	}
	decodeInto(t, pub, &key)
	ta, tb := tvpb.NewTokenServiceClient(a.Conn), tvpb.NewTokenServiceClient(b.Conn)
	tokenize := func(subject, value string) (string, error) {
		resp, err := ta.Tokenize(ctx, &tvpb.TokenizeRequest{Items: []*tvpb.TokenizeItem{{Value: value, Template: "email", Subject: subject}}})
		if err == nil && resp.GetResults()[0].GetError() != nil {
			err = errors.New(resp.GetResults()[0].GetError().GetMessage())
		}
		return resp.GetResults()[0].GetToken(), err
	}
	// erase erases subject on b over gRPC or HTTP, and returns the receipt's sweep_audit_seq as
	// the answer carries it (0: absent) and the signed receipt.
	erase := func(via, subject string) (uint64, vault.Receipt) {
		var sweep uint64
		var signed string
		switch via {
		case "grpc":
			resp, err := tb.EraseSubject(ctx, &tvpb.EraseSubjectRequest{Subject: subject})
			if err != nil {
				t.Fatalf("EraseSubject: %v", err)
			}
			sweep, signed = resp.GetReceipt().GetSweepAuditSeq(), resp.GetReceipt().GetReceiptJson()
		case "http":
			code, body := b.Post("/v1/subjects/"+subject+":erase", rootSecret, map[string]any{})
			if code != http.StatusOK {
				t.Fatalf("POST :erase: %d %s", code, body)
			}
			var resp struct {
				Receipt map[string]any `json:"receipt"`
			}
			decodeInto(t, body, &resp)
			if v, ok := resp.Receipt["sweepAuditSeq"]; ok {
				// protojson writes a uint64 as a decimal string
				s, _ := v.(string)
				if _, err := fmt.Sscan(s, &sweep); err != nil || sweep == 0 {
					t.Errorf("HTTP receipt sweepAuditSeq = %#v; want a decimal string of a nonzero sequence number", v)
				}
			}
			signed, _ = resp.Receipt["receiptJson"].(string)
		}
		var rc vault.Receipt
		decodeInto(t, []byte(signed), &rc)
		if err := vault.VerifyReceipt(rc, []byte(key.PublicKeyset)); err != nil {
			t.Errorf("the receipt's signature: %v", err)
		}
		if rc.SweepAuditSeq != sweep {
			t.Errorf("%s: sweep_audit_seq %d in the answer, %d in the signed receipt; want the same", via, sweep, rc.SweepAuditSeq)
		}
		if (sweep == 0) != !strings.Contains(signed, `"sweep_audit_seq"`) {
			t.Errorf("%s: signed receipt %s; want sweep_audit_seq present exactly when there was a sweep (%d)", via, signed, sweep)
		}
		return sweep, rc
	}

	for _, via := range []string{"grpc", "http"} {
		subject := "sweep-" + via
		first, err := tokenize(subject, "jane@example.com")
		if err != nil {
			t.Fatalf("%s: tokenize: %v", via, err)
		}
		// A tokenize on r1 holds its share lock on the subject key.
		locked, unlock := hold.armShare()
		late := make(chan struct {
			token string
			err   error
		}, 1)
		go func() {
			tok, err := tokenize(subject, "jane.late@example.com")
			late <- struct {
				token string
				err   error
			}{tok, err}
		}()
		select {
		case <-locked:
		case <-time.After(time.Minute):
			close(unlock)
			t.Fatalf("%s: the tokenize did not read the subject key within a minute", via)
		}
		// The erasure on r2 queues behind it.
		type erasure struct {
			sweep uint64
			rc    vault.Receipt
		}
		erased := make(chan erasure, 1)
		go func() {
			sweep, rc := erase(via, subject)
			erased <- erasure{sweep, rc}
		}()
		for deadline := time.Now().Add(time.Minute); !waitingForLock(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				close(unlock)
				t.Fatalf("%s: the erasure's delete did not queue behind the tokenize's lock within a minute", via)
			}
		}
		close(unlock)
		lt := <-late
		if lt.err != nil {
			t.Fatalf("%s: the held tokenize: %v", via, lt.err)
		}
		er := <-erased
		if er.sweep == 0 {
			t.Fatalf("%s: the receipt has no sweep_audit_seq; want the sweep's event (the late token)", via)
		}
		ev, _, _, err := b.Vault.AuditEventAt(ctx, er.sweep)
		if err != nil {
			t.Fatal(err)
		}
		lateFP, firstFP := vault.TokenFingerprint(vault.DefaultDomain, lt.token), vault.TokenFingerprint(vault.DefaultDomain, first)
		if !strings.HasSuffix(ev.Method, "/EraseSubject") || !slices.Contains(ev.Tokens, lateFP) || !slices.Contains(er.rc.Erased, lateFP) || !slices.Contains(er.rc.Erased, firstFP) {
			t.Errorf("%s: sweep event %s %v, receipt %v; want an EraseSubject event listing the late token, the receipt both tokens", via, ev.Method, ev.Tokens, er.rc.Erased)
		}
		// Erased again, with nothing racing it: no sweep, no sweep_audit_seq.
		if sweep, _ := erase(via, subject); sweep != 0 {
			t.Errorf("%s: an erasure without a sweep has sweep_audit_seq %d; want none", via, sweep)
		}
	}
}

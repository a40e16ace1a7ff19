package vault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenvault/tokenvault/internal/testpg"
	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/store/pgstore"
)

// A call never uses a cred_gen read sent before it began: calls that arrive while a read is
// in flight share the one sent after it, and that one is sent only once the first is answered.
func TestCredGenReadsShared(t *testing.T) {
	var g genReads
	release := make(chan struct{})
	var reads atomic.Int64
	read := func() (uint64, error) {
		n := reads.Add(1)
		if n == 1 {
			<-release
		}
		return uint64(n), nil
	}
	first := g.join(read)
	var later []*genRead
	for range 5 {
		later = append(later, g.join(read))
	}
	for i, r := range later {
		if r == first {
			t.Fatalf("call %d, arriving while a read was in flight, joined that read", i)
		}
		if r != later[0] {
			t.Fatalf("calls arriving during one read joined different reads (%d)", i)
		}
	}
	select {
	case <-later[0].done:
		t.Fatal("the queued read was answered before the read in flight")
	case <-time.After(50 * time.Millisecond):
	}
	if n := reads.Load(); n != 1 {
		t.Fatalf("%d reads sent while the first was in flight, want 1", n)
	}
	close(release)
	<-first.done
	<-later[0].done
	if first.gen != 1 || later[0].gen != 2 {
		t.Fatalf("gens %d, %d; want 1, 2", first.gen, later[0].gen)
	}
	// With nothing in flight, a call sends a read of its own.
	deadline := time.Now().Add(30 * time.Second)
	for {
		g.mu.Lock()
		idle := g.running == nil
		g.mu.Unlock()
		if idle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reads never finished")
		}
		time.Sleep(time.Millisecond)
	}
	r := g.join(read)
	<-r.done
	if r.gen != 3 || reads.Load() != 3 {
		t.Fatalf("read %d of %d, want the third", r.gen, reads.Load())
	}
}

// On PostgreSQL, where replicas share cred_gen reads among their concurrent calls, a
// credential revoked on one replica is refused by every call that begins, on any replica,
// after the revocation returned; and a call costs at most one round trip.
func TestCredRevokeAcrossReplicasPG(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	vaults, stores := pgReplicas(t, "credrevoke", 2)
	trips := func() (n uint64) {
		for _, st := range stores {
			n += st.RoundTrips()
		}
		return n
	}
	cred, secret := mustCreate(t, vaults[0], CredentialSpec{Name: "app", Role: RoleTokenizer})
	for _, v := range vaults {
		wantAuth(t, v, secret, true)
	}
	trips0 := trips()
	var revoked atomic.Bool
	var ok, refusedEarly, bad, calls atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var failure atomic.Value
	for _, v := range vaults {
		for range 6 {
			untilStopped(&wg, stop, func() bool {
				after := revoked.Load()
				calls.Add(1)
				_, err := v.Authenticate(ctx, secret)
				switch {
				case err == nil && after:
					bad.Add(1)
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrUnauthenticated):
					if !after {
						refusedEarly.Add(1) // the revocation committed, it had not returned yet
					}
				default:
					failure.Store(err)
				}
				return true
			})
		}
	}
	waitFor(t, func() bool { return ok.Load() > 200 })
	tripsUsed, callsMade := trips()-trips0, calls.Load()
	if err := vaults[1].RevokeCredential(ctx, cred.ID); err != nil {
		t.Fatal(err)
	}
	revoked.Store(true)
	n := calls.Load()
	waitFor(t, func() bool { return calls.Load() > n+200 })
	close(stop)
	wg.Wait()
	if err, _ := failure.Load().(error); err != nil {
		t.Fatalf("Authenticate failed: %v", err)
	}
	if b := bad.Load(); b != 0 {
		t.Errorf("%d authentications succeeded after the revocation returned", b)
	}
	t.Logf("%d calls: %d before the revocation, %d refused while it committed", calls.Load(), ok.Load(), refusedEarly.Load())
	// Before the revocation, a call (its credential cached) costs its share of a cred_gen read
	// and nothing else: at most one round trip (before, a transaction of 3), fewer as calls
	// share reads (TestCredGenReadsShared shows the sharing itself; how much of it happens here
	// depends on the machine). The slack is for the first load of the credential on each
	// replica. (After the revocation, each refusal also looks the secret up: not counted.)
	t.Logf("before the revocation: %d round trips for %d calls", tripsUsed, callsMade)
	if tripsUsed > uint64(callsMade)+20 {
		t.Errorf("%d round trips for %d calls: more than one each", tripsUsed, callsMade)
	}
}

// Issue 12: a valid credential is never refused because its check ran out of time. Two
// replicas on one database authenticate the root secret under deadlines from 50µs to 100ms
// (many end inside the cred_gen read or the credential's View, on a pgx connection mid-query)
// while the other replica keeps writing credentials, so that the cache is invalidated and
// the credential read again all along. Every failure must be the deadline or the database
// being unavailable (answered DEADLINE_EXCEEDED or UNAVAILABLE by the server), never
// ErrUnauthenticated nor anything else. (It fails if readIdentity takes a failed read for
// "not found". The refusals reported in issue 12 came from the benchmark script instead: its
// second replica could not bind a fixed port, and the bench talked to another server.)
func TestAuthenticateUnderDeadlinesNeverRefusesPG(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL")
	}
	ctx := context.Background()
	vaults, _ := pgReplicas(t, "authdeadline", 2)
	secret, err := vaults[0].InitRoot(ctx)
	if err != nil || secret == "" {
		t.Fatalf("InitRoot: %q, %v", secret, err)
	}
	for _, v := range vaults {
		wantAuth(t, v, secret, true)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes atomic.Int64
	var writeErr atomic.Value
	untilStopped(&wg, stop, func() bool { // the other replica's credential writes: every one bumps cred_gen
		if _, _, err := vaults[1].CreateCredential(ctx, CredentialSpec{Name: fmt.Sprintf("w%d", writes.Load()), Role: RoleTokenizer}); err != nil {
			writeErr.Store(err)
			return false
		}
		writes.Add(1)
		return true
	})
	var ok, timedOut, refused atomic.Int64
	var other atomic.Value
	for _, v := range vaults {
		for range 4 {
			untilStopped(&wg, stop, func() bool {
				// Half the calls get at most 2ms: a credential read (after a write)
				// is often cut short; the others mostly succeed.
				d := 50*time.Microsecond + time.Duration(rand.N(2_000))*time.Microsecond
				if rand.N(2) == 0 {
					d = 50*time.Microsecond + time.Duration(rand.N(100_000))*time.Microsecond
				}
				cctx, cancel := context.WithTimeout(ctx, d)
				_, err := v.Authenticate(cctx, secret)
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, ErrUnauthenticated):
					refused.Add(1)
				case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
					timedOut.Add(1)
				default:
					other.Store(err)
				}
				return true
			})
		}
	}
	deadline := time.Now().Add(time.Minute)
	for (ok.Load() < 300 || timedOut.Load() < 300 || writes.Load() < 200) && time.Now().Before(deadline) &&
		refused.Load() == 0 && other.Load() == nil && writeErr.Load() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d authenticated, %d out of time, %d refused; %d credential writes", ok.Load(), timedOut.Load(), refused.Load(), writes.Load())
	if err, _ := writeErr.Load().(error); err != nil {
		t.Fatalf("CreateCredential: %v", err)
	}
	if n := refused.Load(); n != 0 {
		t.Errorf("the root secret was refused (ErrUnauthenticated) %d times under deadlines", n)
	}
	if err, _ := other.Load().(error); err != nil {
		t.Errorf("Authenticate under a deadline: %v; want the deadline or ErrUnavailable", err)
	}
	if ok.Load() == 0 || timedOut.Load() == 0 || writes.Load() == 0 {
		t.Errorf("the run did not exercise both outcomes under writes")
	}
	for _, v := range vaults {
		wantAuth(t, v, secret, true)
	}
}

// pgReplicas opens n vaults (replicas r0, r1, …) with one KEK on a new database of a
// PostgreSQL cluster the test starts, and returns them with their stores.
func pgReplicas(t *testing.T, db string, n int) ([]*Vault, []*pgstore.Postgres) {
	t.Helper()
	url := testpg.Start(t).CreateDB(t, db)
	kek := newKEK(t)
	vaults, stores := make([]*Vault, n), make([]*pgstore.Postgres, n)
	for i := range n {
		stores[i] = openPG(t, url)
		v, err := Open(context.Background(), Config{Store: stores[i], KEK: kek, ReplicaID: fmt.Sprintf("r%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		vaults[i] = v
	}
	return vaults, stores
}

// untilStopped runs fn in a goroutine of wg, again and again, until stop is closed or fn
// returns false.
func untilStopped(wg *sync.WaitGroup, stop <-chan struct{}, fn func() bool) {
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if !fn() {
				return
			}
		}
	})
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within a minute")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

package server_test

import (
	"net/http"
	"testing"
	"time"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"

	"github.com/tokenvault/tokenvault/internal/testenv"
)

// keyStatusJSON is the part of GET /v1/keys the replica tests read.
type keyStatusJSON struct {
	Keys []struct {
		KeyID uint32 `json:"keyId"`
		State string `json:"state"`
	} `json:"keys"`
	Replicas []struct {
		ID             string    `json:"id"`
		Started        time.Time `json:"started"`
		LastSeen       time.Time `json:"lastSeen"`
		LiveUntil      time.Time `json:"liveUntil"`
		KeyringVersion string    `json:"keyringVersion"`
		PrimaryKeyID   uint32    `json:"primaryKeyId"`
		Live           bool      `json:"live"`
		LeaseHolder    bool      `json:"leaseHolder"`
	} `json:"replicas"`
}

// primary is the id of the key in state primary, or 0.
func (s keyStatusJSON) primary() uint32 {
	for _, k := range s.Keys {
		if k.State == "primary" {
			return k.KeyID
		}
	}
	return 0
}

// TestKeyStatusListsReplicas: GET /v1/keys and GetKeyStatus list the server's own replica
// (bbolt, no replica id: "local"), live, holding the background lease, with the primary key
// the response names; after a rotation its row follows the new primary.
func TestKeyStatusListsReplicas(t *testing.T) {
	h := testenv.Start(t)
	// waitReplica polls GET /v1/keys until the one replica reports want as its primary.
	waitReplica := func(want func(keyStatusJSON) uint32) keyStatusJSON {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var st keyStatusJSON
			code, body := h.Do("GET", "/v1/keys", rootSecret, nil)
			if code != http.StatusOK {
				t.Fatalf("GET /v1/keys: %d %s", code, body)
			}
			decodeInto(t, body, &st)
			if len(st.Replicas) == 1 && st.Replicas[0].PrimaryKeyID == want(st) && st.Replicas[0].Live {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET /v1/keys: want one live replica with primary key %d, got %s", want(st), body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	st := waitReplica(keyStatusJSON.primary)
	r := st.Replicas[0]
	if p := st.primary(); p == 0 {
		t.Fatalf("no primary key in %+v", st)
	}
	if r.ID != "local" || !r.LeaseHolder {
		t.Errorf("replica = %+v, want id local, lease holder", r)
	}
	if r.Started.IsZero() || r.LastSeen.Before(r.Started) || !r.LiveUntil.After(r.LastSeen) {
		t.Errorf("replica times: started %v, last seen %v, live until %v", r.Started, r.LastSeen, r.LiveUntil)
	}

	// gRPC says the same.
	resp, err := tvpb.NewKeyServiceClient(h.Conn).GetKeyStatus(authCtx(rootSecret), &tvpb.GetKeyStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var grpcPrimary uint32
	for _, k := range resp.GetKeys() {
		if k.GetState() == "primary" {
			grpcPrimary = k.GetKeyId()
		}
	}
	if len(resp.GetReplicas()) != 1 {
		t.Fatalf("GetKeyStatus replicas = %v, want 1", resp.GetReplicas())
	}
	g := resp.GetReplicas()[0]
	if g.GetId() != "local" || !g.GetLive() || !g.GetLeaseHolder() || g.GetPrimaryKeyId() != grpcPrimary || grpcPrimary == 0 ||
		g.GetStarted() == nil || g.GetLastSeen() == nil || g.GetLiveUntil() == nil {
		t.Errorf("GetKeyStatus replica = %v, want local, live, lease holder, primary key %d, times set", g, grpcPrimary)
	}

	// After a rotation the heartbeat reports the new primary and a newer keyring (JSON writes
	// uint64 as a string, and leaves out 0).
	var rot struct {
		KeyID uint32 `json:"keyId"`
	}
	code, body := h.Post("/v1/keys:rotate", rootSecret, map[string]any{})
	if code != http.StatusOK {
		t.Fatalf("rotate: %d %s", code, body)
	}
	decodeInto(t, body, &rot)
	if rot.KeyID == 0 || rot.KeyID == st.primary() {
		t.Fatalf("rotate returned key %d (old primary %d)", rot.KeyID, st.primary())
	}
	after := waitReplica(func(keyStatusJSON) uint32 { return rot.KeyID })
	if after.primary() != rot.KeyID || after.Replicas[0].KeyringVersion == r.KeyringVersion || after.Replicas[0].KeyringVersion == "" {
		t.Errorf("after rotation: primary %d, replica %+v (keyring version before %s)", after.primary(), after.Replicas[0], r.KeyringVersion)
	}
}

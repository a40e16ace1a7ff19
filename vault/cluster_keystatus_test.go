package vault

import (
	"context"
	"testing"
	"time"
)

// TestClusterKeyStatus asks each of three replicas on one store (bbolt and PostgreSQL) for
// the key status during a rotation: every one lists all three replicas, each with the primary
// key of the keyring it has loaded, so an operator sees which replica the rewrap waits for;
// and every one reports the stored keys and the same record counts per key, also a replica
// that has not reloaded the rotated keyring yet (it reported its own stale copy before).
func TestClusterKeyStatus(t *testing.T) {
	clusterBackends(t, func(t *testing.T, open func(*testing.T, int, *clock) *replicaSet) {
		ctx := context.Background()
		rs := open(t, 3, nil)
		old := rs.v[0].keyring().PrimaryKeyID()
		tokenizeValues(t, rs.v[0], 20)
		for _, v := range rs.v {
			v.heartbeat(ctx, time.Minute)
		}
		nk, err := rs.v[0].RotateDataKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rs.v[0].heartbeat(ctx, time.Minute) // r0 reports the new primary, r1 and r2 the old
		check := func(want map[string]uint32) {
			t.Helper()
			for i, v := range rs.v {
				st, err := v.KeyStatus(ctx)
				if err != nil {
					t.Fatalf("KeyStatus on r%d: %v", i, err)
				}
				got := map[string]uint32{}
				for _, r := range st.Replicas {
					if !r.Live {
						t.Errorf("r%d lists %s as not live", i, r.ID)
					}
					got[r.ID] = r.PrimaryKeyID
				}
				if len(got) != len(want) {
					t.Errorf("r%d lists replicas %v, want %v", i, got, want)
				}
				for id, k := range want {
					if g, ok := got[id]; !ok || g != k {
						t.Errorf("r%d lists %s with primary %d (listed: %v), want %d", i, id, g, ok, k)
					}
				}
				if st.Records != 20 || st.Rewrap.Remaining != 20 {
					t.Errorf("r%d: %d records, %d remaining; want 20 and 20", i, st.Records, st.Rewrap.Remaining)
				}
				var keys []uint32
				for _, k := range st.Keys {
					keys = append(keys, k.ID)
					if k.ID == old && k.Records != 20 {
						t.Errorf("r%d: old key %d protects %d records, want 20", i, old, k.Records)
					}
				}
				if len(keys) != 2 {
					t.Errorf("r%d lists keys %v, want the old and the new", i, keys)
				}
			}
		}
		check(map[string]uint32{"r0": nk, "r1": old, "r2": old})
		rs.v[1].heartbeat(ctx, time.Minute) // r1 reloads the keyring at its heartbeat
		check(map[string]uint32{"r0": nk, "r1": nk, "r2": old})
	})
}

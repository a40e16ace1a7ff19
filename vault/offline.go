package vault

import (
	"context"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// LiveReplicas returns the replicas of the store at st that count as live now: their last
// heartbeat promised another before now (ReplicaInfo.LiveUntil). A replica that stopped
// cleanly removed its row; one that was killed stays live until its LiveUntil, a few
// heartbeat intervals at most. The offline commands that must not run beside a replica on a
// shared store (which has no file lock) call it before they write.
func LiveReplicas(ctx context.Context, st store.Store) ([]ReplicaInfo, error) {
	var out []ReplicaInfo
	now := time.Now()
	err := st.View(ctx, func(tx store.Tx) error {
		var err error
		out, err = liveReplicas(tx, now)
		return err
	})
	return out, err
}

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

// ForgetConsoleSessions deletes every web console session kept in the store at st, and
// returns how many there were. The restore commands call it: a backup (or a copy) holds the
// sessions of its moment, and one signed out since must not come back with it.
func ForgetConsoleSessions(ctx context.Context, st store.Store) (int, error) {
	n := 0
	err := st.Update(ctx, func(tx store.Tx) error {
		keys, err := scanKeys(tx, bucketConsoleSessions, nil, nil)
		if err != nil {
			return err
		}
		n = len(keys)
		for _, k := range keys {
			if err := tx.Delete(bucketConsoleSessions, k); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

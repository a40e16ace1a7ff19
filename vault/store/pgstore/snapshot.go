package pgstore

import (
	"context"
	"io"

	"github.com/tokenvault/tokenvault/vault/store"
)

var _ store.Snapshotter = (*Postgres)(nil)

// Snapshot implements store.Snapshotter: it writes a bbolt file (the format of
// store.Bolt.Snapshot, which store.RestoreFile accepts) holding a consistent copy of the
// database, read in one REPEATABLE READ transaction while the database keeps serving. The
// copy is built in a temporary directory under os.TempDir ($TMPDIR), which needs room for it,
// and removed afterwards. So a backup taken from a PostgreSQL-backed server restores into
// either backend.
func (p *Postgres) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	return store.SnapshotOf(ctx, p, w, "")
}

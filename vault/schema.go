package vault

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/tokenvault/tokenvault/vault/store"
)

// SchemaVersion is the store layout this binary writes. History:
//
//	1: records without a subject field; every deterministic token had a blind-index entry.
//	2: records carry a subject fingerprint; deterministic FF1 tokens are found by probing
//	   their candidates (blind index only for random-candidate templates); erased tokens
//	   leave tombstones.
//	3: the vault's layout is unchanged, but a bbolt store's large buckets grow generations
//	   (vault/store, "Generations"), whose keys a binary of schema 2 would not see: it could
//	   give a second token to a value, or a token twice. The version is what makes it refuse.
//	   Recorded on bbolt stores only (see schemaFor).
//
// Open migrates an older store forward and refuses a newer one.
const SchemaVersion = 3

// schemaFor returns the schema version this binary records on s: SchemaVersion on a bbolt
// store; 2 on any other (PostgreSQL), whose layout schema 3 does not change, so that a
// replica of the previous version can still start on it (a rolling update undone). A store
// that already records more (a bbolt store moved to PostgreSQL by tokenvault migrate) keeps
// its version.
func schemaFor(s store.Store) uint64 {
	if _, ok := s.(*store.Bolt); ok {
		return SchemaVersion
	}
	return 2
}

// migrate brings the store's schema from cur (as checkSchema read it before Open wrote
// anything) to schemaFor(v.base). A store that existed without a version predates versioning:
// version 1.
func (v *Vault) migrate(ctx context.Context, cur uint64, existed bool) error {
	if cur == 0 && existed {
		cur = 1
	}
	to := schemaFor(v.base)
	if cur >= to {
		return nil
	}
	from := cur
	// 1 → 2: version-1 records stay readable as they are (the record parser reads both), and
	// their blind-index entries keep working; nothing needs rewriting. 2 → 3: nothing to
	// rewrite either (see SchemaVersion). Record the new version.
	ev := v.newEvent(WithRequest(ctx, RequestInfo{Method: "MigrateSchema"}), "MigrateSchema")
	ev.Outcome, ev.Reason = OutcomeAllowed, fmt.Sprintf("schema %d to %d", from, to)
	_, err := v.updateAudited(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
		if err := tx.Put(bucketMeta, metaSchema, seqKey(to)); err != nil {
			return err
		}
		if from == 0 {
			return errSkipAudit // a new store: nothing to migrate, nothing to audit
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrating the store from schema %d: %w", from, err)
	}
	if from != 0 {
		v.log.Info("migrated the store", "from", from, "to", to)
	}
	return nil
}

// checkSchema returns the store's schema version (0: none recorded), refusing a newer store
// before anything is written to it.
func checkSchema(ctx context.Context, s store.Store) (uint64, error) {
	var cur uint64
	if err := s.View(ctx, func(tx store.Tx) error {
		if b := tx.Get(bucketMeta, metaSchema); len(b) == 8 {
			cur = binary.BigEndian.Uint64(b)
		}
		return nil
	}); err != nil {
		return 0, err
	}
	if cur > SchemaVersion {
		return 0, fmt.Errorf("%w: store schema %d, this binary %d", ErrSchemaTooNew, cur, SchemaVersion)
	}
	return cur, nil
}

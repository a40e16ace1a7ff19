package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// SchemaVersion is the version of the database schema this package creates
// and uses, recorded in the single row of tokenvault_schema_version.
const SchemaVersion = 1

// ErrSchemaTooNew is returned by Open when the database was migrated by a
// newer binary: this one would not know how to use it.
var ErrSchemaTooNew = errors.New("store: postgres: database schema is newer than this binary")

// schemaV1 creates version 1 of the schema. Keys are bytea, whose ordering is
// bytewise (memcmp, then length), so ORDER BY key is the byte order Scan
// needs, with no collation involved.
var schemaV1 = []string{
	`CREATE TABLE IF NOT EXISTS tokenvault_kv (
	bucket text NOT NULL,
	key bytea NOT NULL,
	value bytea NOT NULL,
	PRIMARY KEY (bucket, key))`,
	`CREATE TABLE IF NOT EXISTS tokenvault_sequence (
	bucket text PRIMARY KEY,
	value bigint NOT NULL)`,
}

// migrate creates the schema, or checks its version, in one serializable
// transaction, re-run if a concurrent Open of the same database conflicts.
func (p *Postgres) migrate(ctx context.Context) error {
	var err error
	for range 10 {
		var retry bool
		if err, retry = p.migrateOnce(ctx); !retry {
			return err
		}
	}
	return err
}

func (p *Postgres) migrateOnce(ctx context.Context) (err error, retry bool) {
	tx := p.begin(beginSerializable)
	defer rollback(tx)
	fail := func(err error) (error, bool) {
		err = fmt.Errorf("store: postgres: schema: %w", sanitize(err))
		return err, retryable(err) || isDuplicateObject(err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS tokenvault_schema_version (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	version integer NOT NULL)`); err != nil {
		return fail(err)
	}
	var version int
	err = tx.QueryRow(ctx, `SELECT version FROM tokenvault_schema_version`).Scan(&version)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		for _, stmt := range schemaV1 {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fail(err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tokenvault_schema_version (version) VALUES ($1)`, SchemaVersion); err != nil {
			return fail(err)
		}
	case err != nil:
		return fail(err)
	case version > SchemaVersion:
		return fmt.Errorf("%w: version %d, this binary knows %d", ErrSchemaTooNew, version, SchemaVersion), false
	}
	if err := tx.Commit(ctx); err != nil {
		return fail(err)
	}
	return nil, false
}

// isDuplicateObject reports a duplicate_table or duplicate_object error,
// which concurrent CREATE TABLE IF NOT EXISTS can raise.
func isDuplicateObject(err error) bool {
	var pe interface{ SQLState() string }
	if errors.As(err, &pe) {
		return pe.SQLState() == "42P07" || pe.SQLState() == "42710"
	}
	return false
}

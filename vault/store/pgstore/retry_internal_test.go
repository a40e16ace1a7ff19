package pgstore

import (
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestRetryable checks which server errors make Update run its function again: conflicts
// with a concurrent transaction (serialization failure, deadlock, unique violation, and
// duplicate_table from two transactions creating one bucket's sequence at once), and nothing
// else.
func TestRetryable(t *testing.T) {
	for code, want := range map[string]bool{
		"40001": true,  // serialization_failure
		"40P01": true,  // deadlock_detected
		"23505": true,  // unique_violation
		"42P07": true,  // duplicate_table (CREATE SEQUENCE IF NOT EXISTS racing another creator)
		"42710": false, // duplicate_object: only the schema migration retries it
		"23503": false, // foreign_key_violation
		"42P01": false, // undefined_table
		"08006": false, // connection_failure
		"57014": false, // query_canceled
	} {
		err := fmt.Errorf("store: postgres: %w", &pgconn.PgError{Code: code, Message: "m"})
		if got := retryable(err); got != want {
			t.Errorf("retryable(%s) = %v, want %v", code, got, want)
		}
	}
	if retryable(errors.New("not a server error")) {
		t.Error("retryable(a plain error) = true")
	}
}

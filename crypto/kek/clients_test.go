//go:build !nokms

package kek

import (
	"context"
	"errors"
	"testing"
)

func TestOpenUnreachableKMS(t *testing.T) {
	// A Vault transit address on a closed loopback port: the client is real, the KMS absent.
	t.Setenv("VAULT_TOKEN", "test")
	_, err := Open(context.Background(), "hcvault://127.0.0.1:1/transit/keys/tokenvault")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Open(unreachable) = %v, want ErrUnavailable", err)
	}
}

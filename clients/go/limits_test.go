package client_test

import (
	"testing"

	client "github.com/tokenvault/tokenvault/clients/go"
	"github.com/tokenvault/tokenvault/vault"
)

// The client library must not import vault, so it keeps its own copy of the batch limit;
// this pins the copy to the vault's.
func TestMaxBatchIsTheVaults(t *testing.T) {
	if client.MaxBatch != vault.MaxBatch {
		t.Errorf("client.MaxBatch = %d, vault.MaxBatch = %d; they must agree", client.MaxBatch, vault.MaxBatch)
	}
}

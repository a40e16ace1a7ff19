//go:build !nokms

package kek

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/tink-crypto/tink-go-awskms/v2/integration/awskms"
	"github.com/tink-crypto/tink-go-gcpkms/v2/integration/gcpkms"
	"github.com/tink-crypto/tink-go-hcvault/v2/integration/hcvault"
	"github.com/tink-crypto/tink-go/v2/core/registry"
)

// builtinClient returns the real KMS client for uri's scheme.
func builtinClient(ctx context.Context, uri string) (registry.KMSClient, error) {
	var client registry.KMSClient
	var err error
	switch {
	case strings.HasPrefix(uri, "aws-kms://"):
		client, err = awskms.NewClientWithOptions(uri)
	case strings.HasPrefix(uri, "gcp-kms://"):
		client, err = gcpkms.NewClientWithOptions(ctx, uri)
	case strings.HasPrefix(uri, "hcvault://"):
		client, err = hcvault.NewClient(uri, nil, os.Getenv("VAULT_TOKEN"))
	default:
		return nil, ErrUnsupported
	}
	if err != nil {
		return nil, fmt.Errorf("%w: creating the client: %v", ErrUnavailable, err)
	}
	return client, nil
}

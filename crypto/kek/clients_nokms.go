//go:build nokms

package kek

import (
	"context"
	"fmt"
	"strings"

	"github.com/tink-crypto/tink-go/v2/core/registry"
)

// builtinClient: a binary built with -tags nokms has no KMS client.
func builtinClient(_ context.Context, uri string) (registry.KMSClient, error) {
	for _, scheme := range kmsSchemes() {
		if strings.HasPrefix(uri, scheme) {
			return nil, fmt.Errorf("%w: this binary was built with -tags nokms, without KMS clients: use a build without the tag, or --kek-file", ErrUnsupported)
		}
	}
	return nil, ErrUnsupported
}

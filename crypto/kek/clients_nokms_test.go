//go:build nokms

package kek

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// Built with -tags nokms, a KMS key URI is refused with a message that says why and what to
// do; a fake KMS passed by WithClient (tests) still works.
func TestNoKMSBuildRefusesKMSURIs(t *testing.T) {
	for _, uri := range []string{"aws-kms://arn:aws:kms:eu-west-1:1:key/x", "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k", "hcvault://127.0.0.1:1/transit/keys/k"} {
		_, err := Open(context.Background(), uri)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "-tags nokms") {
			t.Errorf("Open(%s) = %v, want ErrUnsupported naming the build tag", uri, err)
		}
	}
}

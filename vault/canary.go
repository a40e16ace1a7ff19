package vault

import (
	"context"
	"fmt"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Canary is a planted token.
type Canary struct {
	Token    string
	Domain   string
	Template string
	Label    string
}

// CreateCanary plants a canary token: a token for value in domain and template that no
// legitimate flow uses. Any detokenize of it, allowed or denied, internal or by a vendor,
// marks its result Canary so the server raises a critical alert. Plant it in a vendor's
// domain (in a record sent to that vendor) and grant the vendor nothing unusual: if the
// vendor, or someone with its credentials, ever asks for it, you know.
func (v *Vault) CreateCanary(ctx context.Context, domain, tmpl, value, label string) (Canary, error) {
	if len(label) > 128 {
		return Canary{}, fmt.Errorf("%w: a canary label is at most 128 bytes", ErrInvalidArgument)
	}
	if domain == "" {
		domain = DefaultDomain
	}
	res, err := v.Tokenize(ctx, []TokenizeItem{{Value: value, Template: tmpl, Domain: domain}})
	if err != nil {
		return Canary{}, err
	}
	if res[0].Err != nil {
		return Canary{}, res[0].Err
	}
	c := Canary{Token: res[0].Token, Domain: domain, Template: tmpl, Label: label}
	ev := v.newEvent(ctx, "CreateCanary")
	ev.Target, ev.Outcome, ev.Domains, ev.Templates = "canary "+TokenFingerprint(domain, c.Token), OutcomeAllowed, []string{domain}, []string{tmpl}
	_, err = v.updateAudited(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
		return tx.Put(bucketCanaries, recordKey(domain, c.Token), []byte(label))
	})
	if err != nil {
		return Canary{}, err
	}
	return c, nil
}

package vault

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// A resumed export from further on must not count the events before it as delivered, or
// retention would prune events no export ever delivered.
func TestResumedExportDoesNotAllowPruning(t *testing.T) {
	ctx := context.Background()
	v, _, _ := openClock(t)
	for i := 0; i < 10; i++ {
		v.Tokenize(ctx, []TokenizeItem{{Value: "4111111111111111", Template: "pan"}})
	}
	var buf bytes.Buffer
	if err := v.ExportAudit(ctx, 10, &buf); err != nil { // only event 10 delivered
		t.Fatal(err)
	}
	n, err := v.PruneAudit(ctx, 9)
	if !errors.Is(err, ErrNotExported) || n != 0 {
		t.Fatalf("a resumed export from 10 let PruneAudit(9) delete %d never-exported events (err %v)", n, err)
	}
}

// A canary requested in a call that fails whole (here on quota) must still be flagged, for the
// alert and in the audit event.
func TestCanarySeenOnRefusedCall(t *testing.T) {
	ctx := context.Background()
	v, clk, _ := openClock(t)
	c, err := v.CreateCanary(ctx, "acme", "pan", "4000000000000002", "sent to acme in file X")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.CreateGrant(ctx, Grant{Vendor: "acme", Domains: []string{"acme"}, Templates: []string{"ssn"}, Purpose: "x", ExpireTime: clk.now().Add(time.Hour), Quota: 1}); err != nil {
		t.Fatal(err)
	}
	items := []TokenRef{{Token: "000-00-0000", Domain: "acme"}, {Token: c.Token, Domain: "acme"}}
	res, err := v.VendorDetokenize(ctx, VendorRequest{Vendor: "acme", Purpose: "p", Items: items})
	if !errors.Is(err, ErrQuotaExhausted) || len(res) != 2 || !res[1].Canary {
		t.Fatalf("a call failing on quota must still return the canary flags for the alert: %+v, %v", res, err)
	}
	evs, _, _ := v.ListAudit(ctx, AuditFilter{Method: "VendorDetokenize"})
	if len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Reason, "canary") {
		t.Fatalf("the audit event of the refused call does not mention the canary: %+v", evs)
	}
}

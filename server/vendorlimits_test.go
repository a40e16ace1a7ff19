package server_test

import (
	"net/http"
	"strings"
	"testing"
)

// Issue 11.1 over the vendor listener: a vendor with a loose grant (ssn, no limits) and a tight
// one (pan, 2 a minute, quota 3) in the same domain asks six times for the same three PANs.
// Before the fix every call answered 200 with 18 card numbers and the usage went to the loose
// grant. Now the tight grant binds: no call reveals more than its rate, no more than its quota
// leaves in total, and every reveal is charged to the grant that authorized it.
func TestVendorTightGrantNotBypassed(t *testing.T) {
	v := setupVendors(t)
	loose := v.grant(t, map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"ssn"}, "purpose": "kyc"}, "ttl": "3600s"})
	tight := v.grant(t, map[string]any{"grant": map[string]any{"vendor": "acme", "domains": []string{"acme"}, "templates": []string{"pan"}, "purpose": "refunds", "rate_per_minute": 2, "quota": 3}, "ttl": "3600s"})
	pan := map[string]string{"token": v.acmePAN, "domain": "acme"}
	revealed := 0
	for call := 0; call < 6; call++ {
		code, r := v.reveal(t, v.acmeSecret, pan, pan, pan)
		switch code {
		case http.StatusOK:
			for _, it := range r.Results {
				if it.Value != "" {
					revealed++
				}
			}
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("call %d: HTTP %d", call, code)
		}
	}
	if revealed != 0 {
		t.Errorf("%d PANs revealed by calls of 3 under a grant of 2 a minute, want 0", revealed)
	}
	// Two at a time fit the rate; the quota of 3 stops the second call.
	code, r := v.reveal(t, v.acmeSecret, pan, pan)
	if code != http.StatusOK || r.Results[0].Value != "4111111111111111" {
		t.Fatalf("two PANs under the tight grant: HTTP %d %+v", code, r)
	}
	if code, _ := v.reveal(t, v.acmeSecret, pan, pan); code != http.StatusTooManyRequests {
		t.Errorf("past the quota: HTTP %d, want 429", code)
	}
	code, body := v.h.Do("GET", "/v1/grants?vendor=acme", rootSecret, nil)
	if code != http.StatusOK {
		t.Fatalf("list grants: HTTP %d %s", code, body)
	}
	var list struct {
		Grants []struct {
			ID   string `json:"id"`
			Used string `json:"used"`
		} `json:"grants"`
	}
	decodeInto(t, body, &list)
	used := map[string]string{}
	for _, g := range list.Grants {
		used[g.ID] = g.Used
	}
	if used[tight] != "2" {
		t.Errorf("tight grant used %q, want 2 (the reveals it authorized)", used[tight])
	}
	// The vendor can name the loose grant to read SSNs; PANs are then not revealed under it.
	code, body = v.h.Do("POST", v.h.VendorURL("/v1/tokens:detokenize"), v.acmeSecret,
		(`{"purpose":"kyc-7","grant_id":"` + loose + `","items":[{"token":"` + v.acmeSSN + `","domain":"acme"},{"token":"` + v.acmePAN + `","domain":"acme"}]}`))
	if code != http.StatusOK {
		t.Fatalf("naming the loose grant: HTTP %d %s", code, body)
	}
	named := decode(t, body)
	if named.Results[0].Value != "123-45-6789" || named.Results[1].Value != "" || named.Results[1].Error == nil {
		t.Errorf("naming the loose grant: %+v, want the SSN revealed and the PAN denied", named.Results)
	}
	// A grant id that is not the vendor's is refused whole, without looking at the tokens.
	code, body = v.h.Do("POST", v.h.VendorURL("/v1/tokens:detokenize"), v.globexSecret,
		(`{"purpose":"p","grant_id":"` + loose + `","items":[{"token":"` + v.globexPAN + `","domain":"globex"}]}`))
	if code != http.StatusForbidden || strings.Contains(string(body), v.globexPAN) {
		t.Errorf("another vendor's grant id: HTTP %d %s, want 403 without the token", code, body)
	}
}

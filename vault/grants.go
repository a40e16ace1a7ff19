package vault

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Reveal says what a grant reveals.
type Reveal string

// Reveal kinds.
const (
	RevealFull   Reveal = "full"
	RevealMasked Reveal = "masked"
)

// Grant lets one vendor reveal tokens of some domains and templates until it expires or is
// revoked.
type Grant struct {
	ID          string    `json:"id"`
	Vendor      string    `json:"vendor"`
	Domains     []string  `json:"domains"`
	Templates   []string  `json:"templates"`
	Reveal      Reveal    `json:"reveal"`
	Purpose     string    `json:"purpose"`
	CreateTime  time.Time `json:"create_time"`
	ExpireTime  time.Time `json:"expire_time"`
	RatePerMin  int       `json:"rate_per_minute,omitempty"`
	Quota       int64     `json:"quota,omitempty"`
	Used        int64     `json:"used"`
	SourceCIDRs []string  `json:"source_cidrs,omitempty"`
	Revoked     bool      `json:"revoked,omitempty"`
	// AllowedHours, "HH-HH" in UTC (e.g. "08-18"; "22-06" wraps midnight), is when reveals are
	// expected; reveals outside it are allowed but raise an alert. Empty: any time.
	AllowedHours string `json:"allowed_hours,omitempty"`

	// State is the grant's state when it was read (GrantActive, GrantExpired, GrantRevoked or
	// GrantExhausted); not stored.
	State string `json:"-"`

	// prefixes caches SourceCIDRs parsed, for a grant read once and matched against many items.
	prefixes []netip.Prefix
}

// parseHours reads "HH-HH".
func parseHours(s string) (from, to int, err error) {
	if _, err := fmt.Sscanf(s, "%02d-%02d", &from, &to); err != nil || len(s) != 5 || from > 23 || to > 24 || from == to {
		return 0, 0, fmt.Errorf("%w: allowed hours must look like 08-18 (UTC hours)", ErrInvalidArgument)
	}
	return from, to, nil
}

// offHours reports whether t falls outside the grant's allowed hours.
func (g *Grant) offHours(t time.Time) bool {
	if g.AllowedHours == "" {
		return false
	}
	from, to, err := parseHours(g.AllowedHours)
	if err != nil {
		return false
	}
	h := t.UTC().Hour()
	if from < to {
		return h < from || h >= to
	}
	return h < from && h >= to // wraps midnight
}

// Grant states, as ListGrants and GetGrant report them.
const (
	GrantActive    = "active"
	GrantExpired   = "expired"
	GrantRevoked   = "revoked"
	GrantExhausted = "exhausted" // its quota is used up
)

// state is g's state at now: revoked wins over expired, expired over exhausted.
func (g *Grant) state(now time.Time) string {
	switch {
	case g.Revoked:
		return GrantRevoked
	case !now.Before(g.ExpireTime):
		return GrantExpired
	case g.spent():
		return GrantExhausted
	}
	return GrantActive
}

// live reports whether g can reveal anything at now.
func (g *Grant) live(now time.Time) bool {
	return g.current(now) && !g.spent()
}

// current reports whether g is neither revoked nor expired (its quota may be spent).
func (g *Grant) current(now time.Time) bool { return !g.Revoked && now.Before(g.ExpireTime) }

// spent reports whether g's quota is used up.
func (g *Grant) spent() bool { return g.Quota > 0 && g.Used >= g.Quota }

// inScope reports whether g applies to requests for domain from src (templates aside).
func (g *Grant) inScope(domain string, src netip.Addr) bool {
	if !slices.Contains(g.Domains, domain) {
		return false
	}
	if len(g.SourceCIDRs) == 0 {
		return true
	}
	if g.prefixes == nil {
		g.prefixes = make([]netip.Prefix, 0, len(g.SourceCIDRs))
		for _, c := range g.SourceCIDRs {
			if p, err := netip.ParsePrefix(c); err == nil { // validated at creation
				g.prefixes = append(g.prefixes, p)
			}
		}
	}
	for _, p := range g.prefixes {
		if src.IsValid() && p.Contains(src.Unmap()) {
			return true
		}
	}
	return false
}

// MaxGrantTTL bounds how long a grant may live.
const MaxGrantTTL = 5 * 365 * 24 * time.Hour

// A grant's rate is a token bucket of RatePerMin tokens that refills at RatePerMin a minute
// (as golang.org/x/time/rate with burst RatePerMin): a full bucket allows RatePerMin items at
// once, then RatePerMin a minute. Its state is stored (bucket grantrate: tokens left and when)
// and charged in the transaction that counts the grant's use and writes the reveal's audit
// event, so the rate holds for the whole cluster, however many replicas reveal, and a reveal
// that does not commit charges nothing. Replicas serialize on the grant's row.

// rateState is a grant's stored token bucket.
type rateState struct {
	tokens float64
	at     time.Time // zero: never charged (a full bucket)
}

func readRate(tx store.Tx, id string) rateState {
	b := tx.Get(bucketGrantRate, []byte(id))
	if len(b) != 16 {
		return rateState{}
	}
	return rateState{tokens: math.Float64frombits(binary.BigEndian.Uint64(b)), at: time.Unix(0, int64(binary.BigEndian.Uint64(b[8:])))}
}

func (r rateState) marshal() []byte {
	b := binary.BigEndian.AppendUint64(nil, math.Float64bits(r.tokens))
	return binary.BigEndian.AppendUint64(b, uint64(r.at.UnixNano()))
}

// take charges n items to a bucket of burst tokens refilling at burst a minute, at now. It
// returns the new state, or how long until n items would fit (ok false; after 0 when n can
// never fit).
func (r rateState) take(burst, n int, now time.Time) (next rateState, after time.Duration, ok bool) {
	perSec := float64(burst) / 60
	tokens := float64(burst)
	if !r.at.IsZero() {
		tokens = r.tokens
		if el := now.Sub(r.at); el > 0 { // a replica whose clock lags refills nothing
			tokens = math.Min(float64(burst), tokens+el.Seconds()*perSec)
		}
	}
	if n > burst {
		return r, 0, false
	}
	if tokens < float64(n) {
		return r, time.Duration((float64(n) - tokens) / perSec * float64(time.Second)), false
	}
	at := now
	if r.at.After(now) {
		at = r.at
	}
	return rateState{tokens: tokens - float64(n), at: at}, 0, true
}

// CreateGrant validates and stores a grant; it applies at once.
func (v *Vault) CreateGrant(ctx context.Context, g Grant) (Grant, error) {
	now := v.now().UTC()
	if !nameRE.MatchString(g.Vendor) {
		return Grant{}, fmt.Errorf("%w: vendor name must match %s", ErrInvalidArgument, nameRE)
	}
	if len(g.Domains) == 0 || len(g.Templates) == 0 {
		return Grant{}, fmt.Errorf("%w: a grant needs at least one domain and one template", ErrInvalidArgument)
	}
	for _, d := range g.Domains {
		if !domainRE.MatchString(d) {
			return Grant{}, fmt.Errorf("%w: domain names must match %s", ErrInvalidArgument, domainRE)
		}
	}
	for _, t := range g.Templates {
		if _, ok := v.lookupTemplate(ctx, t); !ok {
			return Grant{}, fmt.Errorf("%w %q", ErrUnknownTemplate, t)
		}
	}
	switch g.Reveal {
	case "":
		g.Reveal = RevealFull
	case RevealFull, RevealMasked:
	default:
		return Grant{}, fmt.Errorf("%w: reveal must be full or masked", ErrInvalidArgument)
	}
	if g.Purpose == "" || len(g.Purpose) > 256 {
		return Grant{}, fmt.Errorf("%w: a grant needs a purpose of 1 to 256 bytes", ErrInvalidArgument)
	}
	if !g.ExpireTime.After(now) {
		return Grant{}, fmt.Errorf("%w: the grant's expiry must be in the future", ErrInvalidArgument)
	}
	if g.ExpireTime.Sub(now) > MaxGrantTTL {
		return Grant{}, fmt.Errorf("%w: a grant may last at most %s", ErrInvalidArgument, MaxGrantTTL)
	}
	if g.RatePerMin < 0 || g.Quota < 0 {
		return Grant{}, fmt.Errorf("%w: rate and quota must not be negative", ErrInvalidArgument)
	}
	if g.AllowedHours != "" {
		if _, _, err := parseHours(g.AllowedHours); err != nil {
			return Grant{}, err
		}
	}
	for _, c := range g.SourceCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			return Grant{}, fmt.Errorf("%w: source networks must be in CIDR notation (e.g. 203.0.113.0/24)", ErrInvalidArgument)
		}
	}
	var idb [8]byte
	if _, err := io.ReadFull(v.rand, idb[:]); err != nil {
		return Grant{}, err
	}
	g.ID = "grant_" + hex.EncodeToString(idb[:])
	g.CreateTime, g.ExpireTime = now, g.ExpireTime.UTC()
	g.Used, g.Revoked = 0, false
	blob, err := json.Marshal(g)
	if err != nil {
		return Grant{}, err
	}
	ev := v.newEvent(ctx, "CreateGrant")
	ev.Target, ev.Outcome, ev.Domains, ev.Templates, ev.Purpose = g.ID, OutcomeAllowed, g.Domains, g.Templates, g.Purpose
	ev.Reason = "grant for vendor " + g.Vendor
	_, err = v.updateAudited(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
		if err := tx.Put(bucketGrantIDs, []byte(g.ID), []byte(g.Vendor)); err != nil {
			return err
		}
		return tx.Put(bucketGrants, grantKey(g.Vendor, g.ID), blob)
	})
	if err != nil {
		return Grant{}, fmt.Errorf("storing grant: %w", err)
	}
	g.State = GrantActive
	return g, nil
}

// CheckVendor returns ErrNoSuchVendor unless a live (not revoked, not expired) vendor
// credential acts for vendor. The API checks it before CreateGrant, so that a grant to a
// mistyped vendor is refused rather than kept unusable; the vault itself accepts such a grant
// (it reveals nothing until a credential for the vendor exists).
func (v *Vault) CheckVendor(ctx context.Context, vendor string) error {
	found := false
	err := v.store.View(ctx, func(tx store.Tx) (err error) {
		found, err = anyCredential(tx, func(c Credential) bool {
			return c.Role == RoleVendor && c.Vendor == vendor && v.usable(c)
		})
		return err
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: no live vendor credential acts for vendor %q: create one first (tokenvault credential create --role vendor --vendor %s)", ErrNoSuchVendor, vendor, vendor)
	}
	return nil
}

// ListGrants lists grants, of one vendor when vendor is not empty.
func (v *Vault) ListGrants(ctx context.Context, vendor string) ([]Grant, error) {
	now := v.now()
	var out []Grant
	err := v.store.View(ctx, func(tx store.Tx) error {
		return tx.Scan(bucketGrants, grantPrefix(vendor), nil, func(_, val []byte) error {
			var g Grant
			if err := json.Unmarshal(val, &g); err != nil {
				return err
			}
			g.State = g.state(now)
			out = append(out, g)
			return nil
		})
	})
	return out, err
}

// GetGrant returns one grant.
func (v *Vault) GetGrant(ctx context.Context, id string) (Grant, error) {
	var g Grant
	found := false
	err := v.store.View(ctx, func(tx store.Tx) error {
		vendor := tx.Get(bucketGrantIDs, []byte(id))
		if vendor == nil {
			return nil
		}
		blob := tx.Get(bucketGrants, grantKey(string(vendor), id))
		if blob == nil {
			return nil
		}
		found = true
		return json.Unmarshal(blob, &g)
	})
	if err != nil {
		return Grant{}, err
	}
	if !found {
		return Grant{}, ErrGrantNotFound
	}
	g.State = g.state(v.now())
	return g, nil
}

// RevokeGrant revokes a grant at once; revoking a revoked grant is not an error.
func (v *Vault) RevokeGrant(ctx context.Context, id string) error {
	found := false
	ev := v.newEvent(ctx, "RevokeGrant")
	ev.Target, ev.Outcome = id, OutcomeAllowed
	_, err := v.updateAudited(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
		found = false
		vendor := tx.Get(bucketGrantIDs, []byte(id))
		if vendor == nil {
			return errSkipAudit
		}
		var err error
		found, err = updateJSON(tx, bucketGrants, grantKey(string(vendor), id), func(g *Grant) error {
			g.Revoked = true
			return nil
		})
		if err != nil {
			return err
		}
		if !found {
			return errSkipAudit
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !found {
		return ErrGrantNotFound
	}
	return nil
}

// VendorRequest is one vendor detokenize call.
type VendorRequest struct {
	Vendor  string
	Purpose string
	Source  netip.Addr // the caller's address, for grants with source networks
	// GrantID, when set, names the one grant the call uses: only it is charged and only what
	// it covers is revealed. When empty, every live grant of the vendor in scope for an item's
	// domain is charged for that item, so the tightest rate and quota bind.
	GrantID string
	Items   []TokenRef
}

// VendorResult is one item's outcome, with the grant that allowed it.
type VendorResult struct {
	DetokenizeResult
	GrantID string
	// OffHours is set for a reveal outside its grant's allowed hours (an alert, not a denial).
	OffHours bool
}

// VendorDetokenize reveals each item only if a live grant of the vendor covers its domain and
// template (and the caller's address). An item with no covering grant gets
// ErrPermissionDenied, whether its token exists or not: both cost one store read and no
// decryption. Rates and quotas count every item asked for in a granted domain, revealed or
// not, so probing costs what reading costs and a 429 does not depend on whether a token
// exists. If a call would exceed a grant's rate (ErrRateLimited) or quota (ErrQuotaExhausted),
// it fails whole and nothing is revealed. Masked grants return masked values.
func (v *Vault) VendorDetokenize(ctx context.Context, req VendorRequest) ([]VendorResult, error) {
	if len(req.Items) == 0 {
		return nil, ErrEmptyBatch
	}
	if len(req.Items) > MaxBatch {
		return nil, ErrBatchTooLarge
	}
	if req.Vendor == "" {
		return nil, ErrPermissionDenied
	}
	if req.Purpose == "" {
		return nil, fmt.Errorf("%w: a vendor must state a purpose", ErrInvalidArgument)
	}
	now := v.now()
	var grants []*Grant
	var rd itemReads
	// rd is sc's: nothing of it outlives this call.
	sc := v.getReads()
	defer v.putReads(sc)
	rates := map[string]rateState{} // as read: countUse charges them in its transaction
	err := v.store.View(ctx, func(tx store.Tx) error {
		grants = grants[:0]
		if err := tx.Scan(bucketGrants, grantPrefix(req.Vendor), nil, func(_, val []byte) error {
			var g Grant
			if err := json.Unmarshal(val, &g); err != nil {
				return err
			}
			if g.current(now) {
				grants = append(grants, &g)
				if g.RatePerMin > 0 {
					rates[g.ID] = readRate(tx, g.ID)
				}
			}
			return nil
		}); err != nil {
			return err
		}
		// Vendors have no credential scope (Scope{}): every item is read, in or out of the
		// grants, so what a call costs does not tell which domains are granted.
		rd = readItems(tx, Scope{}, req.Items, true, sc)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading grants and tokens: %w", err)
	}
	raw, canary, labels := rd.raw, rd.canary, rd.labels
	results := make([]VendorResult, len(req.Items))
	recs := make([]record, len(req.Items))
	chosen := make([]*Grant, len(req.Items))
	// Rate and quota are charged without looking at the token, so that whether a call is
	// limited never depends on whether a token exists or which template it has. Every item
	// asked for in a domain is charged to every grant in play that is in scope for that domain
	// (all the vendor's live grants, or only the one the call names): the tightest rate and
	// quota bind, and a loose grant cannot be used to reveal past a tight one. An item whose
	// in-scope grants include a spent one makes the call ErrQuotaExhausted. The item is then
	// revealed under the oldest charged grant that covers its template.
	sort.SliceStable(grants, func(i, j int) bool {
		if !grants[i].CreateTime.Equal(grants[j].CreateTime) {
			return grants[i].CreateTime.Before(grants[j].CreateTime)
		}
		return grants[i].ID < grants[j].ID
	})
	unknownGrant := false
	if req.GrantID != "" {
		grants = slices.DeleteFunc(grants, func(g *Grant) bool { return g.ID != req.GrantID })
		unknownGrant = len(grants) == 0
	}
	charged := map[*Grant]int{}
	ev0Canary, spent := false, false
	for i, it := range req.Items {
		results[i].Err = ErrPermissionDenied
		results[i].Canary, results[i].CanaryLabel = canary[i], labels[i]
		if canary[i] {
			ev0Canary = true
		}
		d := DomainOr(it.Domain)
		inScope := false
		for _, g := range grants {
			if g.inScope(d, req.Source) {
				inScope = true
				spent = spent || g.spent()
				charged[g]++
			}
		}
		if !inScope {
			continue
		}
		if r, err := v.checkRecord(raw[i], d, it.Template, now.Unix()); err == nil {
			for _, g := range grants {
				if g.inScope(d, req.Source) && slices.Contains(g.Templates, r.template) {
					chosen[i], recs[i] = g, r
					break
				}
			}
		}
	}
	ev := v.newEvent(ctx, "VendorDetokenize")
	ev.Purpose, ev.Items = req.Purpose, len(req.Items)
	var ds, ts []string
	for i, g := range chosen {
		if g == nil {
			continue
		}
		d := DomainOr(req.Items[i].Domain)
		ds, ts = append(ds, d), append(ts, recs[i].template)
		ev.Tokens = append(ev.Tokens, TokenFingerprint(d, req.Items[i].Token))
		ev.GrantIDs = append(ev.GrantIDs, g.ID)
		ev.Allowed++
	}
	ev.Denied = len(req.Items) - ev.Allowed
	ev.Domains, ev.Templates, ev.GrantIDs = uniqueSorted(ds), uniqueSorted(ts), uniqueSorted(ev.GrantIDs)
	ev.Outcome = outcomeOf(ev.Allowed, len(req.Items))
	if ev.Allowed == 0 {
		ev.Outcome, ev.Reason = OutcomeDenied, "no live grant covers any item"
	}
	if ev0Canary {
		ev.Reason = "canary token requested"
	}
	// limited fails the whole call: nothing is revealed, the denial is audited, and the
	// results (all denied, canaries marked) go back with the error so alerts still fire.
	limited := func(cause error) ([]VendorResult, error) {
		deny := ev
		deny.Allowed, deny.Denied, deny.Tokens = 0, len(req.Items), nil
		deny.Outcome, deny.Reason = OutcomeDenied, cause.Error()
		if ev0Canary {
			deny.Reason += "; canary token requested"
		}
		denied := make([]VendorResult, len(req.Items))
		for i := range denied {
			denied[i].Err, denied[i].Canary, denied[i].CanaryLabel = ErrPermissionDenied, canary[i], labels[i]
		}
		if err := v.Audit(ctx, deny); err != nil {
			return denied, fmt.Errorf("recording the audit event: %w", err)
		}
		return denied, cause
	}
	if unknownGrant {
		return limited(ErrGrantNotLive)
	}
	if spent {
		return limited(ErrQuotaExhausted)
	}
	// As read, to refuse at the cost of the denial's event alone: countUse checks again.
	for g, n := range charged {
		if g.Quota > 0 && g.Used+int64(n) > g.Quota {
			return limited(ErrQuotaExhausted)
		}
		if g.RatePerMin > 0 {
			if _, after, ok := rates[g.ID].take(g.RatePerMin, n, now); !ok {
				return limited(&RetryAfterError{Err: ErrRateLimited, After: after})
			}
		}
	}
	// Rate and quota are charged, and the event committed, in one transaction, before any
	// value leaves: everything this call asks for, or nothing.
	if err := v.countUse(ctx, charged, ev, now); err != nil {
		if errors.Is(err, ErrQuotaExhausted) || errors.Is(err, ErrRateLimited) || errors.Is(err, ErrPermissionDenied) {
			return limited(err)
		}
		return nil, err
	}
	for i, it := range req.Items {
		g := chosen[i]
		if g == nil {
			continue
		}
		pt, err := v.openRecord(raw[i], recs[i], DomainOr(it.Domain), it.Token)
		if err != nil {
			results[i].Err = err
			continue
		}
		val, err := v.revealAs(ctx, pt, recs[i].template, g.Reveal)
		clear(pt)
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i] = VendorResult{DetokenizeResult: DetokenizeResult{Value: val, Template: recs[i].template, Canary: canary[i], CanaryLabel: labels[i]}, GrantID: g.ID, OffHours: g.offHours(now)}
	}
	return results, nil
}

// countUse charges each grant's reveals, in one transaction with the audit event ev: it adds
// them to the stored use count, checking the quota, and takes them from the grant's stored
// rate bucket (ErrRateLimited in a RetryAfterError when they do not fit). Everything is read
// and checked inside the transaction, so concurrent calls, on any replica, cannot overrun a
// quota or a rate; a refusal rolls back every charge.
func (v *Vault) countUse(ctx context.Context, perGrant map[*Grant]int, ev AuditEvent, now time.Time) error {
	type upd struct {
		key []byte
		id  string
		n   int64
	}
	var ups []upd
	for g, n := range perGrant {
		ups = append(ups, upd{grantKey(g.Vendor, g.ID), g.ID, int64(n)})
	}
	sort.Slice(ups, func(i, j int) bool { return string(ups[i].key) < string(ups[j].key) })
	_, err := v.updateAudited(ctx, ev, func(tx store.Tx, _ *AuditEvent) error {
		for _, u := range ups {
			var rate []byte
			found, err := updateJSON(tx, bucketGrants, u.key, func(g *Grant) error {
				if g.Revoked {
					return ErrPermissionDenied // revoked since the read: reveal nothing
				}
				if g.Quota > 0 && g.Used+u.n > g.Quota {
					return ErrQuotaExhausted // spent since the read: roll back and reveal nothing
				}
				if g.RatePerMin > 0 {
					next, after, ok := readRate(tx, u.id).take(g.RatePerMin, int(u.n), now)
					if !ok {
						return &RetryAfterError{Err: ErrRateLimited, After: after}
					}
					rate = next.marshal()
				}
				g.Used += u.n
				return nil
			})
			if err != nil {
				return err
			}
			if !found {
				return ErrQuotaExhausted
			}
			if rate != nil {
				if err := tx.Put(bucketGrantRate, []byte(u.id), rate); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return err
}

// DomainOr returns d, or DefaultDomain when d is empty.
func DomainOr(d string) string {
	if d == "" {
		return DefaultDomain
	}
	return d
}

package vault

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/tokenvault/tokenvault/vault/store"
	"github.com/tokenvault/tokenvault/vault/template"
)

// maxAttempts bounds the probing for a free token. With FF1 candidates in a space of at least
// 10^6 a collision is rare; with random candidates in small spaces it takes this many draws to
// conclude the space is (nearly) full.
const maxAttempts = 1000

// TokenizeItem is one value to tokenize.
type TokenizeItem struct {
	Value    string
	Template string
	Domain   string        // empty: DefaultDomain
	Subject  string        // optional data-subject id, for erasure
	TTL      time.Duration // optional: the token expires this long after it is issued
}

// TokenizeResult is the outcome of one item: Token, or Err (a per-item error wrapping
// ErrInvalidValue, ErrTokenSpaceExhausted or another sentinel).
type TokenizeResult struct {
	Token string
	Err   error
}

// TokenRef names one stored token: the item of Detokenize, VendorDetokenize (VendorRequest)
// and DeleteTokens.
type TokenRef struct {
	Token    string
	Domain   string // empty: DefaultDomain
	Template string // optional: the token must belong to this template
}

// DetokenizeResult is the outcome of one item: Value (with its Template), or Err wrapping
// ErrNotFound or ErrIntegrity.
type DetokenizeResult struct {
	Value    string
	Template string
	Err      error
	// Canary is set when the token is a canary: no legitimate flow reveals it, so the caller
	// must raise a critical alert. It is set whether or not the reveal was allowed.
	Canary bool
	// CanaryLabel is the label given when the canary was planted (where it was put).
	CanaryLabel string
}

// prepared is the work computed outside the store transaction for one item.
type prepared struct {
	i      int
	t      template.Template
	domain string
	value  string
	idxKey []byte // blind index key: deterministic templates with random candidates only
	// pure: deterministic with FF1 candidates, a function of the value, so an existing token
	// is found by probing the candidates, without an index.
	pure    bool
	subject []byte // subject fingerprint, nil without subject
	expire  int64  // unix seconds; 0: never
	cand0   string
	rec0    []byte
	// The subject key seen before the transaction (nil: none yet) and its AEAD.
	subjWrapped []byte
	subjAEAD    tink.AEAD
}

// Tokenize replaces each item's value with a token. A whole-call error (ErrBatchTooLarge,
// ErrUnknownTemplate, a store failure) means nothing was stored. Otherwise every result has a
// token or a per-item error, and every token returned is durably stored.
func (v *Vault) Tokenize(ctx context.Context, items []TokenizeItem) ([]TokenizeResult, error) {
	var res []TokenizeResult
	err := v.sealing(ctx, func(primary uint32) (err error) {
		res, err = v.tokenize(ctx, items, primary)
		return err
	})
	return res, err
}

// tokenize is Tokenize with the keyring whose primary data key is primary (see sealing).
func (v *Vault) tokenize(ctx context.Context, items []TokenizeItem, primary uint32) ([]TokenizeResult, error) {
	if len(items) == 0 {
		return nil, ErrEmptyBatch
	}
	if len(items) > MaxBatch {
		return nil, ErrBatchTooLarge
	}
	tmpls, err := v.resolveTemplates(ctx, items)
	if err != nil {
		return nil, err
	}
	results := make([]TokenizeResult, len(items))
	work := make([]prepared, 0, len(items))
	now := v.now().Unix()
	scope := scopeOf(ctx)
	v.sealMu.RLock() // from the first encryption until the commit (see Vault.sealMu)
	defer v.sealMu.RUnlock()
	for i, it := range items {
		t := tmpls[i]
		domain := DomainOr(it.Domain)
		if !scope.allowsDomain(domain) || !scope.allowsTemplate(t.Name()) {
			results[i].Err = ErrOutOfScope // before the value is even looked at
			continue
		}
		if !utf8.ValidString(it.Value) {
			results[i].Err = fmt.Errorf("%w: %s: value is not valid UTF-8", ErrInvalidValue, t.Name())
			continue
		}
		if err := t.Check(it.Value); err != nil {
			results[i].Err = err
			continue
		}
		p := prepared{i: i, t: t, domain: domain, value: it.Value}
		keys := tokenKeys{v: v, domain: domain, template: t.Name()}
		if t.Mode() == template.Deterministic {
			if fs, err := t.FreeSpaceOf(it.Value); err == nil && fs >= 6 {
				p.pure = true
			} else {
				k, err := v.hmacKey("index", domain, t.Name())
				if err != nil {
					return nil, err
				}
				p.idxKey = indexKey(domain, t.Name(), fingerprint(k, it.Value))
			}
		}
		if it.TTL < 0 {
			results[i].Err = fmt.Errorf("%w: ttl must not be negative", ErrInvalidValue)
			continue
		}
		ttl := it.TTL
		if ttl == 0 {
			ttl = t.Definition().TTL // the template's default expiry, if any
		}
		if ttl > 0 {
			p.expire = now + int64((ttl+time.Second-1)/time.Second)
		}
		if it.Subject != "" {
			if p.subject, err = v.subjectFingerprint(it.Subject); err != nil {
				return nil, err
			}
			if p.subjWrapped, p.subjAEAD, err = v.existingSubjectKey(ctx, p.subject); err != nil {
				return nil, err
			}
		}
		p.cand0, err = t.Candidate(keys, it.Value, 0, v.rand)
		if err != nil {
			results[i].Err = v.internal("candidate", err)
			continue
		}
		if p.subject == nil || p.subjAEAD != nil {
			if p.rec0, err = v.seal(p, p.cand0, now); err != nil {
				return nil, err
			}
		}
		work = append(work, p)
	}
	// Place in key order: neighbouring inserts share B-tree pages within the commit.
	slices.SortFunc(work, func(a, b prepared) int {
		if c := strings.Compare(a.domain, b.domain); c != 0 {
			return c
		}
		return strings.Compare(a.cand0, b.cand0)
	})
	base := v.newEvent(ctx, "Tokenize")
	base.Items = len(items)
	base.Domains, base.Templates = itemsScope(items)
	_, err = v.updateAudited(ctx, base, func(tx store.Tx, ev *AuditEvent) error {
		if err := checkPrimary(tx, primary); err != nil {
			return err
		}
		done := 0
		for _, p := range work {
			tok, err := v.place(tx, p, now)
			results[p.i] = TokenizeResult{Token: tok, Err: err}
			if err != nil && !isItemError(err) {
				return err
			}
			if err == nil {
				done++
			}
		}
		ev.Allowed, ev.Denied = done, len(items)-done
		ev.Outcome = outcomeOf(done, len(items))
		noteScopeDenials(ev, countOutOfScope(func(i int) error { return results[i].Err }, len(results)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storing tokens: %w", err)
	}
	return results, nil
}

func outcomeOf(done, total int) string {
	switch {
	case done == total:
		return OutcomeAllowed
	case done == 0:
		return OutcomeFailed
	}
	return OutcomePartial
}

// itemsScope returns the distinct domains and templates of a tokenize call.
func itemsScope(items []TokenizeItem) (domains, templates []string) {
	ds, ts := make([]string, 0, 4), make([]string, 0, 4)
	for i, it := range items {
		if i > 0 && it.Domain == items[i-1].Domain && it.Template == items[i-1].Template {
			continue
		}
		ds = append(ds, DomainOr(it.Domain))
		ts = append(ts, it.Template)
	}
	return uniqueSorted(ds), uniqueSorted(ts)
}

func isItemError(err error) bool {
	return errors.Is(err, ErrTokenSpaceExhausted) || errors.Is(err, ErrInvalidValue)
}

// place finds the item's token inside the transaction: the existing one for a value already
// tokenized deterministically, else the first free candidate. It must stay free of side
// effects outside tx: the store may run it twice.
func (v *Vault) place(tx store.Tx, p prepared, now int64) (string, error) {
	if p.idxKey != nil {
		// The index names the value's token; use it only if that token is still live (not
		// erased, expired or reissued), else place a new one and repoint the index.
		if tok := tx.Get(bucketIndex, p.idxKey); tok != nil && v.liveFor(tx, p, string(tok), now) {
			token := string(tok)
			if p.subject != nil {
				if err := tx.Put(bucketSubjects, subjectKey(p.subject, p.domain, token), []byte{}); err != nil {
					return "", err
				}
			}
			return token, nil
		}
	}
	if p.subject != nil {
		switch cur := tx.Get(bucketSubjectKeys, p.subject); {
		case cur == nil:
			wrapped, a, err := v.keyring().NewSubjectKey(p.subject)
			if err != nil {
				return "", err
			}
			if err := tx.Put(bucketSubjectKeys, p.subject, wrapped); err != nil {
				return "", err
			}
			p.subjWrapped, p.subjAEAD, p.rec0 = wrapped, a, nil
		case !bytes.Equal(cur, p.subjWrapped):
			a, err := v.subjectAEAD(p.subject, cur)
			if err != nil {
				return "", err
			}
			p.subjWrapped, p.subjAEAD, p.rec0 = bytes.Clone(cur), a, nil
		}
	}
	keys := tokenKeys{v: v, domain: p.domain, template: p.t.Name()}
	cand, rec := p.cand0, p.rec0
	for attempt := 0; ; {
		if cand != p.value {
			existing := tx.Get(bucketRecords, recordKey(p.domain, cand))
			if existing == nil {
				break
			}
			if p.pure && v.holds(tx, existing, p, cand, now) {
				// Tokenized before: the same token again.
				if p.subject != nil {
					if err := tx.Put(bucketSubjects, subjectKey(p.subject, p.domain, cand), []byte{}); err != nil {
						return "", err
					}
				}
				return cand, nil
			}
		}
		attempt++
		if attempt >= maxAttempts {
			return "", ErrTokenSpaceExhausted
		}
		var err error
		if cand, err = p.t.Candidate(keys, p.value, attempt, v.rand); err != nil {
			return "", fmt.Errorf("computing candidate token: %w", err)
		}
		rec = nil
	}
	if rec == nil {
		var err error
		if rec, err = v.seal(p, cand, now); err != nil {
			return "", err
		}
	}
	if err := tx.Put(bucketRecords, recordKey(p.domain, cand), rec); err != nil {
		return "", err
	}
	if p.expire != 0 {
		if err := tx.Put(bucketExpiry, expiryKey(p.expire, p.domain, cand), []byte{}); err != nil {
			return "", err
		}
	}
	if p.idxKey != nil {
		if err := tx.Put(bucketIndex, p.idxKey, []byte(cand)); err != nil {
			return "", err
		}
	}
	if p.subject != nil {
		if err := tx.Put(bucketSubjects, subjectKey(p.subject, p.domain, cand), []byte{}); err != nil {
			return "", err
		}
	}
	return cand, nil
}

// liveFor reports whether token's record is live and belongs to p's template.
func (v *Vault) liveFor(tx store.Tx, p prepared, token string, now int64) bool {
	b := tx.Get(bucketRecords, recordKey(p.domain, token))
	if b == nil || isTombstone(b) {
		return false
	}
	r, err := unmarshalRecord(b)
	return err == nil && r.template == p.t.Name() && (r.expireUnix == 0 || now < r.expireUnix)
}

// holds reports whether a stored record at token is p's value in p's template, live. Records
// that hold another value (a collision), tombstones and expired records are skipped by the
// probing. It decrypts inside the transaction: no side effects.
func (v *Vault) holds(tx store.Tx, existing []byte, p prepared, token string, now int64) bool {
	if isTombstone(existing) {
		return false
	}
	r, err := unmarshalRecord(existing)
	if err != nil || r.template != p.t.Name() || (r.expireUnix != 0 && now >= r.expireUnix) {
		return false
	}
	rr := rawRecord{rec: existing}
	if r.subject != nil {
		rr.subjectKey = tx.Get(bucketSubjectKeys, r.subject)
		if rr.subjectKey == nil {
			return false
		}
	}
	pt, err := v.openRecord(rr, r, p.domain, token)
	if err != nil {
		return false
	}
	same := subtle.ConstantTimeCompare(pt, []byte(p.value)) == 1
	clear(pt)
	return same
}

// seal encrypts p's value for token: under the subject's key when it has a subject, else under
// the primary data key.
func (v *Vault) seal(p prepared, token string, now int64) ([]byte, error) {
	ad := recordAD(p.domain, p.t.Name(), token)
	var ct []byte
	var err error
	if p.subject != nil {
		ct, err = p.subjAEAD.Encrypt([]byte(p.value), ad)
	} else {
		ct, err = v.keyring().Seal([]byte(p.value), ad)
	}
	if err != nil {
		return nil, err
	}
	r := record{template: p.t.Name(), createUnix: now, expireUnix: p.expire, subject: p.subject, ciphertext: ct}
	return r.marshal(), nil
}

// Detokenize returns the original of each token. Per-item errors wrap ErrNotFound (unknown
// token, or a template other than the one named), ErrOutOfScope (outside the calling
// credential's scope, whether the token exists or not) or ErrIntegrity. A caller whose scope
// reveals masked gets each value masked by its template.
func (v *Vault) Detokenize(ctx context.Context, purpose string, items []TokenRef) ([]DetokenizeResult, error) {
	if len(items) == 0 {
		return nil, ErrEmptyBatch
	}
	if len(items) > MaxBatch {
		return nil, ErrBatchTooLarge
	}
	scope := scopeOf(ctx)
	var rd itemReads
	err := v.store.View(ctx, func(tx store.Tx) error {
		rd = readItems(tx, scope, items, true)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading tokens: %w", err)
	}
	results := make([]DetokenizeResult, len(items))
	now := v.now().Unix()
	for i, it := range items {
		results[i].Canary, results[i].CanaryLabel = rd.canary[i], rd.labels[i]
		if rd.out[i] {
			results[i].Err = ErrOutOfScope
			continue
		}
		r, err := v.checkRecord(rd.raw[i], DomainOr(it.Domain), it.Template, now)
		if err = scope.afterLookup(it, r, err); err != nil {
			results[i].Err = err
			continue
		}
		pt, err := v.openRecord(rd.raw[i], r, DomainOr(it.Domain), it.Token)
		if err != nil {
			results[i].Err = err
			continue
		}
		val, err := v.revealAs(ctx, pt, r.template, scope.Reveal)
		clear(pt)
		if err != nil {
			results[i].Err = err
			continue
		}
		results[i] = DetokenizeResult{Value: val, Template: r.template, Canary: rd.canary[i], CanaryLabel: rd.labels[i]}
	}
	// Audit before reveal: the values leave only once their event is durable.
	ev := v.newEvent(ctx, "Detokenize")
	ev.Purpose = purpose
	ev.Items = len(items)
	var ds, ts []string
	for i, r := range results {
		if r.Err != nil {
			continue
		}
		d := DomainOr(items[i].Domain)
		ds, ts = append(ds, d), append(ts, r.Template)
		ev.Tokens = append(ev.Tokens, TokenFingerprint(d, items[i].Token))
		ev.Allowed++
	}
	ev.Denied = len(items) - ev.Allowed
	ev.Domains, ev.Templates = uniqueSorted(ds), uniqueSorted(ts)
	ev.Outcome = outcomeOf(ev.Allowed, len(items))
	for i := range results {
		if results[i].Canary {
			ev.Reason = "canary token revealed"
		}
	}
	noteScopeDenials(&ev, countOutOfScope(func(i int) error { return results[i].Err }, len(results)))
	if scope.Reveal == RevealMasked && ev.Allowed > 0 {
		ev.Reason = strings.TrimPrefix(ev.Reason+"; masked", "; ")
	}
	if err := v.Audit(ctx, ev); err != nil {
		return nil, fmt.Errorf("recording the audit event (nothing revealed): %w", err)
	}
	return results, nil
}

// internal logs an unexpected error (never with values) and returns an opaque error.
func (v *Vault) internal(what string, err error) error {
	v.log.Error("internal error", slog.String("op", what), slog.String("error", err.Error()))
	return fmt.Errorf("internal error in %s", what)
}

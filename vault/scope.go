package vault

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/tokenvault/tokenvault/vault/store"
)

// Scope limits what an internal credential (tokenizer or detokenizer) may touch: token
// domains, templates, and for a detokenizer whether it sees values or their masks. The zero
// Scope is unscoped: every domain and template, values in full (what every credential had
// before scopes existed).
//
// The vault enforces the scope of the principal in the request's context (WithRequest) on
// every item of Tokenize, Detokenize, TokenizeRecords, DetokenizeRecords and DeleteTokens: an
// item outside it gets ErrOutOfScope, decided from the item's domain and named template before
// any lookup, and reading the same whether its token exists or not.
type Scope struct {
	// Domains the credential may touch; empty: every domain.
	Domains []string `json:"domains,omitempty"`
	// Templates the credential may touch; empty: every template.
	Templates []string `json:"templates,omitempty"`
	// Reveal, for a detokenizer: RevealMasked reveals the template's mask, exactly like a
	// masked vendor grant. Empty or RevealFull: the value.
	Reveal Reveal `json:"reveal,omitempty"`
}

// MaxScopeEntries bounds the domains and the templates of one scope.
const MaxScopeEntries = 64

// Unscoped reports whether s allows everything (the zero Scope).
func (s Scope) Unscoped() bool {
	return len(s.Domains) == 0 && len(s.Templates) == 0 && (s.Reveal == "" || s.Reveal == RevealFull)
}

// allowsDomain reports whether s covers domain d (a DomainOr'd name).
func (s Scope) allowsDomain(d string) bool {
	return len(s.Domains) == 0 || slices.Contains(s.Domains, d)
}

// allowsTemplate reports whether s covers template t.
func (s Scope) allowsTemplate(t string) bool {
	return len(s.Templates) == 0 || slices.Contains(s.Templates, t)
}

// excludes reports whether s excludes it before any lookup: by its domain, or by the template
// it names.
func (s Scope) excludes(it TokenRef) bool {
	return !s.allowsDomain(DomainOr(it.Domain)) || (it.Template != "" && !s.allowsTemplate(it.Template))
}

// afterLookup applies s to an item that passed excludes, given the outcome of its lookup
// (checkRecord's record and error). A record of a template outside s is ErrOutOfScope; so is
// a token that was not found when s limits templates and the item names none, since a token
// of another template must read exactly like a missing one.
func (s Scope) afterLookup(it TokenRef, r record, err error) error {
	switch {
	case err == nil && !s.allowsTemplate(r.template):
		return ErrOutOfScope
	case errors.Is(err, ErrNotFound) && it.Template == "" && len(s.Templates) > 0:
		return ErrOutOfScope
	}
	return err
}

// validate checks a scope of a credential of role.
func (s Scope) validate(role Role) error {
	scoped := len(s.Domains) > 0 || len(s.Templates) > 0 || s.Reveal != ""
	switch {
	case scoped && role != RoleTokenizer && role != RoleDetokenizer:
		return fmt.Errorf("%w: domains, templates and reveal scope only tokenizer and detokenizer credentials (role %s has none)", ErrInvalidArgument, role)
	case s.Reveal != "" && role != RoleDetokenizer:
		return fmt.Errorf("%w: reveal applies only to detokenizer credentials", ErrInvalidArgument)
	case s.Reveal != "" && s.Reveal != RevealFull && s.Reveal != RevealMasked:
		return fmt.Errorf("%w: reveal must be full or masked", ErrInvalidArgument)
	case len(s.Domains) > MaxScopeEntries || len(s.Templates) > MaxScopeEntries:
		return fmt.Errorf("%w: a scope lists at most %d domains and %d templates", ErrInvalidArgument, MaxScopeEntries, MaxScopeEntries)
	}
	for _, d := range s.Domains {
		if !domainRE.MatchString(d) {
			return fmt.Errorf("%w: domain names must match %s", ErrInvalidArgument, domainRE)
		}
	}
	return nil
}

// checkTemplates checks that every template of s exists.
func (v *Vault) checkScopeTemplates(ctx context.Context, s Scope) error {
	for _, t := range s.Templates {
		if _, ok := v.lookupTemplate(ctx, t); !ok {
			return fmt.Errorf("%w %q: a scope names existing templates (see template list)", ErrUnknownTemplate, t)
		}
	}
	return nil
}

// normalized returns s with its lists sorted and without duplicates.
func (s Scope) normalized() Scope {
	s.Domains, s.Templates = uniqueSorted(s.Domains), uniqueSorted(s.Templates)
	return s
}

// scopeOf returns the scope of the principal in ctx (unscoped without one).
func scopeOf(ctx context.Context) Scope { return requestFrom(ctx).Principal.Scope }

// itemReads are the records of a detokenize-like call's items, read in one transaction.
type itemReads struct {
	raw    []rawRecord
	canary []bool
	labels []string
	// out marks items the scope excluded before any lookup: nothing of them was read.
	out []bool
}

// readItems reads, inside tx, the records of items, except those s excludes, which it does
// not look up at all; with canaries, also their canary marks (reveals need them, erasure not).
//
// With sc, the slices of the result are sc's, valid until sc is reused (nil: new ones).
func readItems(tx store.Tx, s Scope, items []TokenRef, canaries bool, sc *readScratch) itemReads {
	if sc == nil {
		sc = new(readScratch)
	}
	sc.out = grow(sc.out, len(items))
	rd := itemReads{out: sc.out}
	if canaries {
		sc.canary, sc.labels = grow(sc.canary, len(items)), grow(sc.labels, len(items))
		rd.canary, rd.labels = sc.canary, sc.labels
	}
	// Batch reads: the records with their canary marks (one statement on PostgreSQL), then
	// their subjects' keys, so a call costs the same few store reads whatever its size.
	keys := slices.Grow(sc.keys[:0], len(items))
	at := slices.Grow(sc.at[:0], len(items))
	n := 0
	for _, it := range items {
		n += len(DomainOr(it.Domain)) + 1 + len(it.Token)
	}
	buf := slices.Grow(sc.keyBuf[:0], n) // every key, one allocation
	defer func() { sc.keys, sc.at, sc.keyBuf = keys, at, buf }()
	for i, it := range items {
		if s.excludes(it) {
			rd.out[i] = true
			continue
		}
		start := len(buf)
		buf = appendRecordKey(buf, DomainOr(it.Domain), it.Token)
		keys, at = append(keys, buf[start:len(buf):len(buf)]), append(at, i)
	}
	var also store.Bucket
	if canaries {
		also = bucketCanaries
	}
	raws, marks := readRecordsWith(tx, keys, sc, also)
	if len(at) == len(items) {
		rd.raw = raws // at[k] == k
	} else {
		rd.raw = make([]rawRecord, len(items))
		for k, i := range at {
			rd.raw[i] = raws[k]
		}
	}
	if canaries { // the marks of records that exist only
		for k, i := range at {
			if raws[k].rec != nil && marks[k] != nil {
				rd.canary[i], rd.labels[i] = true, string(marks[k])
			}
		}
	}
	return rd
}

// readScratch holds the slices of one readItems or readRecords call, for reuse by the next
// (Vault.reads). Nothing read through it may be kept after it is put back.
type readScratch struct {
	out, canary  []bool
	labels       []string
	keys         [][]byte
	at           []int
	keyBuf, recs []byte
	raws         []rawRecord
}

// maxScratch bounds the bytes a readScratch keeps for reuse: one that grew past it (a call
// of thousands of items) is dropped rather than pooled.
const maxScratch = 256 << 10

// size estimates the bytes sc holds.
func (sc *readScratch) size() int {
	return cap(sc.keyBuf) + cap(sc.recs) + 48*cap(sc.raws) + 24*cap(sc.keys) +
		16*cap(sc.labels) + 8*cap(sc.at) + cap(sc.out) + cap(sc.canary)
}

// getReads takes a readScratch from v's pool; putReads gives it back, emptied so that it
// holds no record, key or label of the call that used it.
func (v *Vault) getReads() *readScratch {
	if sc, ok := v.reads.Get().(*readScratch); ok {
		return sc
	}
	return new(readScratch)
}

func (v *Vault) putReads(sc *readScratch) {
	if sc.size() > maxScratch {
		return
	}
	clear(sc.labels)
	clear(sc.keyBuf)
	clear(sc.keys)
	clear(sc.raws)
	clear(sc.recs)
	v.reads.Put(sc)
}

// grow returns s resized to n zero elements, reusing its array when it is large enough.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// countOutOfScope counts the errors that are ErrOutOfScope.
func countOutOfScope(errs func(int) error, n int) int {
	c := 0
	for i := 0; i < n; i++ {
		if errors.Is(errs(i), ErrOutOfScope) {
			c++
		}
	}
	return c
}

// noteScopeDenials completes an event of a call in which denied items fell outside the
// caller's scope: the reason says how many (never which), and a call with nothing allowed is
// OutcomeDenied.
func noteScopeDenials(ev *AuditEvent, denied int) {
	if denied == 0 {
		return
	}
	why := strconv.Itoa(denied) + " items outside the credential's scope"
	if ev.Reason != "" {
		why = ev.Reason + "; " + why
	}
	ev.Reason = why
	if ev.Allowed == 0 {
		ev.Outcome = OutcomeDenied
	}
}

// revealAs returns the plaintext pt of a record of template tmpl as how reveals it: in full,
// or masked by the template (masked vendor grants and masked detokenizer credentials).
func (v *Vault) revealAs(ctx context.Context, pt []byte, tmpl string, how Reveal) (string, error) {
	if how != RevealMasked {
		return string(pt), nil
	}
	t, ok := v.lookupTemplate(ctx, tmpl)
	if !ok {
		return "", ErrIntegrity
	}
	return t.Mask(string(pt)), nil
}
